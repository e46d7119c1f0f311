"""What the link costs on a metered card, against a real TLS Mosquitto through a metering proxy:
TLS session resumption, no re-subscribe when the broker kept the session, topic aliases,
and the keepalive switched with armed hours."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.link import Link
from agent.outbox import Outbox
from protocol.codec import encode
from protocol.messages import Command, Health
from protocol.topics import cmd_topic, health_topic, state_topic
from tests.support.broker import Broker, run_broker
from tests.support.tls import DEVICE, Hub, Pki, link_settings, make_pki, tls_config
from tests.support.tls_meter import APPDATA, MeteringProxy
from tests.support.wait import wait_for


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Pki, Broker, MeteringProxy]]:
    p = make_pki(tmp_path / "pki")
    with run_broker(tls_config(p)) as broker:
        proxy = MeteringProxy(broker.port).start()
        try:
            yield p, broker, proxy
        finally:
            proxy.close()


def link_for(p: Pki, proxy: MeteringProxy, box: Outbox, armed: Any = None, **kw: Any) -> Link:
    s = link_settings(p, proxy.port, host="localhost", backoff_base_s=0.1, backoff_cap_s=0.3, **kw)
    return Link(s, box, armed=armed)


def test_a_reconnect_resumes_tls_keeps_the_subscriptions_and_fits_in_1_5_kb(
    rig: tuple[Pki, Broker, MeteringProxy], tmp_path: Path
) -> None:
    p, broker, proxy = rig
    hub = Hub(p, broker, [state_topic(DEVICE)], receipts=False)
    link = link_for(p, proxy, Outbox(tmp_path / "o.sqlite3"))
    got: list[str] = []
    link._on_message = lambda topic, _payload: got.append(topic)  # the agent's command handler
    link.start()
    try:
        wait_for(lambda: link.connected and link._subscribed, 10, "first connection subscribed")
        time.sleep(0.5)  # the broker's session ticket follows the handshake
        proxy.drop()
        wait_for(lambda: len(proxy.snapshot()) == 2 and link.connected, 10, "reconnected")
        time.sleep(0.5)
        first, second = proxy.snapshot()
        assert (link.tls.full, link.tls.resumed) == (1, 1)
        # The resumed handshake has no certificates: under half the bytes of the first connection's set-up.
        setup_first, setup_second = first.payload(since=0, until=first.opened + 2), second.payload()
        assert setup_second < setup_first / 2, (setup_first, setup_second)
        # Issue 19's goal: a reconnect (resumed TLS, CONNECT with the will, the online state) in 1.5 KB.
        assert setup_second <= 1500, setup_second
        # No SUBSCRIBE on the second connection, and commands still arrive: the broker kept the session.
        hub.publish(cmd_topic(DEVICE), encode(Command(command_id="c-1", op="identify")))
        wait_for(lambda: cmd_topic(DEVICE) in got, 10, "command after the reconnect")
        assert link.subscribe_requests == 1
    finally:
        link.stop()
        hub.close()


def test_topic_aliases_send_each_topic_once_per_connection(
    rig: tuple[Pki, Broker, MeteringProxy], tmp_path: Path
) -> None:
    p, broker, proxy = rig
    hub = Hub(p, broker, [health_topic(DEVICE)], receipts=False)
    link = link_for(p, proxy, Outbox(tmp_path / "o.sqlite3"))
    link.start()
    try:
        wait_for(lambda: link.connected, 10, "connected")
        payload = encode(Health(time_ms=1_764_138_060_000, camera="ok"))
        for _ in range(3):
            assert link.publish_volatile(health_topic(DEVICE), payload)
            time.sleep(0.3)
        hub.wait(lambda m: sum(1 for t, _ in m if t == health_topic(DEVICE)) >= 3)
        # The hub sees the full topic every time (the broker resolves the alias) ...
        assert [pl for t, pl in hub.messages if t == health_topic(DEVICE)] == [payload] * 3
        # ... while on the device's link only the first publish carried it.
        (conn,) = proxy.snapshot()
        sizes = [r.plaintext for r in conn.records if r.up and r.kind == APPDATA and r.plaintext > len(payload)]
        heartbeats = sizes[-3:]
        topic = len(health_topic(DEVICE))
        assert heartbeats[0] - heartbeats[1] == topic and heartbeats[1] == heartbeats[2], heartbeats
    finally:
        link.stop()
        hub.close()


def test_the_keepalive_follows_armed_hours_with_one_clean_reconnect(
    rig: tuple[Pki, Broker, MeteringProxy], tmp_path: Path
) -> None:
    p, broker, proxy = rig
    hub = Hub(p, broker, [state_topic(DEVICE)], receipts=False)
    armed = [True]
    link = link_for(p, proxy, Outbox(tmp_path / "o.sqlite3"), keepalive=10, keepalive_idle=40, armed=lambda: armed[0])
    link.start()
    try:
        wait_for(lambda: link.connected, 10, "connected")
        assert link.keepalive_now == 10
        armed[0] = False  # armed hours end
        wait_for(lambda: link.connected and link.keepalive_now == 40, 10, "reconnected with the day keepalive")
        assert len(proxy.snapshot()) == 2
        assert re.search(rf"as {DEVICE} \(p5, c0, k40", broker.log()), broker.log()[-800:]
        # A clean DISCONNECT: the broker did not publish the will, so the hub never saw the house go offline.
        time.sleep(1.0)
        states = [pl for t, pl in hub.messages if t == state_topic(DEVICE)]
        assert all(b'"offline"' not in s for s in states), states
        armed[0] = True
        wait_for(lambda: link.connected and link.keepalive_now == 10, 10, "back to the night keepalive")
        assert len(proxy.snapshot()) == 3 and link.tls.resumed == 2
    finally:
        link.stop()
        hub.close()
