"""Faults with the real parts: broker restart, hub SIGKILL, platform outage,
a device offline for a day, a full SD card, power loss during outbox writes.

Every test keeps a ledger of what was sent and checks the hub database: each
(device, event id, phase) sent is stored exactly once, or was dropped by the
device's outbox with a record of it (the ``obd`` count that reaches the hub).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

from agent import outbox as ob
from agent.clock import DeviceClock
from agent.health import HealthReporter, HealthSources
from agent.outbox import Outbox
from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.inbound import Inbound
from hub.db.schema_ops import alarms, health_latest
from hub.forward import Forwarder, ManualClock, ViidConfig, ViidSink, WebhookConfig, WebhookSink
from hub.ingest.batch import BatchProcessor
from protocol.codec import Snapshot, encode, encode_snapshot
from protocol.messages import Event
from protocol.topics import event_topic, health_topic, snap_topic
from sim.mock_viid import MockViid
from sim.mock_webhook import MockWebhook
from tests.support.forward_items import GATEWAY, JPEG, PASSWORD
from tests.support.reliability_rig import (
    ROOT,
    Ledger,
    Rig,
    event,
    hub_yaml,
    link_for,
    now_ms,
    running_hub,
    spawn_hub,
    stop_process,
)
from tests.support.wait import wait_for

PRIORITY = {"motion": ob.MOTION, "person": ob.PERSON, "panic": ob.PANIC}


def health_of(rig: Rig, device: str, box: Outbox, tmp: Path) -> bytes:
    """The heartbeat the agent would send now, built by the agent's own reporter."""
    sources = HealthSources(
        outbox=box, clock=DeviceClock(probe=lambda: "synced"), state_dir=tmp, boot=1, interval_s=60, vcgencmd=None
    )
    return encode(HealthReporter(sources, lambda _h: True).build())


# -- broker restarted during a 1,000-event burst ---------------------------------------------------


