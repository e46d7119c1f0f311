from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from hub.db import make_engine, upgrade
from hub.db.schema_ops import alerts, events, snapshots
from hub.forward import Forwarder, ManualClock, SinkError, WebhookConfig, WebhookSink, verify_signature
from hub.forward.port_adapter import ForwarderPort
from hub.forward.webhook import sign, webhook_body
from tests.hub.mock_viid import CAMERA, JPEG, T0, MockWebhook, panic, person

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


def test_port_adapter_queues_in_the_ingest_transaction(engine: Engine, clock: ManualClock, hook: MockWebhook) -> None:
    viid = _Viidish()
    fwd = Forwarder(engine, [viid, WebhookSink(WebhookConfig(_url(hook), SECRET), clock)], clock,
                    rng=random.Random(3))  # fmt: skip
    port = ForwarderPort(fwd)
    ev = {"device_id": CAMERA, "event_id": 5, "phase": "start", "kind": "person", "score": 90,
          "bbox": [100, 100, 300, 900], "zone": None, "count": 1, "has_snapshot": True, "duration_s": None,
          "time_ms": T0, "time_trusted": True, "device_time_ms": T0, "received_ms": T0,
          "household_id": "HH0001"}  # fmt: skip
    with engine.begin() as conn:  # the event arrives first; its picture is not stored yet
        conn.execute(events.insert().values(**ev))
        port.enqueue(conn, "event", {**ev, "group_id": "g0101"})
    snap = {"device_id": CAMERA, "event_id": 5, "phase": "start", "time_ms": T0, "width": 640, "height": 480}
    with engine.begin() as conn:
        conn.execute(snapshots.insert().values(device_id=CAMERA, event_id=5, phase="start", device_time_ms=T0,
                                               received_ms=T0, width=640, height=480, jpeg=JPEG))  # fmt: skip
        port.enqueue(conn, "snapshot", {**snap, "size": len(JPEG)})
    with engine.begin() as conn:
        conn.execute(alerts.insert().values(id="AL1", kind="panic", origin_device=CAMERA, household_id="HH0001",
                                            group_id="g0101", raised_ms=T0, status="open"))  # fmt: skip
        port.enqueue(conn, "alert", {"alert_id": "AL1", "kind": "panic", "origin_device": CAMERA,
                                     "household_id": "HH0001", "household_name": "张家", "group_id": "g0101",
                                     "event_id": None, "raised_ms": T0})  # fmt: skip
        port.enqueue(conn, "alert_clear", {"alert_id": "AL1", "kind": "panic", "household_id": "HH0001",
                                           "group_id": "g0101", "closed_ms": T0 + 9000, "close_reason": "ack",
                                           "response_ms": 9000})  # fmt: skip
        port.enqueue(conn, "event", {**ev, "bbox": [5, 5, 1]})  # malformed: logged and skipped, never raises
    stats = port.queue_stats()
    assert stats is not None and stats.depth == 4
    fwd.run_once()
    assert viid.sent == [f"{CAMERA}-5-start"]
    assert [b["id"] for b in hook.bodies] == [f"{CAMERA}-5-start", "alert-AL1-raise", "alert-AL1-clear"]
    assert "snapshot" not in hook.bodies[0]  # the webhook got the event before its picture existed
    assert hook.bodies[2]["response_ms"] == 9000 and hook.bodies[2]["origin"] == CAMERA
    fwd.stop()
