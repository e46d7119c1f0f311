"""The 十户联防 alert engine.

Rules: (a) a panic event alerts the household's group at once; (b) a person
visit alerts the group once, on its first phase that may alert (below); (c) a
tamper event while armed, or a device going offline while armed, raises an
operator alarm (see ``hub.health``).

A person phase may alert when the device did not mark it ``na`` (its zone
rules, issue 20: the person is on the road, not yet through the gate), its
score is at least ``person_score_min``, and it falls in the household's armed
hours. Of a visit, the one phase that alerts is the first such phase: a
``start``, or an ``update`` when the stored ``start`` carried ``na`` (a
device that saw the person enter a required zone sends an update for it at
once), or when no start is stored and the update names zones (``zn``). A
device without zones never sends ``na`` nor ``zn``, so its start is always
the first and an update never alerts: it alerts on start exactly as before.
Once a visit has alerted (an alert row with its ``event_id`` from that
device), no later phase of it alerts again, whatever arrives and in whatever
order. Later copies of an update (same key, later ``t``) are shown here too
(``hub.ingest.batch``): the one that enters the gate may be the second update.

Every decision is made inside the ingest transaction (rows written on the
caller's connection); the MQTT publications are returned to the caller, which
sends them only after the commit, so a rolled-back batch never alerts.
A redelivered event is a duplicate and reaches here only as a later copy of
an update, which the once-per-visit rule stops; debounce limits a household to one alert per kind per N minutes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, select, update

from hub.alerts.armed import is_armed
from hub.config import AlertConfig
from hub.core.directory import Directory
from hub.core.forwarding import ForwardSink
from hub.core.inbound import Accepted
from hub.core.items import AlertItem
from hub.db.dialect import upsert_insert
from hub.db.schema_ops import alert_acks, alerts, events
from protocol import limits
from protocol.messages import Ack, Alert, Event

log = logging.getLogger("xl.hub.alerts")


@dataclass(frozen=True, slots=True)
class Publication:
    group_id: str
    alert: Alert


class AlertEngine:
    def __init__(self, directory: Directory, config: AlertConfig, sink: ForwardSink) -> None:
        self.directory = directory
        self.config = config
        self.sink = sink
        # Issue 21: an ack from a device outside the alert's group, handed to the escalation
        # (a 治安户长's own device it notified), in the ingest transaction. None: ignored.
        self.foreign_ack: Callable[[Connection, str, str, bool, int], bool] | None = None

    # -- raising -----------------------------------------------------------

    def armed_at(self, household_id: str, at_ms: int) -> bool:
        hh = self.directory.household(household_id)
        if hh is None:
            return False
        return is_armed(hh.armed_from, hh.armed_to, at_ms, self.config.timezone)

    def on_new_event(self, conn: Connection, item: Accepted) -> Publication | None:
        ev = item.message
        assert isinstance(ev, Event)
        if ev.kind == "panic":
            kind = "panic"
        elif (
            ev.kind == "person"
            and ev.phase in ("start", "update")
            and ev.alertable
            and ev.score >= self.config.person_score_min
            and self.armed_at(item.device.household_id, item.time_ms)
            and self._first_alertable_phase(conn, item.device.device_id, ev)
        ):
            kind = "person"
        else:
            return None
        # A person event that sat in a device's outbox through an outage is history:
        # it goes to the platform as an event, but neighbours are not woken for it.
        # A panic is not: someone pressed it during a 4G outage and may still need
        # help, so it alerts, marked with how late it is.
        age_ms = item.received_ms - item.time_ms
        delay_s = None
        if age_ms > self.config.max_event_age_s * 1000:
            if kind != "panic":
                log.info(
                    "not alerting on %s event %s of %s: %d s old",
                    kind,
                    ev.event_id,
                    item.device.device_id,
                    age_ms // 1000,
                )
                return None
            delay_s = age_ms // 1000
            log.warning(
                "panic %s of %s reached the hub %d s late: alerting, marked delayed",
                ev.event_id,
                item.device.device_id,
                delay_s,
            )
        return self.raise_alert(
            conn,
            kind,
            item.device.device_id,
            item.device.household_id,
            item.device.group_id,
            item.received_ms,
            ev.event_id,
            delay_s,
        )

    def _first_alertable_phase(self, conn: Connection, device_id: str, ev: Event) -> bool:
        """Whether ``ev`` (alertable) is the visit's alerting phase: no alert yet,
        and for an update, a stored start that carried ``na`` (or none stored)."""
        raised = conn.execute(
            select(alerts.c.id)
            .where(alerts.c.origin_device == device_id, alerts.c.event_id == ev.event_id, alerts.c.kind == "person")
            .limit(1)
        ).first()
        if raised is not None:
            return False
        if ev.phase == "start":
            return True
        start_no_alert = conn.execute(
            select(events.c.no_alert).where(
                events.c.device_id == device_id, events.c.event_id == ev.event_id, events.c.phase == "start"
            )
        ).scalar()
        if start_no_alert is None:
            # No start stored (lost, or still on its way). A device with zones
            # sends `zn` once the visit entered one: then this update is the
            # first phase the hub knows of a zoned visit, and the alert row
            # keeps the late start from alerting again. Without `zn` it is an
            # old device, whose updates never alerted.
            return bool(ev.zones)
        return bool(start_no_alert)

    def raise_alert(
        self,
        conn: Connection,
        kind: str,
        origin: str,
        household_id: str,
        group_id: str,
        now_ms: int,
        event_id: int | None = None,
        delay_s: int | None = None,
    ) -> Publication | None:
        since = now_ms - int(self.config.debounce_minutes * 60_000)
        recent = conn.execute(
            select(alerts.c.id)
            .where(alerts.c.household_id == household_id, alerts.c.kind == kind, alerts.c.raised_ms > since)
            .limit(1)
        ).first()
        if recent is not None:
            log.info("debounced %s alert for household %s (alert %s is recent)", kind, household_id, recent.id)
            return None
        alert_id = uuid.uuid4().hex
        conn.execute(
            alerts.insert().values(
                id=alert_id,
                kind=kind,
                origin_device=origin,
                household_id=household_id,
                group_id=group_id,
                event_id=event_id,
                raised_ms=now_ms,
                status="open",
                delay_s=delay_s,
            )
        )
        hh = self.directory.household(household_id)
        name = hh.name if hh is not None else None
        self.sink.hand_over(
            conn,
            [
                AlertItem(
                    alert_id=alert_id,
                    phase="raise",
                    kind=kind,
                    origin=origin,
                    household_id=household_id,
                    time_ms=now_ms,
                    group_id=group_id,
                    text=name,
                )
            ],
        )
        log.warning("%s alert %s raised for household %s (group %s)", kind, alert_id, household_id, group_id)
        return Publication(
            group_id,
            Alert(
                alert_id=alert_id,
                phase="raise",
                kind=kind,
                origin=origin,
                household=household_id[:64],
                time_ms=now_ms,
                text=(name or None) and name[: limits.MAX_TEXT_LEN],
                delay_s=delay_s,
            ),
        )

    # -- delivery to the group ----------------------------------------------

    # Longer than a watcher period plus a PUBACK round trip, so another
    # worker's fresh raise is not re-sent before its confirmation is recorded.
    RESEND_AFTER_MS = 15_000

    def mark_published(self, conn: Connection, confirmed: list[tuple[str, int]]) -> None:
        for alert_id, at_ms in confirmed:
            conn.execute(
                update(alerts)
                .where(alerts.c.id == alert_id, alerts.c.published_ms.is_(None))
                .values(published_ms=at_ms)
            )

    def unconfirmed(self, conn: Connection, now_ms: int) -> list[Publication]:
        """Open alerts whose raise the broker never confirmed (the hub died between
        commit and publish, or the broker was down): send them again, same id."""
        rows = conn.execute(
            select(alerts).where(
                alerts.c.status == "open",
                alerts.c.published_ms.is_(None),
                alerts.c.raised_ms < now_ms - self.RESEND_AFTER_MS,
            )
        ).all()
        out = []
        for row in rows:
            hh = self.directory.household(row.household_id)
            name = hh.name if hh is not None else None
            log.warning(
                "re-sending %s alert %s to group %s: never confirmed by the broker", row.kind, row.id, row.group_id
            )
            out.append(
                Publication(
                    row.group_id,
                    Alert(
                        alert_id=row.id,
                        phase="raise",
                        kind=row.kind,
                        origin=row.origin_device,
                        household=row.household_id[:64],
                        time_ms=row.raised_ms,
                        text=(name or None) and name[: limits.MAX_TEXT_LEN],
                        delay_s=row.delay_s,
                    ),
                )
            )
        return out

    # -- closing -----------------------------------------------------------

    def on_ack(self, conn: Connection, item: Accepted) -> Publication | None:
        ack = item.message
        assert isinstance(ack, Ack) and ack.of == "alert"
        row = conn.execute(select(alerts).where(alerts.c.id == ack.ref_id)).first()
        if row is None:
            log.info("ack from %s for unknown alert %s ignored", item.device.device_id, ack.ref_id)
            return None
        if item.device.group_id != row.group_id:
            if self.foreign_ack is not None and self.foreign_ack(
                conn, row.id, item.device.device_id, ack.ok, item.received_ms
            ):
                return None
            log.warning("ack from %s for alert %s of another group ignored", item.device.device_id, row.id)
            return None
        ins = upsert_insert(conn, alert_acks)
        conn.execute(
            ins.on_conflict_do_nothing(index_elements=["alert_id", "device_id"]).values(
                alert_id=row.id,
                device_id=item.device.device_id,
                received_ms=item.received_ms,
                device_time_ms=ack.time_ms,
                ok=ack.ok,
            )
        )
        # The origin acknowledging its own alert is not a neighbour responding.
        if row.status != "open" or not ack.ok or item.device.device_id == row.origin_device:
            return None
        response_ms = max(0, item.received_ms - row.raised_ms)
        closed = conn.execute(
            update(alerts)
            .where(alerts.c.id == row.id, alerts.c.status == "open")
            .values(
                status="closed",
                closed_ms=item.received_ms,
                close_reason="ack",
                first_ack_ms=item.received_ms,
                first_ack_device=item.device.device_id,
                response_ms=response_ms,
            )
        ).rowcount
        if not closed:
            return None
        return self._cleared(conn, row, item.received_ms, "ack", response_ms)

    def expire(self, conn: Connection, now_ms: int) -> list[Publication]:
        """Close alerts nobody acknowledged within the timeout."""
        cutoff = now_ms - int(self.config.ack_timeout_s * 1000)
        overdue = select(alerts).where(alerts.c.status == "open", alerts.c.raised_ms < cutoff)
        rows = conn.execute(overdue).all()
        out = []
        for row in rows:
            closed = conn.execute(
                update(alerts)
                .where(alerts.c.id == row.id, alerts.c.status == "open")
                .values(status="closed", closed_ms=now_ms, close_reason="timeout")
            ).rowcount
            if closed:
                log.warning("%s alert %s for household %s timed out unacknowledged", row.kind, row.id, row.household_id)
                out.append(self._cleared(conn, row, now_ms, "timeout", None))
        return out

    def _cleared(
        self, conn: Connection, row: Row[Any], now_ms: int, reason: str, response_ms: int | None
    ) -> Publication:
        self.sink.hand_over(
            conn,
            [
                AlertItem(
                    alert_id=row.id,
                    phase="clear",
                    kind=row.kind,
                    origin=row.origin_device,
                    household_id=row.household_id,
                    time_ms=now_ms,
                    group_id=row.group_id,
                    close_reason=reason,
                    response_ms=response_ms,
                )
            ],
        )
        return Publication(
            row.group_id,
            Alert(
                alert_id=row.id,
                phase="clear",
                kind=row.kind,
                origin=row.origin_device,
                household=row.household_id[:64],
                time_ms=now_ms,
            ),
        )