def test_broker_restart_during_a_1000_event_burst(rig: Rig) -> None:
    ledger = Ledger()
    boxes = {d: Outbox(rig.tmp / f"ob-{d}.sqlite3") for d in rig.devices}
    links = [link_for(rig, d, box) for d, box in boxes.items()]
    per_device = 1000 // len(boxes)

    def burst() -> None:
        # Paced so the restart lands in the middle: ~1,000 events over ~2.5 s.
        for i in range(per_device):
            for d, box in boxes.items():
                ev = event(i // 2, phase="start" if i % 2 == 0 else "end")
                assert box.put(event_topic(d), encode(ev), priority=ob.MOTION, kind="event")
                ledger.sent.add((d, ev.event_id, ev.phase))
            time.sleep(0.01)

    with running_hub(rig) as hub:
        for link in links:
            link.start()
        writer = threading.Thread(target=burst)
        writer.start()
        try:
            wait_for(lambda: ledger.stored(rig.engine)[0] >= 150, 20, "the first part of the burst stored")
            rig.broker.start_again()  # SIGTERM: Mosquitto saves its persistence file and restarts
            restarted_at = ledger.stored(rig.engine)[0]
            writer.join(30)
            wait_for(lambda: ledger.stored(rig.engine)[0] >= 1000, 30, "all 1,000 events stored", step=0.2)
            assert restarted_at < 1000, "the restart must land mid-burst"
            assert all(link.connects >= 2 for link in links), [link.connects for link in links]
        finally:
            for link in links:
                link.stop()
        duplicates = hub.metrics.duplicates._value.get()  # redeliveries the hub absorbed
    assert len(ledger.sent) == 1000
    assert sum(box.dropped for box in boxes.values()) == 0
    ledger.assert_nothing_lost(rig.engine)
    assert duplicates >= 0
    for box in boxes.values():
        assert box.integrity_ok()
        box.close()


# -- the hub killed with SIGKILL mid-ingest ------------------------------------------------------------


def test_hub_sigkill_mid_ingest_loses_and_duplicates_nothing(rig: Rig) -> None:
    ledger = Ledger()
    config = hub_yaml(rig, rig.tmp / "hub.yaml")
    log = rig.tmp / "hub.log"
    boxes = {d: Outbox(rig.tmp / f"ob-{d}.sqlite3") for d in rig.devices}
    links = [link_for(rig, d, box) for d, box in boxes.items()]
    hub = spawn_hub(config, log)
    try:
        # One event first: stored means the hub's persistent session and subscriptions exist.
        first = rig.devices[0]
        ev = event(10_000)
        boxes[first].put(event_topic(first), encode(ev), priority=ob.PERSON, kind="event")
        ledger.sent.add((first, ev.event_id, ev.phase))
        for link in links:
            link.start()
        wait_for(lambda: ledger.stored(rig.engine)[0] == 1, 20, "the hub subscribed and ingesting")
        for i in range(250):
            for d, box in boxes.items():
                ev = event(i, kind="person" if i % 10 == 0 else "motion")
                box.put(event_topic(d), encode(ev), priority=PRIORITY[ev.kind], kind="event")
                ledger.sent.add((d, ev.event_id, ev.phase))
        wait_for(lambda: ledger.stored(rig.engine)[0] >= 60, 20, "ingest under way", step=0.005)
        hub.send_signal(signal.SIGKILL)
        hub.wait(10)
        at_kill = ledger.stored(rig.engine)[0]
        assert at_kill < len(ledger.sent), "the kill must land mid-ingest"
        # The devices keep publishing into the broker while the hub is dead, up to
        # their window of messages without a receipt; the rest wait in the outbox.
        wait_for(
            lambda: all(
                link.unreceipted >= min(box.depth, link.settings.receipt_window)
                for link, box in zip(links, boxes.values(), strict=True)
            ),
            30,
            "devices' windows handed to the broker",
        )
        hub = spawn_hub(config, log)
        wait_for(lambda: ledger.stored(rig.engine)[0] >= len(ledger.sent), 60, "every event after restart", step=0.2)
        time.sleep(0.5)  # a late redelivery would show up as a duplicate now
        assert hub.poll() is None, log.read_text()
    finally:
        for link in links:
            link.stop()
        stop_process(hub)
    assert len(ledger.sent) == 1001
    ledger.assert_nothing_lost(rig.engine)


# -- the platform down for a simulated hour ------------------------------------------------------------


def test_platform_down_for_a_simulated_hour_then_everything_in_order(rig: Rig) -> None:
    t0 = now_ms()
    clock = ManualClock(t0)
    viid = MockViid(GATEWAY, PASSWORD, now_ms=clock.now_ms)
    secret = b"reliability-webhook-secret-32-by"
    hook = MockWebhook(secret, now_s=lambda: clock.now_ms() / 1000)
    viid.start()
    hook_url = hook.start()
    fwd = Forwarder(
        rig.engine,
        [
            ViidSink(ViidConfig(f"http://127.0.0.1:{viid.port}", GATEWAY, PASSWORD, timeout_s=3), clock),
            WebhookSink(WebhookConfig(hook_url, secret, event_kinds=frozenset({"person"})), clock),
        ],
        clock,
        rng=random.Random(9),
    )
    directory = Directory(rig.engine, ttl_s=60)
    # Armed hours that never match, so only the events themselves are forwarded (no alerts).
    alerts = AlertEngine(directory, AlertConfig(), fwd)
    alerts.armed_at = lambda *_a: False  # type: ignore[method-assign]
    proc = BatchProcessor(rig.engine, directory, alerts, fwd, HealthConfig())
    ledger = Ledger()
    order: list[str] = []
    try:
        viid.go_down("refuse")
        hook.mode = "503"
        mid = 0
        for i in range(40):  # the real ingest path: event, then its picture on its own topic
            dev = rig.devices[i % len(rig.devices)]
            ev = Event(
                event_id=(2 << 32) + i,
                kind="person",
                phase="start",
                time_ms=t0 - 60_000 + i,
                score=88,
                bbox=(100, 100, 400, 900),
                count=1,
                has_snapshot=True,
            )
            snap = Snapshot(ev.event_id, "start", ev.time_ms, 640, 480, JPEG)
            mid += 2
            proc.process(
                [
                    Inbound(event_topic(dev), encode(ev), mid, 1, now_ms()),
                    Inbound(snap_topic(dev), encode_snapshot(snap), mid + 1, 1, now_ms()),
                ]
            )
            ledger.sent.add((dev, ev.event_id, "start"))
            order.append(f"{dev}-{ev.event_id}-start")
        ledger.assert_nothing_lost(rig.engine)

        for _ in range(60):  # one simulated hour, polled every simulated minute: no sleeps
            clock.advance(60)
            fwd.run_once()
        stats = fwd.stats()
        assert (stats["viid"].depth, stats["webhook"].depth) == (40, 40)
        assert stats["viid"].dead == 0 and stats["viid"].oldest_age_s >= 3600
        assert viid.persons == [] and hook.bodies == []

        viid.come_up()
        hook.mode = "up"
        for _ in range(30):
            clock.advance(60)
            fwd.run_once()
        assert {s.depth for s in fwd.stats().values()} == {0}
        assert [b["id"] for b in hook.bodies] == order  # in order, each once
        assert len(viid.persons) == 40 and viid.rejections == []
        assert hook.duplicates == 0 and hook.bad_signatures == 0
        assert [s.dead for s in fwd.stats().values()] == [0, 0]
    finally:
        fwd.stop()
        viid.stop()
        hook.stop()


# -- a device offline for a simulated day, its outbox past its bound ---------------------------------------


def _drop_model(puts: list[tuple[int, int]], max_rows: int) -> set[int]:
    """Which (index) survive an outbox of ``max_rows`` that drops the lowest (priority, seq) first, never panic."""
    kept: list[tuple[int, int]] = []  # (priority, index)
    for index, priority in puts:
        kept.append((priority, index))
        while len(kept) > max_rows:
            victims = [k for k in kept if k[0] < ob.PANIC]
            kept.remove(min(victims))
    return {index for _, index in kept}


def test_device_offline_for_a_day_drops_are_ordered_counted_and_alarmed(rig: Rig) -> None:
    dev = rig.devices[0]
    box = Outbox(rig.tmp / "ob.sqlite3", max_rows=60)
    ledger = Ledger()
    with running_hub(rig):
        link = link_for(rig, dev, box)
        link.start()
        wait_for(lambda: link.connected, 10, "device online")
        assert link.publish_volatile(health_topic(dev), health_of(rig, dev, box, rig.tmp))  # obd=0 baseline
        with rig.engine.connect() as conn:
            wait_for(
                lambda: conn.execute(select(func.count()).select_from(health_latest)).scalar_one() == 1,
                10,
                "baseline heartbeat stored",
            )
        link.stop()  # the Wi-Fi goes; the camera keeps seeing things for a day

        day_start = now_ms() - 86_400_000
        rng = random.Random(20251126)
        puts: list[tuple[int, int]] = []
        sent: list[tuple[str, int, str]] = []
        seq = 0
        for minute in range(0, 24 * 60, 5):  # a simulated day in 5-minute steps, device time advancing
            t = day_start + minute * 60_000
            kinds = ["motion"] * rng.randint(0, 2) + (["person"] if rng.random() < 0.2 else [])
            if minute in (600, 1200):
                kinds.append("panic")
            for kind in kinds:
                ev = event(seq, kind=kind, t=t)
                seq += 1
                box.put(event_topic(dev), encode(ev), priority=PRIORITY[kind], kind="event")
                puts.append((len(sent), PRIORITY[kind]))
                sent.append((dev, ev.event_id, ev.phase))
        ledger.sent = set(sent)
        survivors = {sent[i] for i in _drop_model(puts, 60)}
        assert box.depth == 60 and box.dropped == len(sent) - 60
        assert len(sent) > 2 * 60, "the day must overfill the outbox"

        link = link_for(rig, dev, box)
        link.start()
        try:
            wait_for(lambda: link.connected, 10, "device back")
            assert link.publish_volatile(health_topic(dev), health_of(rig, dev, box, rig.tmp))
            wait_for(lambda: len(ledger.stored_keys(rig.engine)) >= 60, 20, "survivors delivered")

            def alarm_open() -> bool:
                with rig.engine.connect() as conn:
                    return (
                        conn.execute(
                            select(alarms.c.detail).where(
                                alarms.c.device_id == dev,
                                alarms.c.kind == "outbox_dropping",
                                alarms.c.cleared_ms.is_(None),
                            )
                        ).first()
                        is not None
                    )

            wait_for(alarm_open, 10, "operator alarm 'outbox dropping'")
        finally:
            link.stop()
        with rig.engine.connect() as conn:
            obd = conn.execute(
                select(health_latest.c.outbox_dropped).where(health_latest.c.device_id == dev)
            ).scalar_one()
    stored = ledger.stored_keys(rig.engine)
    assert obd == box.dropped == len(sent) - 60  # the device's drop count reached the hub
    assert stored == survivors  # exactly the lowest-priority, oldest went
    assert len(stored) + obd == len(sent)  # sent = stored + dropped-with-a-record
    kinds = {sent[i]: k for i, k in puts}
    assert {s for s in sent if kinds[s] == ob.PANIC} <= stored  # panic never dropped
    dropped_motion = sum(1 for s in set(sent) - stored if kinds[s] == ob.MOTION)
    dropped_person = sum(1 for s in set(sent) - stored if kinds[s] == ob.PERSON)
    assert dropped_motion > dropped_person
    box.close()


# -- the SD card full -------------------------------------------------------------------------------------


def test_sd_card_full_reports_in_health_and_flows_when_space_returns(rig: Rig) -> None:
    dev = rig.devices[0]
    box = Outbox(rig.tmp / "ob.sqlite3")
    ledger = Ledger()
    with running_hub(rig):
        link = link_for(rig, dev, box)
        try:
            # The card fills: SQLite may not grow the file by another page (what ENOSPC looks like to it).
            (pages,) = box._db.execute("PRAGMA page_count").fetchone()
            box._db.execute(f"PRAGMA max_page_count = {pages}")
            refused = 0
            for i in range(400):
                ev = event(i, kind="person")
                if not box.put(event_topic(dev), encode(ev), priority=ob.PERSON, kind="event"):
                    refused += 1
                ledger.sent.add((dev, ev.event_id, ev.phase))
            assert refused > 0, "the full card must refuse writes"
            assert box.error == "outbox write failed: disk full"
            link.start()  # the agent keeps running: the link starts and sends from memory
            wait_for(lambda: link.connected, 10, "device online")
            health = health_of(rig, dev, box, rig.tmp)
            assert b'"err":"outbox write failed: disk full"' in health
            assert link.publish_volatile(health_topic(dev), health)

            def hub_error() -> str | None:
                with rig.engine.connect() as conn:
                    data = conn.execute(
                        select(health_latest.c.data).where(health_latest.c.device_id == dev)
                    ).scalar_one_or_none()
                return None if data is None else data.get("err")

            wait_for(lambda: hub_error() == "outbox write failed: disk full", 10, "error visible at the hub")
            assert link.alive()

            box._db.execute("PRAGMA max_page_count = 1073741823")  # space returns
            box.retry(force=True)
            assert box.error is None
            for i in range(400, 450):  # and new events are written to the card again
                ev = event(i, kind="person")
                assert box.put(event_topic(dev), encode(ev), priority=ob.PERSON, kind="event")
                ledger.sent.add((dev, ev.event_id, ev.phase))
            wait_for(
                lambda: box.depth == 0 and len(ledger.stored_keys(rig.engine)) + box.dropped >= len(ledger.sent),
                30,
                "everything stored or dropped with a record",
            )
            assert link.publish_volatile(health_topic(dev), health_of(rig, dev, box, rig.tmp))
            wait_for(lambda: hub_error() is None, 10, "error cleared at the hub")
        finally:
            link.stop()
    # The memory overflow holds 256 while the card refuses writes; the rest of the 400 were
    # dropped with a record (obd), never silently.
    ledger.dropped_on_device = box.dropped
    assert ledger.dropped_on_device == 400 - 256 - (400 - refused)
    stored = ledger.stored_keys(rig.engine)
    assert len(stored) + ledger.dropped_on_device == len(ledger.sent)
    rows, distinct = ledger.stored(rig.engine)
    assert rows == distinct
    assert box.integrity_ok()
    box.close()


# -- power loss during outbox writes ----------------------------------------------------------------------

WRITER = """
import random, sys
from pathlib import Path
from agent import outbox as ob
from agent.outbox import Outbox
db, seed = Path(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
box = Outbox(db, max_rows=100_000)
print("R", flush=True)
i = 0
while True:
    kind = rng.choice([ob.MOTION, ob.PERSON, ob.PANIC])
    payload = (f"{seed}:{i}:".encode() + bytes(rng.randrange(256) for _ in range(rng.randrange(50, 900))))
    if box.put(f"t/{seed}/{i}", payload, priority=kind, kind="event"):
        print("P", f"t/{seed}/{i}", flush=True)  # put returned: committed, must survive
    if rng.random() < 0.3:
        batch = box.pending(3)
        for m in batch:  # said before deleting: once acknowledged it may go (or come back as a duplicate)
            print("D", m.topic, flush=True)
        box.delete([m.seq for m in batch])
    i += 1
"""


def test_power_loss_during_outbox_writes_loses_nothing_committed(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    db = tmp_path / "ob.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(1400)
    committed: set[str] = set()
    deleted: set[str] = set()
    for seed in range(6):
        child = subprocess.Popen(
            [sys.executable, str(script), str(db), str(seed)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "R"
        time.sleep(rng.uniform(0.05, 0.6))  # a random point in the write stream
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
        for line in out.splitlines():
            parts = line.split()
            if len(parts) != 2:
                continue  # the kill may cut the last line short: not reported, not promised
            (committed if parts[0] == "P" else deleted).add(parts[1])
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            present = {t for (t,) in conn.execute("SELECT topic FROM outbox")}
        finally:
            conn.close()
        missing = committed - deleted - present
        assert not missing, f"iteration {seed}: {len(missing)} committed messages lost, e.g. {sorted(missing)[:3]}"
    assert len(committed) > 50 and deleted, (len(committed), len(deleted))
    box = Outbox(db)  # and the agent opens it again normally
    assert box.integrity_ok() and box.depth >= len(committed - deleted)
    box.close()
