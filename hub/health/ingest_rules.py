"""The health rules ingest runs on every batch, inside its transaction:
presence from what each device sent, heartbeat alarms, a tamper event while
armed, and a device going or coming back while armed (``hub.health.offline``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection

from hub.alerts.engine import AlertEngine
from hub.config import HealthConfig
from hub.core.directory import Directory
from hub.core.inbound import Accepted
from hub.health.alarms import AlarmBook, health_conditions
from hub.health.offline import OfflineRules
from hub.health.presence import SightingFilter, Transition, apply_sightings
from protocol.messages import Event, Health

TAMPER = "tamper"


class HealthRules:
    def __init__(self, directory: Directory, alerts: AlertEngine, config: HealthConfig) -> None:
        self.alerts = alerts
        self.config = config
        self.presence = SightingFilter()
        self.offline = OfflineRules(directory, alerts, config)

    def on_batch(
        self,
        conn: Connection,
        accepted: Sequence[Accepted],
        healths: Sequence[Accepted],
        previous_dropped: Mapping[str, int | None],
        new_events: Sequence[Accepted],
    ) -> list[Transition]:
        """Apply the rules to a batch ingest has just stored; returns the presence changes.

        ``previous_dropped`` is each heartbeat device's ``outbox_dropped`` before
        this batch (``hub.ingest.store.store_health``)."""
        sightings = self.presence.sightings(accepted)
        transitions = apply_sightings(conn, sightings)
        tampered = [it for it in new_events if _is_tamper_start(it)]
        touched = {it.device.device_id for it in healths} | {t.device_id for t in transitions}
        touched |= {it.device.device_id for it in tampered}
        book = AlarmBook(conn, touched)
        dropped = dict(previous_dropped)
        for it in healths:
            h = it.message
            assert isinstance(h, Health)
            wanted = health_conditions(h, dropped.get(it.device.device_id), self.config.disk_low_mb)
            dropped[it.device.device_id] = h.outbox_dropped  # a second heartbeat in the batch compares with the first
            book.apply(it.device.device_id, wanted, it.received_ms)
        self.offline.on_presence(conn, book, sightings, transitions)
        for it in tampered:
            # Rule (c): someone covering or turning the camera while the household is armed needs an operator.
            ev = it.message
            assert isinstance(ev, Event)
            if self.alerts.armed_at(it.device.household_id, it.time_ms):
                book.raise_(it.device.device_id, TAMPER, f"tamper event {ev.event_id} while armed", it.received_ms)
        return transitions

    def rolled_back(self) -> None:
        """The batch's transaction did not commit: forget what it would have written."""
        self.presence.forget()


def _is_tamper_start(it: Accepted) -> bool:
    ev = it.message
    return isinstance(ev, Event) and ev.kind == TAMPER and ev.phase == "start"
