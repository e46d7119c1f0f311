"""Flapping: a device that goes offline ``health.flap_count`` times within
``health.flap_window_s`` gets one ``flapping`` alarm, not an offline alarm
each time, and the alarm clears once it has been online, its presence unchanged, for
``health.flap_stable_s`` (a device that settled offline keeps it).

The usual case on rural 4G is a link that drops for seconds at a time: each
drop is back inside the offline grace, so without this rule the operator sees
nothing while the camera misses a little of every hour. The other case is
drops longer than the grace: those raise ``offline_armed`` (and a recovery
notice) each until the count is reached; from then the flapping alarm stands
for them — it supersedes an open ``offline_armed`` of the device, and
``hub.health.offline`` raises none while it is open.

Every offline transition is stored (``presence_downs``, pruned past the
window) rather than counted in memory, so a restarted hub or a second worker
counts the same. Downs during a broker-wide outage are not the device's own
and do not count; downs of a device in maintenance are not stored at all.
The alarm is raised whether the household is armed or not: it is about the
device's link or power, not about a burglar.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Connection, delete, select

from hub.config import HealthConfig
from hub.db.schema import devices
from hub.db.schema_ops import alarms
from hub.health.alarms import AlarmBook, away_for
from hub.health.presence import Transition
from hub.health.tables import presence_downs

log = logging.getLogger("xl.hub.health")

FLAPPING = "flapping"
OFFLINE_ARMED = "offline_armed"  # the same kind hub.health.offline raises (that module imports this one)


class FlapRules:
    def __init__(self, config: HealthConfig) -> None:
        self.count = config.flap_count
        self.window_ms = int(config.flap_window_s * 1000)
        self.stable_ms = int(config.flap_stable_s * 1000)

    def log_downs(self, conn: Connection, book: AlarmBook, transitions: Sequence[Transition]) -> None:
        """Store the offline transitions just written (one multi-row INSERT)."""
        rows = [
            {"device_id": t.device_id, "at_ms": t.at_ms}
            for t in transitions
            if not t.online and book.quiet(t.device_id, t.at_ms) is None
        ]
        if rows:
            conn.execute(presence_downs.insert(), rows)

    def check(self, conn: Connection, now_ms: int, outages: Sequence[tuple[int, int | None]]) -> list[str]:
        """Raise and clear flapping alarms; ``outages`` are broker-wide ones as (began, ended or None).
        Returns the devices that got a flapping alarm."""
        since = now_ms - self.window_ms
        conn.execute(delete(presence_downs).where(presence_downs.c.at_ms < since))
        counts: dict[str, int] = {}
        for r in conn.execute(select(presence_downs.c.device_id, presence_downs.c.at_ms)):
            at = int(r.at_ms)
            if any(began <= at and (ended is None or at <= ended) for began, ended in outages):
                continue  # the broker's doing, counted against the broker
            counts[r.device_id] = counts.get(r.device_id, 0) + 1
        flapping = {
            r.device_id: r
            for r in conn.execute(
                select(alarms.c.device_id, alarms.c.raised_ms).where(
                    alarms.c.kind == FLAPPING, alarms.c.cleared_ms.is_(None)
                )
            )
        }
        due = sorted(d for d, n in counts.items() if n >= self.count and d not in flapping)
        book = AlarmBook(conn, [*due, *flapping])
        raised = []
        for dev in due:
            detail = f"went offline {counts[dev]} times within {self.window_ms // 60000} min"
            if book.raise_(dev, FLAPPING, detail, now_ms):
                raised.append(dev)
                # One alarm about the device, not this one and an offline one beside it.
                book.clear(dev, OFFLINE_ARMED, now_ms)
        if flapping:
            self._clear_settled(conn, book, now_ms, list(flapping))
        if raised:
            log.warning(
                "flapping: %s", ", ".join(raised[:10]) + (f" and {len(raised) - 10} more" if len(raised) > 10 else "")
            )
        return raised

    def _clear_settled(self, conn: Connection, book: AlarmBook, now_ms: int, ids: list[str]) -> None:
        # Settled online: a device that stopped flapping by staying away (the failing supply gave
        # out) is not recovered; its flapping alarm goes on standing for its offline one.
        rows = conn.execute(
            select(devices.c.id, devices.c.online, devices.c.state_changed_ms).where(devices.c.id.in_(sorted(ids)))
        )
        settled = [
            r.id
            for r in rows
            if r.online is True and (r.state_changed_ms is None or int(r.state_changed_ms) <= now_ms - self.stable_ms)
        ]
        for dev in settled:
            book.recover(dev, FLAPPING, now_ms, f"presence unchanged for {away_for(self.stable_ms)}")
        if settled:
            # Its count starts afresh: the downs before the quiet spell are history.
            conn.execute(delete(presence_downs).where(presence_downs.c.device_id.in_(settled)))
