from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine, func, select

from hub.db import make_engine, upgrade
from hub.forward import (
    EventItem,
    Forwarder,
    ForwardItem,
    ManualClock,
    RetryPolicy,
    SinkError,
    ViidConfig,
    ViidSink,
    WebhookConfig,
    WebhookSink,
    forward_outbox,
)
from hub.forward.viid_objects import event_serial, image_id, person_id
from sim.mock_viid import MockViid
from sim.mock_webhook import MockWebhook
from tests.support.forward_items import CAMERA2, GATEWAY, PASSWORD, T0, panic, person

SECRET = b"a-shared-secret-of-32-bytes-long"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def platform(clock: ManualClock) -> Iterator[tuple[MockViid, MockWebhook]]:
    viid = MockViid(GATEWAY, PASSWORD, now_ms=clock.now_ms)
    hook = MockWebhook(SECRET, now_s=lambda: clock.now_ms() / 1000)
    viid.start()
    hook.start()
    yield viid, hook
    viid.stop()
    hook.stop()


def _forwarder(engine: Engine, clock: ManualClock, viid: MockViid, hook: MockWebhook,
               policy: RetryPolicy | None = None) -> Forwarder:  # fmt: skip
    sinks = [
        ViidSink(ViidConfig(f"http://127.0.0.1:{viid.port}", GATEWAY, PASSWORD, timeout_s=3), clock),
        WebhookSink(WebhookConfig(f"http://127.0.0.1:{hook._server.server_address[1]}/hook", SECRET), clock),  # type: ignore[union-attr]
    ]
    return Forwarder(engine, sinks, clock, policy=policy, rng=random.Random(7))


def _expected_person_id(item: EventItem) -> str:
    serial = event_serial(item)
    return person_id(image_id(item.device_id, item.time_ms, serial), serial)


def _run_for(fwd: Forwarder, clock: ManualClock, seconds: int, step: int = 60) -> None:
    for _ in range(seconds // step):
        clock.advance(step)
        fwd.run_once()


def test_hours_of_outage_lose_nothing_and_keep_order(
    engine: Engine, clock: ManualClock, platform: tuple[MockViid, MockWebhook]
) -> None:
    viid, hook = platform
    fwd = _forwarder(engine, clock, viid, hook)
    viid.go_down("refuse")
    hook.mode = "503"
    items: list[ForwardItem] = []
    for i in range(12):
        item = person(i, device=CAMERA2 if i % 3 == 0 else person(0).device_id)
        items.append(item)
        with engine.begin() as conn:
            assert fwd.enqueue(conn, item) == ["viid", "webhook"]
        if i % 5 == 4:
            items.append(panic(f"A{i}"))
            with engine.begin() as conn:
                assert fwd.enqueue(conn, items[-1]) == ["webhook"]  # GA/T 1400 has no panic object
        clock.advance(1)

    _run_for(fwd, clock, 3 * 3600)  # three hours of a dead platform, in simulated time

    stats = fwd.stats()
    assert (stats["viid"].depth, stats["webhook"].depth) == (12, 14)
    assert stats["viid"].oldest_age_s >= 3 * 3600 and stats["viid"].dead == 0
    # Backoff grows to the 10-minute cap instead of hammering every poll (180 polls happened).
    assert 8 <= stats["viid"].head_attempts <= 40, stats["viid"].head_attempts
    assert stats["viid"].head_error and viid.persons == [] and hook.bodies == []

    viid.come_up()
    hook.mode = "up"
    _run_for(fwd, clock, 15 * 60)

    people = [i for i in items if isinstance(i, EventItem)]
    assert [p["PersonID"] for p in viid.persons] == [_expected_person_id(p) for p in people]
    assert [b["id"] for b in hook.bodies] == [i.key for i in items]
    assert hook.duplicates == 0 and hook.bad_signatures == 0
    assert {s.depth for s in fwd.stats().values()} == {0}
    fwd.stop()


def test_dead_letters_after_their_age_are_kept_visible_and_retryable(
    engine: Engine, clock: ManualClock, platform: tuple[MockViid, MockWebhook]
) -> None:
    viid, hook = platform
    fwd = _forwarder(engine, clock, viid, hook, RetryPolicy(dead_after_s=3600, cap_s=300))
    viid.go_down("refuse")
    first = [person(i) for i in range(3)]
    for item in first:
        with engine.begin() as conn:
            fwd.enqueue(conn, item)
    _run_for(fwd, clock, 30 * 60, step=300)
    assert fwd.stats()["viid"].dead == 0  # half an hour: still waiting, not given up
    _run_for(fwd, clock, 60 * 60, step=300)

    dead = fwd.dead_letters("viid")
    assert [d.item_key for d in dead] == [i.key for i in first]
    assert all(d.last_error and d.attempts >= 1 for d in dead)
    stats = fwd.stats()["viid"]
    assert (stats.dead, stats.depth) == (3, 0)
    assert [b["id"] for b in hook.bodies] == [i.key for i in first]  # the webhook was fine all along

    later = person(10)
    with engine.begin() as conn:
        fwd.enqueue(conn, later)
    viid.come_up()
    assert fwd.retry_dead([d.id for d in dead]) == 3
    assert fwd.retry_dead([d.id for d in dead]) == 0  # no longer dead
    fwd.run_once()
    assert [p["PersonID"] for p in viid.persons] == [_expected_person_id(i) for i in [*first, later]]
    assert fwd.stats()["viid"].dead == 0 and fwd.dead_letters() == []
    fwd.stop()


@dataclass
class ScriptedSink:
    """Fails chosen items a set number of times; records every attempt in order."""

    name: str = "scripted"
    failures: dict[str, int] = field(default_factory=dict)
    permanent: set[str] = field(default_factory=set)
    attempts: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)

    def accepts(self, item: ForwardItem) -> bool:
        return True

    def send(self, item: ForwardItem) -> None:
        self.attempts.append(item.key)
        if item.key in self.permanent:
            raise SinkError("malformed", permanent=True)
        if self.failures.get(item.key, 0) > 0:
            self.failures[item.key] -= 1
            raise SinkError("temporarily down")
        self.delivered.append(item.key)

    def tick(self, now_ms: int) -> None:
        return None

    def close(self) -> None:
        return None


