"""The hub's MQTT connection, run as a process of its own.

Why a process: paho's Python packet handling and the hub's decode-validate-
commit work each cost about as much CPU per message as the other. In one
process they share one interpreter lock, so the hub could never go faster
than half of what a bare paho subscriber reaches (measured: 0.39–0.57 of it).
Here paho runs alone and hands raw messages to the hub process in chunks over
a socket pair; the hub validates and commits on another core and sends back
which message ids to acknowledge. Nothing is decoded here and nothing is
acknowledged until the hub says the commit is done, so a crash of either
process leaves every unsaved message with the broker.

Started by ``hub.mqtt.transport_proxy.TransportProcess`` as
``python -m hub.mqtt.transport <fd>``; the first thing on the socket is the
configuration. If the hub process dies, the socket closes and this process
disconnects without acknowledging anything more, then exits.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.config import MqttConfig
from hub.mqtt.client import connect_properties, make_client, subscriptions

log = logging.getLogger("xl.hub.transport")

# hub → transport
ACK = "ack"  # (ACK, [(mid, qos), ...], [(topic, payload, qos), ...]): PUBACKs, and receipts to publish
PUBLISH = "pub"  # (PUBLISH, ref, [(topic, payload, qos, track), ...]) → QUEUED
STOP = "stop"  # (STOP, retire)
# transport → hub
MESSAGES = "msgs"  # (MESSAGES, [(topic, payload, mid, qos, received_ms, retained), ...])
QUEUED = "queued"  # (QUEUED, ref, [rc, ...]): each publication's paho result code
CONFIRMED = "confirmed"  # (CONFIRMED, track, ok, at_ms): the broker's PUBACK of a tracked publication
UP = "up"  # (UP,): connected and subscribed
DOWN = "down"  # (DOWN, reason)
STOPPED = "stopped"  # (STOPPED,): disconnected; nothing more will come


class Transport:
    def __init__(self, cfg: MqttConfig, client_id: str, conn: Connection) -> None:
        self.cfg = cfg
        self.conn = conn
        self._send_lock = threading.Lock()
        self._buf_lock = threading.Lock()
        self._buf: list[tuple[str, bytes, int, int, int, bool]] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._tracked: dict[int, Any] = {}  # mid → the hub's tracking token
        self._tracked_lock = threading.Lock()
        self.client = make_client(cfg, client_id)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self._flusher = threading.Thread(target=self._flush_loop, name="xl-transport-flush", daemon=True)

    def send(self, record: tuple[Any, ...]) -> None:
        with self._send_lock:
            self.conn.send(record)

    # -- paho thread -----------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        log.info("connected to %s:%d", self.cfg.host, self.cfg.port)
        client.subscribe(subscriptions(self.cfg.share_group))

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("subscription refused by the broker: %s", ", ".join(failed))
            return
        self.send((UP,))

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if not self._stopping.is_set():
            log.warning("disconnected from broker (%s); paho reconnects", reason)
            self.send((DOWN, str(reason)))

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        if self._stopping.is_set():
            return  # never acknowledged: the broker re-sends it to the next session
        record = (msg.topic, bytes(msg.payload), msg.mid, msg.qos, int(time.time() * 1000), bool(msg.retain))
        with self._buf_lock:
            self._buf.append(record)
            first = len(self._buf) == 1
        if first:
            self._wake.set()

    def _on_publish(self, _c: mqtt.Client, _ud: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._tracked_lock:
            track = self._tracked.pop(mid, None)
        if track is not None:
            self.send((CONFIRMED, track, not reason.is_failure, int(time.time() * 1000)))

    # -- flusher thread: chunks of messages to the hub ---------------------------

    # Held after the first message of a chunk so that a steady trickle (a
    # county's heartbeats: 1,660 msg/s at a 2 s interval) crosses to the hub in
    # chunks rather than one message per wake-up of both processes. Small next
    # to the writer's own batch window (ingest.batch_ms, 20 ms).
    COALESCE_S = 0.004

    def _flush_loop(self) -> None:
        # Under load the buffer fills while the previous chunk is being sent,
        # so chunks grow by themselves.
        while not self._stopping.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            time.sleep(self.COALESCE_S)
            with self._buf_lock:
                chunk, self._buf = self._buf, []
            if chunk:
                try:
                    self.send((MESSAGES, chunk))
                except OSError:
                    return  # the hub is gone; main() notices the closed socket

    # -- main thread: the hub's requests ---------------------------------------

    def _publish(self, ref: int, items: list[tuple[str, bytes, int, Any]]) -> None:
        codes = []
        for topic, payload, qos, track in items:
            # The lock is held across publish so a fast PUBACK cannot arrive
            # before the mid is known.
            with self._tracked_lock:
                info = self.client.publish(topic, payload, qos=qos)
                if info.rc == mqtt.MQTT_ERR_SUCCESS and track is not None:
                    self._tracked[info.mid] = track
            codes.append(int(info.rc))
        self.send((QUEUED, ref, codes))

    def run(self) -> None:
        self.client.connect_async(
            self.cfg.host,
            self.cfg.port,
            keepalive=self.cfg.keepalive_s,
            clean_start=False,
            properties=connect_properties(self.cfg),
        )
        self.client.loop_start()
        self._flusher.start()
        retire = False
        try:
            while True:
                try:
                    request = self.conn.recv()
                except (EOFError, OSError):
                    log.error("the hub process went away: disconnecting without acknowledging more")
                    break
                tag = request[0]
                if tag == ACK:
                    # The batch's receipts (hub/ingest/receipts.py), then its PUBACKs:
                    # both say the same commit is done, to the device and to the broker.
                    for topic, payload, qos in request[2]:
                        self.client.publish(topic, payload, qos=qos)
                    for mid, qos in request[1]:
                        self.client.ack(mid, qos)
                elif tag == PUBLISH:
                    self._publish(request[1], request[2])
                elif tag == STOP:
                    retire = bool(request[1])
                    break
        finally:
            self._stopping.set()
            self._wake.set()
            props = None
            if retire:
                # End the session: a removed worker must not keep taking its share.
                props = Properties(PacketTypes.DISCONNECT)
                props.SessionExpiryInterval = 0
            self.client.disconnect(properties=props)
            self.client.loop_stop()
            self._flusher.join(2)
            with contextlib.suppress(OSError):
                self.send((STOPPED,))


def main(argv: list[str]) -> int:
    # Ctrl-C in a terminal and systemd's SIGTERM reach the whole process group.
    # The hub process owns shutdown: it finishes its batch, has it acknowledged
    # here, then sends STOP. Dying first would drop those acks and make the hub
    # think its transport crashed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(int(argv[0]))
    cfg, client_id, log_level = conn.recv()
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Transport(cfg, client_id, conn).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
