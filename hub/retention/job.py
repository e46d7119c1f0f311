"""The hourly retention pass as a hub Extension (``start()`` / ``stop()``).

On its own daemon thread through hub/periodic.py, like clip retention and the
health watcher: a failing pass is logged and the next one comes on time. The
pause between batches waits on the stop event, so ``xl-hub run`` stops within
one batch even in the middle of a long backlog (the next pass carries on:
pruning is by age, it keeps no state).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from hub.config_retention import RetentionConfig
from hub.console.tables import console_audit
from hub.metrics import HubMetrics
from hub.periodic import Periodic
from hub.retention.prune import Pass, Pruner

log = logging.getLogger("xl.hub.retention")


class RetentionJob:
    def __init__(
        self,
        engine: Engine,
        cfg: RetentionConfig,
        metrics: HubMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine, self.cfg, self.metrics, self.clock = engine, cfg, metrics, clock
        self._stopping = threading.Event()
        self.pruner = Pruner(engine, cfg, clock=clock, wait=self._stopping.wait)
        self.passes = 0
        self._started = False
        self.last: Pass | None = None
        self._periodic = Periodic("xl-hub-retention", cfg.interval_s, self.run_once)

    def start(self) -> None:
        self._started = True
        self._periodic.start()

    def stop(self) -> None:
        self._stopping.set()  # first: a pass in its pause between batches ends now
        if self._started:
            self._periodic.stop()

    def run_once(self) -> Pass:
        started = time.monotonic()
        done = self.pruner.run()
        self.passes += 1
        self.last = done
        if done.deleted:
            record(self.engine, done, int(self.clock() * 1000))
        for name, t in done.tallies.items():
            if self.metrics is not None:
                self.metrics.retention_deleted.labels(name).inc(t.deleted)
                self.metrics.retention_held.labels(name).set(t.held)
        if self.metrics is not None:
            self.metrics.retention_pass_s.set(time.monotonic() - started)
        if done.deleted or any(t.held for t in done.tallies.values()):
            log.info("retention: %s%s", summary(done), " (stopped, the next pass carries on)" if done.stopped else "")
        return done


def summary(done: Pass) -> str:
    return ", ".join(
        f"{name} {t.deleted} deleted" + (f" ({t.held} held)" if t.held else "") for name, t in done.tallies.items()
    )


def record(engine: Engine, done: Pass, now_ms: int) -> None:
    """One audit row per pass that deleted something: the county can show when
    data went, and how much (the audit log outlives the classes it prunes)."""
    detail = " ".join(f"{name}={t.deleted}" for name, t in done.tallies.items())
    with engine.begin() as conn:
        conn.execute(console_audit.insert().values(at_ms=now_ms, user_name="hub", action="retention", detail=detail))