def test_head_of_line_blocks_until_the_head_succeeds_or_dies(engine: Engine, clock: ManualClock) -> None:
    items = [person(i) for i in range(5)]
    sink = ScriptedSink(failures={items[1].key: 3}, permanent={items[3].key})
    fwd = Forwarder(engine, [sink], clock, policy=RetryPolicy(base_s=10, cap_s=60), rng=random.Random(1))
    for item in items:
        with engine.begin() as conn:
            fwd.enqueue(conn, item)
    for _ in range(20):
        fwd.run_once()
        clock.advance(15)
    keys = [i.key for i in items]
    # item 2 is never attempted before item 1 has gone through; item 3 dies at once and 4 follows
    assert sink.attempts == [keys[0], keys[1], keys[1], keys[1], keys[1], keys[2], keys[3], keys[4]]
    assert sink.delivered == [keys[0], keys[1], keys[2], keys[4]]
    assert [d.item_key for d in fwd.dead_letters()] == [keys[3]]
    assert "malformed" in (fwd.dead_letters()[0].last_error or "")


def test_backoff_waits_between_attempts(engine: Engine, clock: ManualClock) -> None:
    item = person(0)
    sink = ScriptedSink(failures={item.key: 100})
    fwd = Forwarder(engine, [sink], clock, policy=RetryPolicy(base_s=8, cap_s=64), rng=random.Random(2))
    with engine.begin() as conn:
        fwd.enqueue(conn, item)
    times = []
    for _ in range(600):  # ten simulated minutes, polled every second
        before = len(sink.attempts)
        fwd.run_once()
        if len(sink.attempts) > before:
            times.append(clock.now_ms())
        clock.advance(1)
    gaps = [(b - a) / 1000 for a, b in itertools.pairwise(times)]
    assert gaps[:4] and all(lo <= g <= hi + 1 for g, (lo, hi) in zip(gaps, [(4, 8), (8, 16), (16, 32), (32, 64)],
                                                                          strict=False))  # fmt: skip
    assert all(32 <= g <= 65 for g in gaps[4:])  # capped


