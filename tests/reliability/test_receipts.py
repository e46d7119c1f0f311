"""End-to-end receipts with the real parts: the broker's copy lost while the
hub is down (Mosquitto SIGKILLed, the hub's session expired), a re-send storm
that must not happen, and a panic pressed while the device's link is cut.

Devices are the agent's own Outbox + Link (+ OutboxWriter for the panic) over TLS;
the hub is ``xl-hub run`` (or ``hub.service.Hub`` in this process where the
test reads its alert); Mosquitto runs with the shipped ``autosave_interval
300``, so a SIGKILL loses everything since it started.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from agent import outbox as ob
from agent.clock import DeviceClock
from agent.link import Link, LinkSettings
from agent.outbox import Outbox
from agent.outbox_writer import OutboxWriter
from hub.db import make_engine
from hub.db.schema_ops import alerts, events, snapshots
from protocol.codec import Snapshot, encode, encode_snapshot
from protocol.topics import event_topic, snap_topic
from tests.support.broker import run_broker
from tests.support.county_pki import county_pki
from tests.support.forward_items import JPEG
from tests.support.hub_db import make_fleet
from tests.support.proxy import CountingProxy
from tests.support.reliability_rig import Ledger, Rig, event, hub_yaml, running_hub, spawn_hub, stop_process
from tests.support.tls import tls_config
from tests.support.wait import wait_for

# The waits for receipts, shortened so each outage resolves in seconds. (They
# are applied only where LinkSettings has them, so this file also runs against
# the code before receipts, where it shows the losses.)
FAST = {"receipt_timeout_s": 2.0, "probe_base_s": 0.5, "probe_cap_s": 2.0}


@pytest.fixture
def rig(tmp_path: Path, sqlite_url: str) -> Iterator[Rig]:
    """As the reliability rig, but Mosquitto saves its state as shipped: every 300 s."""
    engine = make_engine(sqlite_url)
    fleet = make_fleet(engine, groups=2, per_group=2)
    cp = county_pki(tmp_path / "pki", [d for devs in fleet.values() for d in devs])
    config = tls_config(cp.base).replace("autosave_interval 1", "autosave_interval 300")
    with run_broker(config) as broker:
        yield Rig(engine, sqlite_url, fleet, cp, broker, tmp_path)
    engine.dispose()


def settings(rig: Rig, device: str, port: int | None = None, **kw: object) -> LinkSettings:
    cert, key = rig.pki.devices[device]
    fields = LinkSettings.__dataclass_fields__
    extra = {k: v for k, v in {"backoff_base_s": 0.1, "backoff_cap_s": 0.5, **FAST, **kw}.items() if k in fields}
    return LinkSettings(
        device_id=device,
        group=rig.group_of(device),
        host="127.0.0.1",
        port=port or rig.broker.port,
        ca=rig.pki.base.ca,
        cert=cert,
        key=key,
        keepalive=10,
        boot=1,
        health_interval_s=60,
        **extra,  # type: ignore[arg-type]
    )


class Fleet:
    """Four agents, each sending an event (and every third a 12 kB-class snapshot) at a steady pace."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.ledger = Ledger()
        self.snaps: set[tuple[str, int, str]] = set()
        self.boxes = {d: Outbox(rig.tmp / f"ob-{d}.sqlite3") for d in rig.devices}
        self.links = [Link(settings(rig, d), box) for d, box in self.boxes.items()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, daemon=True)
        self._n = 0

    def __enter__(self) -> Fleet:
        for link in self.links:
            link.start()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_producing()
        for link in self.links:
            link.stop()
        for box in self.boxes.values():
            box.close()

    def stop_producing(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _produce(self) -> None:
        while not self._stop.wait(0.1):
            self._n += 1
            for d, box in self.boxes.items():
                ev = event(self._n, kind="person")
                box.put(event_topic(d), encode(ev), priority=ob.PERSON, kind="person")
                self.ledger.sent.add((d, ev.event_id, ev.phase))
                if self._n % 3 == 0:
                    snap = Snapshot(ev.event_id, "start", ev.time_ms, 320, 180, JPEG)
                    box.put(snap_topic(d), encode_snapshot(snap), priority=ob.PERSON_SNAP, kind="snap")
                    self.snaps.add((d, ev.event_id, "start"))

    def stored_snaps(self, engine: Engine) -> set[tuple[str, int, str]]:
        with engine.connect() as conn:
            return {
                (r.device_id, int(r.event_id), r.phase)
                for r in conn.execute(select(snapshots.c.device_id, snapshots.c.event_id, snapshots.c.phase))
            }

    def all_stored(self, engine: Engine) -> bool:
        return self.ledger.sent <= self.ledger.stored_keys(engine) and self.snaps <= self.stored_snaps(engine)

    def assert_nothing_lost(self, engine: Engine) -> None:
        self.ledger.assert_nothing_lost(engine)
        lost = self.snaps - self.stored_snaps(engine)
        assert not lost, f"{len(lost)} of {len(self.snaps)} snapshots lost"
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(snapshots)).scalar_one() == len(self.snaps)


def _stored(rig: Rig) -> int:
    with rig.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def test_broker_sigkilled_while_the_hub_is_down_loses_nothing(rig: Rig) -> None:
    config = hub_yaml(rig, rig.tmp / "hub.yaml", client_id="hub-rcpt")
    log = rig.tmp / "hub.log"
    hub = spawn_hub(config, log)
    try:
        with Fleet(rig) as fleet:
            wait_for(lambda: _stored(rig) >= 20, 30, "the hub ingesting")
            hub.send_signal(signal.SIGKILL)
            hub.wait(10)
            time.sleep(3)  # what devices send now waits only in the broker's memory
            rig.broker.start_again(hard=True)  # SIGKILL: nothing saved since the start (autosave 300 s)
            time.sleep(3)
            fleet.stop_producing()
            hub = spawn_hub(config, log)
            wait_for(lambda: fleet.all_stored(rig.engine), 60, "every event and snapshot", step=0.25)
            fleet.assert_nothing_lost(rig.engine)
    finally:
        stop_process(hub)


