from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.inbound import Inbound
from hub.db import make_engine, upgrade
from hub.db.schema_ops import events
from hub.forward import Forwarder, ManualClock, SinkError, WebhookConfig, WebhookSink, outbox, verify_signature
from hub.forward.tables import forward_sinks
from hub.forward.webhook import sign, webhook_body
from hub.ingest.batch import BatchProcessor, BatchResult
from protocol.codec import Snapshot as WireSnapshot
from protocol.codec import encode, encode_snapshot
from protocol.messages import Ack, Event
from protocol.topics import ack_topic, event_topic, snap_topic
from sim.mock_webhook import MockWebhook
from tests.support.forward_items import JPEG, T0, panic, person
from tests.support.hub_db import make_fleet, not_armed_now

SECRET = b"another-shared-secret-32-bytes!!"


def _headers(body: bytes, ts: int, secret: bytes = SECRET) -> dict[str, str]:
    return {"x-xl-timestamp": str(ts), "X-XL-Signature": sign(secret, str(ts), body)}


def test_signature_verifies_and_tampering_fails() -> None:
    body = json.dumps(webhook_body(person(1), True)).encode()
    now = T0 // 1000
    # the signature is exactly HMAC-SHA256("<ts>.<body>"), computed independently here
    expect = hmac.new(SECRET, f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    assert _headers(body, now)["X-XL-Signature"] == "sha256=" + expect
    assert verify_signature(SECRET, body, _headers(body, now), max_skew_s=300, now_s=now)
    assert not verify_signature(SECRET, body.replace(b"87", b"88"), _headers(body, now), now_s=now)
    assert not verify_signature(b"x" * 32, body, _headers(body, now), now_s=now)
    assert not verify_signature(SECRET, body, _headers(body, now - 301), max_skew_s=300, now_s=now)  # replay
    forged = _headers(body, now - 3600)
    forged["x-xl-timestamp"] = str(now)  # a fresh timestamp on an old signature
    assert not verify_signature(SECRET, body, forged, now_s=now)
    assert not verify_signature(SECRET, body, {}, now_s=now)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def hook(clock: ManualClock) -> Iterator[MockWebhook]:
    mock = MockWebhook(SECRET, now_s=lambda: clock.now_ms() / 1000)
    mock.start()
    yield mock
    mock.stop()


def _url(mock: MockWebhook) -> str:
    return f"http://127.0.0.1:{mock._server.server_address[1]}/hook"  # type: ignore[union-attr]


def test_sink_posts_signed_idempotent_json(
    hook: MockWebhook, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = WebhookSink(WebhookConfig(_url(hook), SECRET), clock)
    sink.send(panic("A1"))
    sink.send(person(1))
    sink.send(panic("A1"))  # a re-send after a crash: the receiver sees the same key
    assert hook.bad_signatures == 0 and hook.duplicates == 1
    assert [b["id"] for b in hook.bodies] == ["alert-A1-raise", person(1).key]
    assert hook.bodies[0]["kind"] == "panic" and hook.bodies[1]["snapshot"]["width"] == 640
    assert SECRET.decode() not in repr(sink.config) and SECRET.decode() not in caplog.text
    wrong = WebhookSink(WebhookConfig(_url(hook), b"w" * 32), clock)
    with pytest.raises(SinkError) as caught:
        wrong.send(panic("A2"))
    assert not caught.value.permanent and hook.bad_signatures == 1
    sink.close()
    wrong.close()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


class _Viidish:
    """Stands in for the 视图库 sink's routing rule without a server: pictures only."""

    name = "viid"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def accepts(self, item) -> bool:  # type: ignore[no-untyped-def]
        return getattr(item, "snapshot", None) is not None and getattr(item, "kind", "") == "person"

    def send(self, item) -> None:  # type: ignore[no-untyped-def]
        self.sent.append(item.key)

    def tick(self, now_ms: int) -> None:
        return None

    def close(self) -> None:
        return None


def test_ingest_hands_typed_items_to_the_forwarder_in_its_transaction(
    db_url: str, clock: ManualClock, hook: MockWebhook
) -> None:
    engine = make_engine(db_url)
    camera, neighbour = make_fleet(engine, groups=1, per_group=2, **not_armed_now())["g000"]
    viid = _Viidish()
    fwd = Forwarder(engine, [viid, WebhookSink(WebhookConfig(_url(hook), SECRET), clock)], clock,
                    rng=random.Random(3))  # fmt: skip
    directory = Directory(engine, ttl_s=60)
    proc = BatchProcessor(engine, directory, AlertEngine(directory, AlertConfig(), fwd), fwd, HealthConfig())
    t = int(time.time() * 1000)

    def batch(topic: str, payload: bytes, at_ms: int = t) -> BatchResult:
        return proc.process([Inbound(topic, payload, 1, 1, at_ms)])

    # The event arrives first, its picture in the next batch; then a panic and a neighbour's ack.
    batch(
        event_topic(camera),
        encode(
            Event(
                event_id=5,
                kind="person",
                phase="start",
                time_ms=t,
                score=90,
                bbox=(100, 100, 300, 900),
                has_snapshot=True,
            )
        ),
    )
    batch(
        snap_topic(camera),
        encode_snapshot(WireSnapshot(event_id=5, phase="start", time_ms=t, width=640, height=480, jpeg=JPEG)),
    )
    [raised] = batch(
        event_topic(camera), encode(Event(event_id=6, kind="panic", phase="start", time_ms=t, score=100))
    ).publications
    alert_id = raised.alert.alert_id
    batch(ack_topic(neighbour), encode(Ack(of="alert", ref_id=alert_id, ok=True, time_ms=t)), t + 9000)
    stats = fwd.queue_stats()
    assert stats is not None and stats.depth == 5  # 视图库: the person with its picture; webhook: four

    # Nothing is swallowed: a hand-over that fails fails the batch, and the event is not stored either.
    with engine.begin() as conn:
        conn.execute(forward_sinks.delete())
    with pytest.raises(LookupError):
        batch(event_topic(camera), encode(Event(event_id=7, kind="person", phase="start", time_ms=t, score=90)))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(events.c.event_id == 7)).scalar_one() == 0
    outbox.ensure_sinks(engine, list(fwd.sinks))

    fwd.run_once()
    assert viid.sent == [f"{camera}-5-start"]
    assert [b["id"] for b in hook.bodies] == [f"{camera}-5-start", f"{camera}-6-start", f"alert-{alert_id}-raise",
                                              f"alert-{alert_id}-clear"]  # fmt: skip
    assert "snapshot" not in hook.bodies[0]  # the webhook got the event before its picture existed
    assert hook.bodies[3]["response_ms"] == 9000 and hook.bodies[3]["origin"] == camera
    fwd.stop()
    engine.dispose()
