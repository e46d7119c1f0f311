"""Attack: a stolen Pi keeps the TLS session ticket from before its revocation.

A resumed TLS session skips the certificate check, and with it the broker's
CRL. Revocation must still shut the thief out: provisioning deletes the device
from the dynamic-security model, so whatever the TLS layer lets in can neither
read nor write anything.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.tls_session import ResumingContext, client_context
from protocol.topics import Channel, alert_topic, cmd_topic, event_topic, uplink_filter
from provisioning import commands
from tests.support.broker import run_broker
from tests.support.mqtt_clients import connect
from tests.support.provisioned_county import County, build_county


class Thief:
    """The stolen device's own client, its TLS context (and ticket) kept across connections."""

    def __init__(self, c: County, device_id: str, tls: dict[str, Path]) -> None:
        self.c, self.device_id = c, device_id
        self.ctx: ResumingContext = client_context(tls["ca"], tls["cert"], tls["key"])
        self.reused: bool | None = None

    def session(self) -> tuple[mqtt.Client, str | None]:
        """Connect: (client, None) once the broker accepts, or (client, why not)."""
        cl = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=mqtt.MQTTv5)
        cl.tls_set_context(self.ctx)
        done, why = threading.Event(), []
        self.reused = None

        def on_connect(client, _u, _f, reason, _p):  # type: ignore[no-untyped-def]
            self.ctx.remember(client.socket())
            self.reused = client.socket().session_reused
            if reason.is_failure:
                why.append(str(reason))
            done.set()

        def on_disconnect(*_a: object) -> None:
            # TLS 1.3: the client's handshake is done before the broker has checked its
            # certificate, so a refused certificate shows as a drop before any CONNACK.
            if self.reused is None:
                why.append("dropped before CONNACK")
            done.set()

        cl.on_connect = on_connect
        cl.on_disconnect = on_disconnect
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        try:
            cl.connect("localhost", self.c.port, keepalive=30, clean_start=False, properties=props)
        except OSError as exc:
            return cl, f"handshake failed: {exc}"
        cl.loop_start()
        if not done.wait(10):
            why.append("no CONNACK")
        return cl, (why[0] if why else None)


@pytest.mark.parametrize("reload", [True, False], ids=["crl-reloaded", "broker-not-signalled"])
def test_a_revoked_device_holding_a_tls_ticket_gets_nothing(tmp_path: Path, monkeypatch, reload: bool) -> None:  # type: ignore[no-untyped-def]
    """``reload``: the office could SIGHUP the broker (its ticket keys change with the new
    CRL) or not (a broker on another host: only the control API's model change reaches it)."""
    c = build_county(tmp_path, households=(("HA", "g1"), ("HB", "g1")))
    victim, neighbour = c.devices["HA"], c.devices["HB"]
    with run_broker(c.conf(), port=c.port):
        hub = connect(c.port, client_id="hub", **c.identity("hub"))
        assert hub.subscribe(uplink_filter(Channel.EVENT)) == 1
        thief = Thief(c, victim.device_id, victim.tls)
        cl, refused = thief.session()
        assert refused is None and thief.reused is False and thief.ctx.resume is not None
        cl.disconnect()
        cl.loop_stop()

        if not reload:
            real_kill = os.kill
            monkeypatch.setattr(os, "kill", lambda pid, sig: None if sig == signal.SIGHUP else real_kill(pid, sig))
        assert commands.revoke(c.state, c.engine, victim.device_id, reason="stolen", broker_dir=None, pid=None,
                               restart=False) == 0  # fmt: skip

        cl, refused = thief.session()
        try:
            if reload:
                # New ticket keys: the ticket is worthless, the full handshake meets the CRL.
                assert refused is not None and not thief.reused, (refused, thief.reused)
                return
            # The ticket still works and the CRL is skipped: the thief is in, but with no role.
            assert refused is None and thief.reused, (refused, thief.reused)
            codes: list[int] = []
            got = threading.Event()

            def on_subscribe(_c, _u, _mid, reasons, _p):  # type: ignore[no-untyped-def]
                codes.extend(int(r.value) for r in reasons)
                got.set()

            cl.on_subscribe = on_subscribe
            cl.subscribe([(alert_topic(victim.group), 1), (cmd_topic(victim.device_id), 1)])
            assert got.wait(5) and codes and all(code >= 0x80 for code in codes), codes
            panic = b'{"v":1,"id":1,"k":"panic","p":"start","t":1,"s":100}'
            cl.publish(event_topic(victim.device_id), panic, 1).wait_for_publish(5)
            assert not hub.wait_topic(event_topic(victim.device_id), timeout=1.5)
            # The honest neighbour is untouched.
            honest = connect(c.port, client_id=neighbour.device_id, **neighbour.tls)
            honest.publish(event_topic(neighbour.device_id), b'{"v":1,"id":1,"k":"motion","p":"start","t":1,"s":5}')
            assert hub.wait_topic(event_topic(neighbour.device_id))
            honest.close()
        finally:
            cl.disconnect()
            cl.loop_stop()
            hub.close()
    c.engine.dispose()
