"""One ingest batch: validate, store everything in one transaction, call the
rules, hand the new events to forwarding, and say what to publish and which
MQTT messages may now be acknowledged.

Kept apart from the MQTT client so the whole decision path can be exercised
against a real database without a broker. The rules live in their rooms
(``hub.health.ingest_rules``, ``hub.alerts.engine``, ``hub.commands``); this
only decides what each of them is shown.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, text

from hub.alerts.engine import AlertEngine, Publication
from hub.commands import record_result
from hub.config import HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import ForwardSink
from hub.core.inbound import Accepted, Inbound, Rejected
from hub.health.ingest_rules import HealthRules
from hub.health.presence import Transition
from hub.ingest.handover import forward_items
from hub.ingest.receipts import committed_seqs
from hub.ingest.store import count_rejections, insert_events, insert_snapshots, store_health
from hub.ingest.validate import validate
from protocol.messages import Ack, Event
from protocol.topics import Channel


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
    def __init__(
        self, engine: Engine, directory: Directory, alerts: AlertEngine, sink: ForwardSink, health: HealthConfig
    ) -> None:
        self.engine = engine
        self.directory = directory
        self.alerts = alerts
        self.sink = sink
        self.health = health
        self.health_rules = HealthRules(directory, alerts, health)

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
            self.health_rules.rolled_back()
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
        new_snaps = insert_snapshots(conn, by_channel.get(Channel.SNAP, []))
        self.sink.hand_over(conn, forward_items(conn, new_events, new_snaps))

        healths = by_channel.get(Channel.HEALTH, [])
        previous_dropped = store_health(conn, healths, self.health.bucket_minutes * 60_000)
        result.transitions = self.health_rules.on_batch(conn, accepted, healths, previous_dropped, new_events)

        # Later copies of an update (one key, a later `t`: insert_events keeps
        # the newest) go to the rules too: with zones, the update that enters
        # the gate may be the visit's second, and the first to alert (issue 20).
        # The engine alerts once per visit, so a re-sent copy cannot alert twice.
        fresh = {id(it) for it in new_events}
        later_updates = [
            it
            for it in events
            if id(it) not in fresh and isinstance(it.message, Event) and it.message.phase == "update"
        ]
        candidates = [*new_events, *later_updates]
        serialise_alerts(conn, candidates)
        for it in candidates:
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
                record_result(conn, it.device.device_id, ack, it.received_ms)


_ALERT_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")


def serialise_alerts(conn: Connection, items: Sequence[Accepted]) -> None:
    """Hold the alert decisions of each household with a person or panic event here until
    this transaction ends (PostgreSQL), so that workers on one shared subscription see each
    other's alerts: a visit's start and its update taken by two workers at once (a device
    flushing its outbox) would otherwise both alert, each blind to the other's uncommitted
    alert row, and the household's debounce as blind. Households in sorted order, so two
    workers never wait on each other in a cycle. SQLite needs none: its one writer already
    serialises the batches, from their first insert on."""
    if conn.dialect.name != "postgresql":
        return
    households = sorted(
        {
            it.device.household_id
            for it in items
            if isinstance(it.message, Event) and it.message.kind in ("person", "panic")
        }
    )
    for household in households:
        conn.execute(_ALERT_LOCK, {"key": f"xl-alert:{household}"})
