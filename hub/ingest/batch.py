"""One ingest batch: validate, write everything in one transaction, and say
what to publish and which MQTT messages may now be acknowledged.

Kept apart from the MQTT client so the whole decision path can be exercised
against a real database without a broker.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, update

from hub.alerts.engine import AlertEngine, Publication
from hub.config import HealthConfig
from hub.db.schema_ops import commands
from hub.forward_port import ForwardSink
from hub.health.alarms import AlarmBook, health_conditions
from hub.health.offline import OfflineRules
from hub.health.presence import Sighting, Transition, apply_sightings
from hub.ingest.directory import Directory
from hub.ingest.receipts import committed_seqs
from hub.ingest.store import count_rejections, insert_events, insert_snapshots, store_health
from hub.ingest.validate import Accepted, Inbound, Rejected, validate
from protocol.codec import Snapshot
from protocol.messages import Ack, Event, Health, State
from protocol.topics import Channel

log = logging.getLogger("xl.hub.ingest")


@dataclass
class BatchResult:
    accepted: Counter[str] = field(default_factory=Counter)  # by channel
    rejected: list[Rejected] = field(default_factory=list)
    new_events: int = 0
    duplicates: int = 0
    publications: list[Publication] = field(default_factory=list)
    lags_s: list[float] = field(default_factory=list)  # receive − device time of trusted events
    transitions: list[Transition] = field(default_factory=list)
    receipts: dict[str, list[int]] = field(default_factory=dict)  # device → "q" numbers this commit settled


class BatchProcessor:
    def __init__(self, engine: Engine, directory: Directory, alerts: AlertEngine, sink: ForwardSink,
                 health: HealthConfig) -> None:
        self.engine = engine
        self.directory = directory
        self.alerts = alerts
        self.sink = sink
        self.health = health
        self.offline = OfflineRules(directory, alerts, health)
        # device → when this worker last wrote it as online (monotonic s)
        self._seen_written: dict[str, float] = {}

    # An event or ack only says "this device is alive". Writing last_seen for
    # every one of them would be a row update per message during a burst; a
    # few seconds of precision is plenty against an offline timeout of 3 × 60 s.
    SEEN_REFRESH_S = 5.0

    def _sightings(self, accepted: list[Accepted]) -> list[Sighting]:
        now = time.monotonic()
        out = []
        for it in accepted:
            dev = it.device.device_id
            informative = it.channel in (Channel.STATE, Channel.HEALTH)
            if not informative and now - self._seen_written.get(dev, float("-inf")) < self.SEEN_REFRESH_S:
                continue
            sighting = _sighting(it)
            if sighting.online:
                self._seen_written[dev] = now
            else:
                self._seen_written.pop(dev, None)
            out.append(sighting)
        return out

    def process(self, batch: Sequence[Inbound]) -> BatchResult:
        """Validate and commit ``batch``; raises only if the database fails (then nothing is acked)."""
        result = BatchResult()
        accepted: list[Accepted] = []
        verdicts: list[Accepted | Rejected] = []
        for msg in batch:
            verdict = validate(msg, self.directory)
            verdicts.append(verdict)
            if isinstance(verdict, Rejected):
                result.rejected.append(verdict)
            else:
                accepted.append(verdict)
                result.accepted[verdict.channel.value] += 1
        try:
            with self.engine.begin() as conn:
                self._write(conn, accepted, result)
                count_rejections(conn, result.rejected, int(time.time() * 1000))
        except Exception:
            self._seen_written.clear()  # what it remembers writing was rolled back
            raise
        result.receipts = committed_seqs(batch, verdicts)
        return result

    def _write(self, conn: Connection, accepted: list[Accepted], result: BatchResult) -> None:
        by_channel: dict[Channel, list[Accepted]] = {}
        for it in accepted:
            by_channel.setdefault(it.channel, []).append(it)

        events = by_channel.get(Channel.EVENT, [])
        new_events = insert_events(conn, events)
        result.new_events, result.duplicates = len(new_events), len(events) - len(new_events)
        for it in new_events:
            if it.time_trusted:
                result.lags_s.append(max(0.0, (it.received_ms - it.time_ms) / 1000))
        self.sink.enqueue_many(conn, "event", [_event_payload(it) for it in new_events])
        snaps = []
        for it in insert_snapshots(conn, by_channel.get(Channel.SNAP, [])):
            snap = it.message
            assert isinstance(snap, Snapshot)
            snaps.append({
                "device_id": it.device.device_id, "event_id": snap.event_id, "phase": snap.phase,
                "time_ms": snap.time_ms, "width": snap.width, "height": snap.height, "size": len(snap.jpeg),
            })
        self.sink.enqueue_many(conn, "snapshot", snaps)

        healths = by_channel.get(Channel.HEALTH, [])
        previous_dropped = store_health(conn, healths, self.health.bucket_minutes * 60_000)

        sightings = self._sightings(accepted)
        result.transitions = apply_sightings(conn, sightings)

        touched = {it.device.device_id for it in healths} | {t.device_id for t in result.transitions}
        touched |= {it.device.device_id for it in new_events if it.message.kind == "tamper"}  # type: ignore[union-attr]
        book = AlarmBook(conn, touched)
        for it in healths:
            h = it.message
            assert isinstance(h, Health)
            wanted = health_conditions(h, previous_dropped.get(it.device.device_id), self.health.disk_low_mb)
            previous_dropped[it.device.device_id] = h.outbox_dropped
            book.apply(it.device.device_id, wanted, it.received_ms)
        self.offline.on_presence(conn, book, sightings, result.transitions)

        for it in new_events:
            ev = it.message
            assert isinstance(ev, Event)
            if ev.kind == "tamper" and ev.phase == "start" and self.alerts.armed_at(it.device.household_id,
                                                                                      it.time_ms):
                book.raise_(it.device.device_id, "tamper", f"tamper event {ev.event_id} while armed",
                            it.received_ms)
            pub = self.alerts.on_new_event(conn, it)
            if pub is not None:
                result.publications.append(pub)

        for it in by_channel.get(Channel.ACK, []):
            ack = it.message
            assert isinstance(ack, Ack)
            if ack.of == "alert":
                pub = self.alerts.on_ack(conn, it)
                if pub is not None:
                    result.publications.append(pub)
            else:
                record_command_result(conn, it)


def record_command_result(conn: Connection, it: Accepted) -> None:
    ack = it.message
    assert isinstance(ack, Ack)
    values = {"ack_ms": it.received_ms, "ok": ack.ok, "error": ack.error}
    done = conn.execute(
        update(commands).where(commands.c.id == ack.ref_id, commands.c.device_id == it.device.device_id)
        .values(**values)
    ).rowcount
    if not done:
        # A result for a command this database never sent (another hub, or an
        # operator's tool): kept, so it is visible rather than lost.
        from hub.db.dialect import upsert_insert

        ins = upsert_insert(conn, commands).on_conflict_do_nothing(index_elements=["id"])
        conn.execute(ins.values(id=ack.ref_id, device_id=it.device.device_id, **values))


def _sighting(it: Accepted) -> Sighting:
    msg = it.message
    if isinstance(msg, State):
        return Sighting(it.device.device_id, it.received_ms, msg.state == "online", msg.interval_s,
                        msg.agent_version)
    if isinstance(msg, Health):
        return Sighting(it.device.device_id, it.received_ms, True, msg.interval_s, msg.agent_version,
                        msg.armed)
    return Sighting(it.device.device_id, it.received_ms, True)


def _event_payload(it: Accepted) -> dict[str, object]:
    ev = it.message
    assert isinstance(ev, Event)
    return {
        "device_id": it.device.device_id, "event_id": ev.event_id, "phase": ev.phase, "kind": ev.kind,
        "score": ev.score, "bbox": list(ev.bbox) if ev.bbox else None, "zone": ev.zone, "count": ev.count,
        "has_snapshot": ev.has_snapshot, "duration_s": ev.duration_s, "time_ms": it.time_ms,
        "time_trusted": it.time_trusted, "device_time_ms": ev.time_ms, "received_ms": it.received_ms,
        "household_id": it.device.household_id, "group_id": it.device.group_id,
    }
