"""Periodic checks no message triggers: silent devices, offline graces and
broker-wide outages and flapping (``hub.health.offline``), unacknowledged
alerts, and the gauges on /metrics (recovery notices counted as they are
recorded, by whichever worker: each process reads the table)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine, func, select

from hub.alerts.engine import AlertEngine, Publication
from hub.config import HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import ForwardSink
from hub.db.schema import devices
from hub.db.schema_ops import alarms, alerts
from hub.health.alarms import AlarmBook
from hub.health.flapping import FLAPPING
from hub.health.offline import BROKER, BROKER_DISCONNECT, OfflineRules
from hub.health.presence import expire_silent
from hub.health.tables import alarm_notices
from hub.maintenance.service import quiet_devices
from hub.metrics import HubMetrics
from hub.periodic import Periodic

log = logging.getLogger("xl.hub.health")


class Watcher:
    def __init__(
        self,
        engine_db: Engine,
        directory: Directory,
        alerts_engine: AlertEngine,
        config: HealthConfig,
        metrics: HubMetrics,
        sink: ForwardSink,
        publish: Callable[[list[Publication]], None],
        take_confirmed: Callable[[], list[tuple[str, int]]] = list,
    ) -> None:
        self.db = engine_db
        self.directory = directory
        self.alerts = alerts_engine
        self.config = config
        self.metrics = metrics
        self.sink = sink
        self.publish = publish
        self.take_confirmed = take_confirmed
        self.offline = OfflineRules(directory, alerts_engine, config)
        self._notices_seen: int | None = None  # the last recovery notice counted on /metrics
        self._periodic = Periodic("xl-hub-watcher", self.config.check_interval_s, self._pass)

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def _pass(self) -> None:
        self.check(int(time.time() * 1000))

    def check(self, now_ms: int) -> list[Publication]:
        with self.db.begin() as conn:
            if self._notices_seen is None:  # count from this process's start, not the table's history
                self._notices_seen = int(
                    conn.execute(select(func.coalesce(func.max(alarm_notices.c.id), 0))).scalar_one()
                )
            transitions = expire_silent(conn, now_ms, self.config.missed_heartbeats)
            book = AlarmBook(conn, [t.device_id for t in transitions])
            # A hub cut off from the broker sees every heartbeat stop at once:
            # that too is one broker alarm, not one per house.
            self.offline.on_transitions(conn, book, transitions)
            if transitions:
                shown = ", ".join(t.device_id for t in transitions[:10])
                more = f" and {len(transitions) - 10} more" if len(transitions) > 10 else ""
                log.warning(
                    "%d device(s) offline after %d missed heartbeats: %s%s",
                    len(transitions),
                    self.config.missed_heartbeats,
                    shown,
                    more,
                )
            self.offline.check(conn, now_ms)
            pubs = self.alerts.expire(conn, now_ms)
            self.alerts.mark_published(conn, self.take_confirmed())
            pubs += self.alerts.unconfirmed(conn, now_ms)
            online = {
                bool(r[0]): int(r[1])
                for r in conn.execute(
                    select(devices.c.online, func.count())
                    .where(devices.c.status == "active")
                    .group_by(devices.c.online)
                )
            }
            open_alerts = conn.execute(select(func.count()).where(alerts.c.status == "open")).scalar_one()
            open_alarms = conn.execute(select(func.count()).where(alarms.c.cleared_ms.is_(None))).scalar_one()
            broker_down = conn.execute(
                select(func.count()).where(
                    alarms.c.device_id == BROKER, alarms.c.kind == BROKER_DISCONNECT, alarms.c.cleared_ms.is_(None)
                )
            ).scalar_one()
            flapping = conn.execute(
                select(func.count()).where(alarms.c.kind == FLAPPING, alarms.c.cleared_ms.is_(None))
            ).scalar_one()
            quiet = len(quiet_devices(conn, now_ms))
            recovered = conn.execute(
                select(alarm_notices.c.kind, func.count(), func.max(alarm_notices.c.id))
                .where(alarm_notices.c.id > self._notices_seen)
                .group_by(alarm_notices.c.kind)
            ).all()
        self.publish(pubs)
        m = self.metrics
        m.devices.labels("online").set(sum(n for k, n in online.items() if k))
        m.devices.labels("offline").set(sum(n for k, n in online.items() if not k))
        m.open_alerts.set(open_alerts)
        m.open_alarms.set(open_alarms)
        m.broker_outage.set(1 if broker_down else 0)
        m.flapping.set(flapping)
        m.maintenance.set(quiet)
        for kind, n, last in recovered:
            m.recoveries.labels(kind).inc(n)
            self._notices_seen = max(self._notices_seen or 0, int(last))
        stats = self.sink.queue_stats()
        if stats is not None:
            m.forward_depth.set(stats.depth)
            m.forward_age.set(stats.oldest_age_s)
        return pubs
