"""The escalation job: start a chain for each new alert, take due steps, stop on the first ack.

Driven by a periodic pass reading due rows (like hub/health/offline.py), never
by in-memory timers, so a hub restart resumes every chain where the database
says it is: see hub/escalation/tables.py for why no step is lost or repeated.
The delay before a step counts from the moment the step before was taken, so
a hub that was down takes the overdue step at once and then gives the next
contacts their full time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, insert, or_, select, update

from hub.alerts.engine import Publication
from hub.config_escalation import STEP_ROLES, EscalationConfig
from hub.contacts import store as contacts
from hub.core.forwarding import ForwardSink
from hub.core.items import AlertItem
from hub.db.dialect import upsert_insert
from hub.db.schema import households, villages
from hub.db.schema_ops import alerts
from hub.escalation.channels import Chain, Notice, NotificationChannel, unreached
from hub.escalation.tables import ACKED, EXHAUSTED, RUNNING, escalation_notices, escalation_steps, escalations
from protocol.messages import Alert

log = logging.getLogger("xl.hub.escalation")

# An alert the watcher timed out (alerts.ack_timeout_s) still escalates: nobody answered.
STARTABLE = or_(alerts.c.status == "open", alerts.c.close_reason == "timeout")


class Escalator:
    def __init__(
        self,
        engine: Engine,
        config: EscalationConfig,
        channels: Sequence[NotificationChannel],
        *,
        platform: ForwardSink | None = None,
        publish: Callable[[list[Publication]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.config = config
        self.channels = list(channels)
        self.platform = platform
        self.publish = publish
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- the pass --------------------------------------------------------------

    def run_once(self) -> None:
        now = self.now_ms()
        self.start_chains(now)
        self.stop_acked(now)
        for alert_id in self.due(now):
            with self.engine.begin() as conn:
                self.take_step(conn, alert_id, self.now_ms())
        self.send_clears()

    def _next_step(self, group_id: str, after: int) -> int | None:
        steps = sorted(self.config.chain(group_id).steps)
        later = [s for s in steps if s > after]
        return later[0] if later else None

    def _delay_ms(self, group_id: str, kind: str, step: int) -> int:
        """The wait before ``step``: the sum of the delays of the steps skipped on the way."""
        delays = self.config.delays_s(group_id, kind)
        return int(1000 * delays[step - 2])

    def start_chains(self, now_ms: int) -> int:
        horizon = now_ms - int(1000 * (sum(self.config.panic_s) + sum(self.config.person_s) + 3600))
        q = (
            select(alerts, households.c.village_id, villages.c.township_code, households.c.name.label("hh_name"))
            .select_from(
                alerts.outerjoin(escalations, escalations.c.alert_id == alerts.c.id)
                .outerjoin(households, households.c.id == alerts.c.household_id)
                .outerjoin(villages, villages.c.id == households.c.village_id)
            )
            .where(escalations.c.alert_id.is_(None), STARTABLE, alerts.c.raised_ms > horizon)
        )
        started = 0
        with self.engine.begin() as conn:
            for a in conn.execute(q).all():
                nxt = self._next_step(a.group_id, 1)
                # Another hub on the same PostgreSQL may have started it since the read: its chain stands.
                ins = upsert_insert(conn, escalations).on_conflict_do_nothing(index_elements=["alert_id"])
                inserted = conn.execute(
                    ins.values(
                        alert_id=a.id,
                        group_id=a.group_id,
                        kind=a.kind,
                        village_id=a.village_id,
                        township_code=a.township_code,
                        started_ms=a.raised_ms,
                        step=1,
                        next_ms=None if nxt is None else a.raised_ms + self._delay_ms(a.group_id, a.kind, nxt),
                        status=RUNNING if nxt is not None else EXHAUSTED,
                    ).returning(escalations.c.alert_id)
                ).first()
                if inserted is None:
                    continue
                self._record(conn, self._chain(a), 1, [], now_ms)
                started += 1
                log.info("escalation of %s alert %s started (group %s)", a.kind, a.id, a.group_id)
        return started

    def _chain(self, a: Any) -> Chain:
        return Chain(a.id, a.kind, a.origin_device, a.household_id, a.hh_name, a.group_id, a.raised_ms, a.published_ms)

    def _record(self, conn: Connection, chain: Chain, step: int, people: Sequence[Any], now_ms: int) -> list[Notice]:
        conn.execute(insert(escalation_steps).values(alert_id=chain.alert_id, step=step, at_ms=now_ms))
        notices: list[Notice] = []
        for channel in self.channels:
            notices += channel.notify(conn, chain, step, people)
        if step > 1:
            notices += unreached(people, notices)
            if not people:
                notices.append(Notice("none", "-", "no_contact"))
        for n in notices:
            conn.execute(
                insert(escalation_notices).values(
                    alert_id=chain.alert_id,
                    step=step,
                    channel=n.channel,
                    target=n.target,
                    at_ms=now_ms,
                    result=n.result,
                    sink=n.sink,
                    item_key=n.item_key,
                )
            )
        return notices

    def due(self, now_ms: int) -> list[str]:
        q = select(escalations.c.alert_id).where(escalations.c.status == RUNNING, escalations.c.next_ms <= now_ms)
        with self.engine.connect() as conn:
            return list(conn.execute(q.order_by(escalations.c.next_ms)).scalars())

    def take_step(self, conn: Connection, alert_id: str, now_ms: int) -> int | None:
        """Take the chain's due step, once: the conditional UPDATE is what makes it once."""
        q = (
            select(escalations, alerts, households.c.name.label("hh_name"))
            .select_from(
                escalations.join(alerts, alerts.c.id == escalations.c.alert_id).outerjoin(
                    households, households.c.id == alerts.c.household_id
                )
            )
            .where(escalations.c.alert_id == alert_id, escalations.c.status == RUNNING, escalations.c.next_ms <= now_ms)
        )
        row = conn.execute(q).first()
        if row is None:
            return None
        if row.close_reason == "ack":  # a neighbour answered between two passes
            self._stop_by_device(conn, row)
            return None
        step = self._next_step(row.group_id, row.step)
        if step is None:  # the group's chain was shortened since: it ends unanswered here
            conn.execute(
                update(escalations)
                .where(
                    escalations.c.alert_id == alert_id, escalations.c.step == row.step, escalations.c.status == RUNNING
                )
                .values(next_ms=None, status=EXHAUSTED)
            )
            return None
        after = self._next_step(row.group_id, step)
        moved = conn.execute(
            update(escalations)
            .where(
                escalations.c.alert_id == alert_id,
                escalations.c.step == row.step,
                escalations.c.status == RUNNING,
                # A neighbour's ack committed since the read above: the next pass stops the chain.
                ~exists().where(alerts.c.id == alert_id, alerts.c.close_reason == "ack"),
            )
            .values(
                step=step,
                next_ms=None if after is None else now_ms + self._delay_ms(row.group_id, row.kind, after),
                status=RUNNING if after is not None else EXHAUSTED,
            )
        ).rowcount
        if not moved:
            return None
        people = contacts.for_step(conn, STEP_ROLES[step], row.village_id, row.township_code)
        notices = self._record(conn, self._chain(row), step, people, now_ms)
        log.warning(
            "%s alert %s unacknowledged: escalation step %d, %d contact(s) notified (%s)",
            row.kind,
            alert_id,
            step,
            len({n.target for n in notices if n.result == "queued"}),
            ", ".join(sorted({c.id for c in people})) or "nobody registered",
        )
        return step

    # -- stopping ------------------------------------------------------------------

    def _stop_by_device(self, conn: Connection, row: Any) -> None:
        conn.execute(
            update(escalations)
            .where(escalations.c.alert_id == row.id, escalations.c.status.in_((RUNNING, EXHAUSTED)))
            .values(
                status=ACKED,
                next_ms=None,
                acked_ms=row.first_ack_ms,
                acked_by=row.first_ack_device,
                ack_channel="device",
                ack_step=row.step,
                clear_sent_ms=row.first_ack_ms,  # the alert engine cleared the group itself
            )
        )
        log.info("escalation of alert %s stopped at step %d: a neighbour acknowledged", row.id, row.step)

    def stop_acked(self, now_ms: int) -> None:
        """Chains whose alert a neighbour's device acknowledged (hub/alerts/engine.py on_ack)."""
        q = (
            select(escalations.c.step, alerts)
            .select_from(escalations.join(alerts, alerts.c.id == escalations.c.alert_id))
            .where(escalations.c.status.in_((RUNNING, EXHAUSTED)), alerts.c.close_reason == "ack")
        )
        with self.engine.begin() as conn:
            for row in conn.execute(q).all():
                self._stop_by_device(conn, row)

    def send_clears(self) -> None:
        """The group's clear (and the platform's) for chains stopped by anyone but a neighbour."""
        q = select(escalations, alerts).select_from(escalations.join(alerts, alerts.c.id == escalations.c.alert_id))
        q = q.where(escalations.c.status == ACKED, escalations.c.clear_sent_ms.is_(None))
        pubs = []
        with self.engine.begin() as conn:
            for row in conn.execute(q).all():
                now = self.now_ms()
                owed = update(escalations).where(
                    escalations.c.alert_id == row.id, escalations.c.clear_sent_ms.is_(None)
                )
                if not conn.execute(owed.values(clear_sent_ms=now)).rowcount:
                    continue  # another hub on the same database sent it since the read
                if self.platform is not None:
                    self.platform.hand_over(conn, [AlertItem(row.id, "clear", row.kind, row.origin_device,
                                                             row.household_id, now, row.group_id,
                                                             close_reason=row.close_reason,
                                                             response_ms=row.response_ms)])  # fmt: skip
                pubs.append(
                    Publication(
                        row.group_id, Alert(row.id, "clear", row.kind, row.origin_device, row.household_id[:64], now)
                    )
                )
        if pubs and self.publish is not None:
            self.publish(pubs)