@pytest.mark.parametrize("down_s", [6.0, 20.0], ids=["expires-while-down", "down-7x-the-expiry"])
def test_the_hubs_session_expiring_while_it_is_down_loses_nothing(rig: Rig, down_s: float) -> None:
    """The hub's session expires after 3 s here (3,600 s as shipped): the broker
    then drops everything it queued for the hub, and answers 0x10 after."""
    config = hub_yaml(rig, rig.tmp / "hub.yaml", client_id="hub-exp")
    raw = config.read_text().replace("client_id: hub-exp", "client_id: hub-exp\n  session_expiry_s: 3")
    config.write_text(raw)
    log = rig.tmp / "hub.log"
    hub = spawn_hub(config, log)
    try:
        with Fleet(rig) as fleet:
            wait_for(lambda: _stored(rig) >= 20, 30, "the hub ingesting")
            hub.send_signal(signal.SIGKILL)
            hub.wait(10)
            time.sleep(down_s)
            fleet.stop_producing()
            assert "Expiring client hub-exp" in rig.broker.log() or "expir" in rig.broker.log().lower()
            hub = spawn_hub(config, log)
            wait_for(lambda: fleet.all_stored(rig.engine), 60, "every event and snapshot", step=0.25)
            fleet.assert_nothing_lost(rig.engine)
    finally:
        stop_process(hub)


def test_with_nobody_subscribed_a_busy_device_probes_instead_of_resending(rig: Rig) -> None:
    """The hub down and Mosquitto restarted: every publication gets PUBACK 0x10.
    Bytes the device uploads through a counting proxy once its outbox (36 rows,
    12 of them 12 kB snapshots) has gone out: only probes, not the outbox again."""
    device = rig.devices[0]
    big = b"\xff\xd8" + bytes(12_000) + b"\xff\xd9"
    with running_hub(rig, client_id="hub-storm"):
        pass  # the hub's session and shared subscriptions exist; now it is gone
    rig.broker.start_again()  # shared subscriptions are not restored: 0x10 for everything
    box = Outbox(rig.tmp / "ob-storm.sqlite3")
    outbox_bytes = 0
    for i in range(24):
        payload = encode(event(i, kind="person"))
        box.put(event_topic(device), payload, priority=ob.PERSON, kind="person")
        outbox_bytes += len(payload)
        if i % 2 == 0:
            snap = encode_snapshot(Snapshot((1 << 32) + i, "start", event(i).time_ms, 320, 180, big))
            box.put(snap_topic(device), snap, priority=ob.PERSON_SNAP, kind="snap")
            outbox_bytes += len(snap)
    assert box.depth == 36
    proxy = CountingProxy(rig.broker.port).start()
    link = Link(settings(rig, device, port=proxy.port, max_inflight=10), box)
    link.start()
    try:
        time.sleep(5)  # connect and send the outbox once
        first = proxy.up_bytes
        time.sleep(30)
        after = proxy.up_bytes - first
    finally:
        link.stop()
        proxy.close()
        box.close()
    print(f"outbox {outbox_bytes} B; first 5 s {first} B; next 30 s {after} B")
    assert first < 2 * outbox_bytes + 20_000
    # One probe (the smallest message, ~200 B with TLS and MQTT framing) per
    # backoff step; re-sending the outbox even once would be over 145,000 B.
    assert after < 15_000, f"{after} B uploaded in 30 s with nobody subscribed"


def test_a_panic_pressed_during_a_link_cut_reaches_the_hub_within_5_s_and_alerts(rig: Rig) -> None:
    device = rig.devices[0]
    proxy = CountingProxy(rig.broker.port).start()
    box = Outbox(rig.tmp / "ob-panic.sqlite3")
    writer = OutboxWriter(device, box, 1, DeviceClock(probe=lambda: "synced"))
    import random

    # The agent's own backoff (1 s doubling to its cap), seeded so the schedule is the same every run.
    link = Link(
        settings(rig, device, port=proxy.port, backoff_base_s=1.0, backoff_cap_s=300.0), box, rng=random.Random(3)
    )
    writer.on_urgent = getattr(link, "wake", lambda: None)
    with running_hub(rig, client_id="hub-panic"):
        link.start()
        try:
            wait_for(lambda: link.connected, 10, "the device online")
            proxy.cut()
            wait_for(lambda: not link.connected, 10, "the link to notice the cut")
            time.sleep(15)  # the backoff grows meanwhile
            pressed = writer.panic()
            time.sleep(10)

            def alerted() -> bool:
                with rig.engine.connect() as conn:
                    row = conn.execute(select(alerts.c.event_id).where(alerts.c.kind == "panic")).first()
                return row is not None and row.event_id == pressed.event_id

            assert not alerted(), "the link was not cut"
            proxy.restore()
            back = time.monotonic()
            wait_for(alerted, 30, "the panic's alert")
            took = time.monotonic() - back
        finally:
            link.stop()
            proxy.close()
            box.close()
    print(f"panic alerted {took:.2f} s after the link returned")
    assert took <= 5.0, f"the panic alerted {took:.1f} s after the link came back"