def test_enqueue_belongs_to_the_callers_transaction(engine: Engine, clock: ManualClock) -> None:
    sink = ScriptedSink()
    fwd = Forwarder(engine, [sink], clock)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        fwd.enqueue(conn, person(1))
        raise RuntimeError("ingest failed after queueing")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(forward_outbox)).scalar_one() == 0
    for _ in range(2):  # an at-least-once redelivery reaching enqueue twice
        with engine.begin() as conn:
            fwd.enqueue(conn, person(2))
    assert fwd.stats()["scripted"].depth == 1
    fwd.run_once()
    assert sink.delivered == [person(2).key]


def test_sinks_choose_what_they_forward(
    engine: Engine, clock: ManualClock, platform: tuple[MockViid, MockWebhook]
) -> None:
    viid, hook = platform
    fwd = _forwarder(engine, clock, viid, hook)
    plain = person(1)
    motion = EventItem(plain.device_id, plain.event_id + 1, "start", "motion", T0, 20)
    no_picture = EventItem(plain.device_id, plain.event_id + 2, "start", "person", T0, 90, (0, 0, 10, 10))
    with engine.begin() as conn:
        assert fwd.enqueue(conn, motion) == []
        assert fwd.enqueue(conn, no_picture) == ["webhook"]
    fwd.stop()


def test_a_second_worker_does_not_send_while_the_first_holds_the_lease(engine: Engine, clock: ManualClock) -> None:
    first, second = ScriptedSink(), ScriptedSink()
    a = Forwarder(engine, [first], clock, owner="worker-a", lease_ttl_s=60)
    b = Forwarder(engine, [second], clock, owner="worker-b", lease_ttl_s=60)
    for i in range(3):
        with engine.begin() as conn:
            a.enqueue(conn, person(i))
    assert a.run_once() == 3
    with engine.begin() as conn:
        b.enqueue(conn, person(9))
    assert b.run_once() == 0 and second.attempts == []
    clock.advance(61)  # worker a went silent; its lease runs out
    assert b.run_once() == 1 and second.delivered == [person(9).key]
    assert first.delivered == [person(i).key for i in range(3)]


def test_background_threads_deliver_and_stop(engine: Engine, clock: ManualClock) -> None:
    import time

    sink = ScriptedSink()
    fwd = Forwarder(engine, [sink], clock, poll_s=0.02)
    fwd.start()
    with engine.begin() as conn:
        fwd.enqueue(conn, person(1))
    deadline = time.monotonic() + 10
    while not sink.delivered and time.monotonic() < deadline:
        time.sleep(0.02)
    fwd.stop()
    assert sink.delivered == [person(1).key]
    assert all(not t.is_alive() for t in threading.enumerate() if t.name.startswith("forward-scripted"))


def test_a_batch_is_queued_in_order_once_each(engine: Engine, clock: ManualClock) -> None:
    """Ingest hands a whole batch over: its order is kept, and a key queued before
    or repeated inside the batch is queued once."""
    sink = ScriptedSink()
    fwd = Forwarder(engine, [sink], clock)
    with engine.begin() as conn:
        fwd.enqueue(conn, person(3))
    batch = [person(1), person(2), person(3), person(2), person(4)]
    with engine.begin() as conn:
        fwd.enqueue_many(conn, batch)
    with engine.begin() as conn:
        fwd.enqueue_many(conn, batch)  # the same batch redelivered after a lost PUBACK
    assert fwd.stats()["scripted"].depth == 4
    while fwd.run_once():
        pass
    assert sink.delivered == [person(i).key for i in (3, 1, 2, 4)]


def test_a_failed_batch_queues_nothing(engine: Engine, clock: ManualClock) -> None:
    fwd = Forwarder(engine, [ScriptedSink()], clock)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        fwd.enqueue_many(conn, [person(i) for i in range(600)])  # more keys than one duplicate lookup takes
        raise RuntimeError("ingest failed after queueing")
    assert fwd.stats()["scripted"].depth == 0
    with engine.begin() as conn:
        fwd.enqueue_many(conn, [person(i) for i in range(600)])
    assert fwd.stats()["scripted"].depth == 600