def ack(conn: Connection, alert_id: str, by: str, channel: str, now_ms: int) -> bool:
    """The first acknowledgement from beyond the buzzers: an operator taking over in the
    console, a gateway's signed callback, a 治安户长's device. Stops the chain and closes
    the alert; False when the chain was stopped already (the first ack wins)."""
    row = conn.execute(select(escalations).where(escalations.c.alert_id == alert_id)).first()
    if row is None:
        return False
    done = conn.execute(
        update(escalations)
        .where(escalations.c.alert_id == alert_id, escalations.c.status.in_((RUNNING, EXHAUSTED)))
        .values(status=ACKED, next_ms=None, acked_ms=now_ms, acked_by=by[:64], ack_channel=channel, ack_step=row.step)
    ).rowcount
    if not done:
        return False
    reason = "operator" if channel == "console" else channel
    conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.status == "open")
        .values(
            status="closed",
            closed_ms=now_ms,
            close_reason=reason,
            first_ack_ms=now_ms,
            response_ms=now_ms - alerts.c.raised_ms,
        )
    )
    log.warning("escalation of alert %s stopped at step %d: acknowledged by %s (%s)", alert_id, row.step, by, channel)
    return True


def on_device_ack(conn: Connection, alert_id: str, device_id: str, ok: bool, now_ms: int) -> bool:
    """An alert ack from a device outside the alert's group: a 治安户长's own device this
    chain sent an ``alert`` command to (hub/alerts/engine.py hands it here)."""
    if not ok:
        return False
    # One person may be several contacts with one device (a 治安户长 heading two villages):
    # whichever of them this chain sent the alert command to.
    ids = [c.id for c in contacts.by_device(conn, device_id)]
    if not ids:
        return False
    sent = conn.execute(
        select(escalation_notices.c.target)
        .where(
            and_(
                escalation_notices.c.alert_id == alert_id,
                escalation_notices.c.channel == "mqtt",
                escalation_notices.c.target.in_(ids),
            )
        )
        .order_by(escalation_notices.c.step, escalation_notices.c.id)
    ).first()
    return sent is not None and ack(conn, alert_id, str(sent.target), "mqtt", now_ms)
