"""The MQTT link against a real Mosquitto with TLS and client certificates."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import outbox as ob
from agent.link import Link, LinkSettings
from agent.outbox import Outbox
from agent.reconnect import backoff_delay
from protocol.codec import decode_state, encode
from protocol.messages import Command
from protocol.receipts import receipts_for
from protocol.topics import cmd_topic, event_topic, receipt_topic, state_topic
from tests.support.broker import Broker, run_broker
from tests.support.events import numbered_event_payload
from tests.support.tls import DEVICE, Hub, Pki, link_settings, make_pki, tls_config


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[Pki, Broker]]:
    p = make_pki(tmp_path / "pki")
    with run_broker(tls_config(p)) as broker:
        yield p, broker


def settings(p: Pki, broker: Broker, **kw: Any) -> LinkSettings:
    base: dict[str, Any] = dict(
        keepalive=10,
        max_inflight=5,
        backoff_base_s=0.1,
        backoff_cap_s=0.5,
        agent_version="0.1.0",
        boot=1,
        health_interval_s=60,
    )
    return link_settings(p, broker.port, **(base | kw))


def event_ids(messages: list[tuple[str, bytes]], topic: str) -> list[int]:
    from protocol.codec import decode_event

    return [decode_event(p).event_id & 0xFFFFFFFF for t, p in messages if t == topic]


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(40)]
    assert all(0 <= d <= min(60.0, 2**n) for n, d in enumerate(delays))
    late = [backoff_delay(30, 1.0, 60.0, rng) for _ in range(2000)]
    assert max(late) <= 60.0 and min(late) < 3.0  # spread over the whole window, not bunched at the cap
    assert 25 < sum(late) / len(late) < 35


def test_tls_link_drains_in_order_and_says_online(tls: tuple[Pki, Broker], tmp_path: Path) -> None:
    p, broker = tls
    hub = Hub(p, broker, [event_topic(DEVICE), state_topic(DEVICE)])
    box = Outbox(tmp_path / "o.sqlite3")
    for i in range(30):
        box.put(event_topic(DEVICE), numbered_event_payload(i), priority=ob.PERSON, kind="event")
    link = Link(settings(p, broker), box)
    link.start()
    try:
        hub.wait(lambda m: len(event_ids(m, event_topic(DEVICE))) >= 30)
        assert event_ids(hub.messages, event_topic(DEVICE)) == list(range(30))
        states = [decode_state(pl) for t, pl in hub.messages if t == state_topic(DEVICE)]
        assert states[0].state == "online" and states[0].boot == 1 and states[0].interval_s == 60
        deadline = time.monotonic() + 5
        while box.depth and time.monotonic() < deadline:
            time.sleep(0.05)
        assert box.depth == 0  # deleted on PUBACK
    finally:
        link.stop()
        hub.close()
    last = [decode_state(pl).state for t, pl in hub.messages if t == state_topic(DEVICE)]
    assert last[-1] == "offline"


def test_broker_outage_every_event_arrives_in_order(tls: tuple[Pki, Broker], tmp_path: Path) -> None:
    p, broker = tls
    topic = event_topic(DEVICE)
    hub = Hub(p, broker, [topic])
    box = Outbox(tmp_path / "o.sqlite3")
    link = Link(settings(p, broker), box)
    link.start()
    try:
        for i in range(10):
            box.put(topic, numbered_event_payload(i), priority=ob.PERSON, kind="event")
        hub.wait(lambda m: len(m) >= 10)
        broker.stop()
        deadline = time.monotonic() + 5
        while link.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not link.connected
        for i in range(10, 40):  # the outage: events pile up in the outbox
            box.put(topic, numbered_event_payload(i), priority=ob.PERSON, kind="event")
            time.sleep(0.01)
        time.sleep(1.0)  # several reconnect attempts fail meanwhile
        assert link.attempts >= 2
        broker.start_again()
        hub.wait(lambda m: set(event_ids(m, topic)) >= set(range(40)), timeout=20)
        ids = event_ids(hub.messages, topic)
        # In order: once the duplicates a reconnect may cause are removed, the first arrivals are sorted.
        first_seen = list(dict.fromkeys(ids))
        assert first_seen == list(range(40))
    finally:
        link.stop()
        hub.close()


def test_commands_reach_the_device_and_unknown_cert_is_refused(tls: tuple[Pki, Broker], tmp_path: Path) -> None:
    p, broker = tls
    got: list[tuple[str, bytes]] = []
    box = Outbox(tmp_path / "o.sqlite3")
    link = Link(settings(p, broker), box, on_message=lambda t, b: got.append((t, b)))
    link.start()
    hub = Hub(p, broker, [state_topic(DEVICE)])
    try:
        hub.wait(lambda m: any(t == state_topic(DEVICE) for t, _ in m))
        payload = encode(Command(command_id="c-1", op="arm"))
        hub.publish(cmd_topic(DEVICE), payload)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got == [(cmd_topic(DEVICE), payload)]
    finally:
        link.stop()
        hub.close()
    # A certificate from another CA never gets a session.
    other = make_pki(tmp_path / "other")
    rogue = Link(settings(p, broker, ca=p.ca, cert=other.cert, key=other.key), Outbox(tmp_path / "r.sqlite3"))
    rogue.start()
    time.sleep(1.5)
    rogue.stop()
    assert rogue.connects == 0 and rogue.attempts >= 1 and rogue.last_error


CHILD = """
import sys, time
from pathlib import Path
from agent import outbox as ob
from agent.link import Link, LinkSettings
from agent.outbox import Outbox
from protocol.topics import event_topic
from tests.support.events import numbered_event_payload

