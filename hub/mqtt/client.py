"""The hub's MQTT client: MQTT 5, persistent session, manual acknowledgement."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub.config import MqttConfig
from protocol.topics import Channel, shared, uplink_filter

# Shared among workers: each message goes to one of them.
SHARED_CHANNELS = (Channel.EVENT, Channel.SNAP, Channel.HEALTH, Channel.ACK)


def make_client(cfg: MqttConfig, client_id: str | None = None) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or cfg.client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=True,
    )
    if cfg.tls is not None:
        client.tls_set(
            ca_certs=cfg.tls.ca,
            certfile=cfg.tls.cert,
            keyfile=cfg.tls.key,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    client.reconnect_delay_set(1, 30)
    # Our own publications (alerts, commands) must not wait behind a full window.
    client.max_inflight_messages_set(1000)
    return client


def connect_properties(cfg: MqttConfig) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    # With clean_start=False the broker keeps our subscriptions and queues QoS 1
    # messages for this long while the hub is down; they arrive after restart.
    props.SessionExpiryInterval = cfg.session_expiry_s
    # Unacked messages in flight to us: a batch can be no larger than this.
    props.ReceiveMaximum = cfg.receive_maximum
    return props


def subscriptions(share_group: str) -> list[tuple[str, SubscribeOptions]]:
    """Per-channel shared filters rather than ``xl/v1/+/+``: that filter would also
    match ``xl/v1/<device>/cmd``, so every command a hub sends would come back to
    it (``no_local`` is not allowed on shared subscriptions). State is subscribed
    unshared in every worker, because Mosquitto does not deliver retained
    messages on shared subscriptions and presence must be known at start-up;
    state updates are idempotent, so every worker applying them is harmless."""
    subs = [(shared(share_group, uplink_filter(ch)), SubscribeOptions(qos=1)) for ch in SHARED_CHANNELS]
    subs.append((uplink_filter(Channel.STATE), SubscribeOptions(qos=1)))
    return subs


def forget_session(cfg: MqttConfig, client_id: str | None = None, timeout_s: float = 10.0) -> None:
    """End a worker's persistent session at the broker.

    A stopped worker whose session has not expired stays a member of the share
    group, and the broker keeps queueing its share of the traffic for it. A
    clean start with no expiry followed by a disconnect makes the broker forget it.
    """
    import threading

    client = make_client(cfg, client_id)
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(str(reason))
        connected.set()

    client.on_connect = on_connect
    client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=True)
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            raise TimeoutError(f"no CONNACK from {cfg.host}:{cfg.port} in {timeout_s}s")
        if refused:
            raise ConnectionError(f"broker refused {client_id or cfg.client_id}: {refused[0]}")
    finally:
        client.disconnect()
        client.loop_stop()
