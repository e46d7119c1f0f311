"""Rule (c): a device away while its household is armed needs an operator —
but only once it has stayed away for ``health.offline_grace_s``, and not when
the whole fleet dropped at once because the broker went away.

Every timer here is derived from stored state, never kept in memory:
a device's ``online`` flag and ``state_changed_ms`` (when it went offline), its
open alarms, and the ``broker_disconnect`` alarm rows (when a broker-wide
outage began and ended). A hub restarted during a grace therefore raises the
pending alarm on its first check, and so does a second hub worker.

Ingest calls ``on_transitions`` with the presence changes of its batch: a
device coming back clears its alarm at once, and a burst of devices going
offline is recognised as the broker's there, in the same transaction as the
wills, before any of their graces can end (the only memory is of the wills
seen in the last window, so that one delivered together with its device's
return still counts). The watcher calls ``check``
periodically: it ends a broker-wide outage once most devices are back, and
raises ``offline_armed`` for every armed device whose grace is over — for a
device caught in a broker-wide outage, counted from the broker's return.

Issue 21: a device or the broker coming back after its alarm was raised gets
a recovery notice (``alarm_notices``; none for a return inside the grace, as
no alarm was raised). Flapping (``hub.health.flapping``) is checked with the
graces, and a device with an open flapping alarm gets no offline alarm. A
device in a maintenance window gets none either (``AlarmBook.raise_``); as
its grace is derived from ``state_changed_ms``, the first check after the
window ends raises the alarm of a device still away.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, exists, func, select, update

from hub.alerts.engine import AlertEngine
from hub.config import HealthConfig
from hub.core.directory import Directory
from hub.db.schema import devices
from hub.db.schema_ops import alarms
from hub.health.alarms import AlarmBook, away_for, record_notice
from hub.health.flapping import FLAPPING, OFFLINE_ARMED, FlapRules
from hub.health.presence import Sighting, Transition

log = logging.getLogger("xl.hub.health")

__all__ = ["BROKER", "BROKER_DISCONNECT", "OFFLINE_ARMED", "OfflineRules", "Outage"]

BROKER_DISCONNECT = "broker_disconnect"
# The broker alarm's subject in alarms.device_id: never a 20-digit device ID,
# so it cannot collide with a device's own alarms.
BROKER = "broker"


@dataclass(frozen=True, slots=True)
class Outage:
    alarm_id: int
    began_ms: int  # the first offline of the burst: devices offline since then are the broker's
    ended_ms: int | None  # when most were back; None while it is still on


class OfflineRules:
    def __init__(self, directory: Directory, alerts: AlertEngine, config: HealthConfig) -> None:
        self.directory = directory
        self.alerts = alerts
        self.grace_ms = int(config.offline_grace_s * 1000)
        self.window_ms = int(config.broker_window_s * 1000)
        self.fraction = config.broker_fraction
        self.min_devices = config.broker_min_devices
        self._wills: dict[str, int] = {}  # device → receive time of its last will, for one window
        self.flaps = FlapRules(config)

    # -- called by ingest (and by the watcher for missed heartbeats) ------------

    def on_presence(
        self, conn: Connection, book: AlarmBook, sightings: Sequence[Sighting], transitions: Sequence[Transition]
    ) -> None:
        """Ingest: the batch's sightings and the presence changes just written.

        After a broker restart the hub's session can deliver a device's queued
        will and its new ``online`` in one batch: the device never shows
        offline, but its will still counts towards a broker-wide disconnect,
        so the wills are remembered here for one window.
        """
        wills = [s.received_ms for s in sightings if not s.online]
        for s in sightings:
            if not s.online:
                self._wills[s.device_id] = s.received_ms
        self.on_transitions(conn, book, transitions, max(wills, default=None))

    def on_transitions(
        self, conn: Connection, book: AlarmBook, transitions: Sequence[Transition], last_will_ms: int | None = None
    ) -> None:
        """Presence changes just written in this transaction."""
        for t in transitions:
            if t.online:
                book.recover(t.device_id, OFFLINE_ARMED, t.at_ms, "back online")
        self.flaps.log_downs(conn, book, transitions)
        gone = [t.at_ms for t in transitions if not t.online]
        if last_will_ms is not None:
            gone.append(last_will_ms)
        if gone:
            self._detect_broker_wide(conn, max(gone))

    def _detect_broker_wide(self, conn: Connection, now_ms: int) -> None:
        since = now_ms - self.window_ms
        self._wills = {d: at for d, at in self._wills.items() if since <= at <= now_ms}
        if self._open_outage(conn) is not None:
            return
        active = devices.c.status == "active"
        recent = {
            r.id: int(r.state_changed_ms)
            for r in conn.execute(
                select(devices.c.id, devices.c.state_changed_ms).where(
                    active, devices.c.online.is_(False), devices.c.state_changed_ms >= since
                )
            )
        }
        n = len(recent.keys() | self._wills.keys())
        if n < self.min_devices:
            return
        online = conn.execute(select(func.count()).where(active, devices.c.online.is_(True))).scalar_one()
        # Of the devices that were online a window ago (those online now, some
        # of them back already, plus those that have just gone), which share went?
        if n < self.fraction * (online + len(recent)):
            return
        first = min([*recent.values(), *self._wills.values()])
        detail = (
            f"{n} of {online + len(recent)} devices went offline within {self.window_ms / 1000:g} s: "
            "the broker restarted or is unreachable"
        )
        conn.execute(alarms.insert().values(device_id=BROKER, kind=BROKER_DISCONNECT, detail=detail, raised_ms=first))
        log.warning("broker-wide disconnect: %s; per-device offline alarms wait for its return", detail)

    # -- called by the watcher ----------------------------------------------------

    def check(self, conn: Connection, now_ms: int) -> list[str]:
        """End a broker-wide outage when most devices are back; raise what is due.
        Returns the devices that got an ``offline_armed`` alarm."""
        self._end_outage(conn, now_ms)
        self.flaps.check(conn, now_ms, self._outages_since(conn, now_ms - self.flaps.window_ms))
        return self._raise_due(conn, now_ms)

    def _outages_since(self, conn: Connection, since_ms: int) -> list[tuple[int, int | None]]:
        rows = conn.execute(
            select(alarms.c.raised_ms, alarms.c.cleared_ms).where(
                alarms.c.device_id == BROKER,
                alarms.c.kind == BROKER_DISCONNECT,
                alarms.c.cleared_ms.is_(None) | (alarms.c.cleared_ms >= since_ms),
            )
        )
        return [(int(r.raised_ms), None if r.cleared_ms is None else int(r.cleared_ms)) for r in rows]

    def _open_outage(self, conn: Connection) -> Outage | None:
        row = conn.execute(
            select(alarms.c.id, alarms.c.raised_ms)
            .where(alarms.c.device_id == BROKER, alarms.c.kind == BROKER_DISCONNECT, alarms.c.cleared_ms.is_(None))
            .order_by(alarms.c.raised_ms)
            .limit(1)
        ).first()
        return None if row is None else Outage(int(row.id), int(row.raised_ms), None)

    def _end_outage(self, conn: Connection, now_ms: int) -> None:
        outage = self._open_outage(conn)
        if outage is None:
            return
        active = devices.c.status == "active"
        # Back: heard from since the outage began (a device whose will and
        # return came in one batch never changed state). Away: went offline since.
        back = conn.execute(
            select(func.count()).where(active, devices.c.online.is_(True), devices.c.last_seen_ms >= outage.began_ms)
        ).scalar_one()
        away = conn.execute(
            select(func.count()).where(
                active, devices.c.online.is_(False), devices.c.state_changed_ms >= outage.began_ms
            )
        ).scalar_one()
        # "Back" needs at least one device through the broker again; then the
        # outage is over once fewer are away than would have made it one.
        if back == 0 or (away >= self.min_devices and away >= self.fraction * (back + away)):
            return
        conn.execute(update(alarms).where(alarms.c.id == outage.alarm_id).values(cleared_ms=now_ms))
        why = f"broker back: {back} device(s) back, {away} still away; alarmed for {away_for(now_ms - outage.began_ms)}"
        record_notice(conn, outage.alarm_id, BROKER, BROKER_DISCONNECT, outage.began_ms, now_ms, why)
        log.warning(
            "broker-wide disconnect over: %d device(s) back, %d still away get their own alarm "
            "if they are not back within %.0f s",
            back,
            away,
            self.grace_ms / 1000,
        )

    def _outages_in_grace(self, conn: Connection, now_ms: int) -> list[Outage]:
        """Outages still on, or over for less than a grace: devices caught in them are not due yet."""
        rows = conn.execute(
            select(alarms.c.id, alarms.c.raised_ms, alarms.c.cleared_ms).where(
                alarms.c.device_id == BROKER,
                alarms.c.kind == BROKER_DISCONNECT,
                alarms.c.cleared_ms.is_(None) | (alarms.c.cleared_ms > now_ms - self.grace_ms),
            )
        )
        return [Outage(int(r.id), int(r.raised_ms), None if r.cleared_ms is None else int(r.cleared_ms)) for r in rows]

    def _raise_due(self, conn: Connection, now_ms: int) -> list[str]:
        # An open flapping alarm stands for the device's offline ones.
        has_open = exists().where(
            alarms.c.device_id == devices.c.id,
            alarms.c.kind.in_((OFFLINE_ARMED, FLAPPING)),
            alarms.c.cleared_ms.is_(None),
        )
        # Every device away longer than a grace without its alarm. A device
        # long offline outside armed hours is looked at again each check; with
        # a county's few hundred at most that is a cheap query.
        rows = conn.execute(
            select(devices.c.id, devices.c.state_changed_ms, devices.c.armed).where(
                devices.c.status == "active",
                devices.c.online.is_(False),
                devices.c.state_changed_ms.is_not(None),
                devices.c.state_changed_ms <= now_ms - self.grace_ms,
                ~has_open,
            )
        ).all()
        if not rows:
            return []
        outages = self._outages_in_grace(conn, now_ms)
        book = AlarmBook(conn, [])  # the query above excluded open alarms already
        raised = []
        for r in rows:
            went = int(r.state_changed_ms)
            if any(o.began_ms <= went and (o.ended_ms is None or went <= o.ended_ms) for o in outages):
                continue  # the broker's outage: its grace runs from the broker's return
            info = self.directory.device(r.id)
            armed = r.armed is True or (info is not None and self.alerts.armed_at(info.household_id, went))
            if not armed:
                continue
            if book.raise_(
                r.id,
                OFFLINE_ARMED,
                f"went offline during armed hours, not back after {(now_ms - went) // 1000} s",
                now_ms,
            ):
                raised.append(r.id)
        if raised:
            more = f" and {len(raised) - 10} more" if len(raised) > 10 else ""
            log.warning(
                "offline while armed, past the %.0f s grace: %s%s", self.grace_ms / 1000, ", ".join(raised[:10]), more
            )
        return raised