db, port, pkidir, fill = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
box = Outbox(Path(db))
link = Link(LinkSettings(device_id="{device}", group="g1", host="127.0.0.1", port=port, ca=pkidir / "ca.crt",
                         cert=pkidir / "device.crt", key=pkidir / "device.key", max_inflight=5,
                         backoff_base_s=0.1, backoff_cap_s=0.5), box)
for i in range(fill):
    if i == fill // 2:
        link.start()  # a backlog first, so the kill lands in the middle of draining it
    box.put(event_topic("{device}"), numbered_event_payload(i), priority=ob.PERSON, kind="event")
    print(i, flush=True)  # committed: from here on it must arrive
if not fill:
    link.start()
while True:
    time.sleep(1)
"""


def test_kill_9_during_drain_loses_nothing(tls: tuple[Pki, Broker], tmp_path: Path) -> None:
    import os
    import signal
    import sqlite3
    import subprocess
    import sys

    p, broker = tls
    topic = event_topic(DEVICE)
    hub = Hub(p, broker, [topic])
    script = tmp_path / "child.py"
    script.write_text(CHILD.replace("{device}", DEVICE))
    db = tmp_path / "o.sqlite3"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}

    def spawn(fill: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(script), str(db), str(broker.port), str(p.dir), str(fill)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=root,
        )

    try:
        child = spawn(2000)
        hub.wait(lambda m: len(m) >= 50, timeout=20)
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=5)
        committed = {int(line) for line in out.split()}
        assert len(committed) >= 1000
        assert len(set(event_ids(hub.messages, topic))) < len(committed), "the kill must land mid-drain"
        assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        child = spawn(0)
        hub.wait(lambda m: set(event_ids(m, topic)) >= committed, timeout=20)
        child.terminate()
        child.wait(5)
    finally:
        if child.poll() is None:
            child.kill()
        hub.close()
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_new_outbox_is_not_freed_by_receipts_queued_for_the_old_one(tls: tuple[Pki, Broker], tmp_path: Path) -> None:
    """A reflashed SD card starts a new outbox whose rows are numbered from 1 again.
    A receipt the broker still holds in the device's session (sent to its old life
    while it was away) must not free the new rows, which the hub has never seen."""
    p, broker = tls
    old = Outbox(tmp_path / "old.sqlite3")
    link = Link(settings(p, broker, session_expiry=3600), old)
    link.start()
    deadline = time.monotonic() + 10
    while not link.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert link.connected
    link.stop()  # its session, with the receipt subscription, stays at the broker
    hub = Hub(p, broker, [event_topic(DEVICE)], receipts=False)
    hub.client.publish(receipt_topic(DEVICE), encode(receipts_for(range(1, 11))[0]), qos=1).wait_for_publish(5)
    new = Outbox(tmp_path / "new.sqlite3")
    assert new.numbering_is_new()
    for i in range(5):
        new.put(event_topic(DEVICE), numbered_event_payload(i), priority=ob.PERSON, kind="event")
    link = Link(settings(p, broker, session_expiry=3600), new)
    link.start()
    try:
        deadline = time.monotonic() + 10
        while not link.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.connected
        time.sleep(1.5)  # a queued receipt would have been delivered by now
        assert new.depth == 5, "a receipt for the old outbox freed rows the hub never stored"
        assert not new.numbering_is_new()  # once only: later connections resume the session
    finally:
        link.stop()
        hub.close()
