"""The forwarder: drains each sink's outbox queue in order, with backoff and dead letters.

Per sink, only the head of the queue (lowest sequence still pending) is ever
sent. A failure backs the head off exponentially with jitter and nothing behind
it moves, so the platform sees each sink's items in the order the hub
committed them. The head leaves the queue only by succeeding or by dying:
immediately on a permanent rejection, or on the first failure after it has
been pending longer than ``dead_after_s``. A dead letter stays in the table,
visible and retryable, never deleted by the forwarder.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from hub.config_forward import ForwardConfig
from hub.core.forwarding import QueueStats
from hub.core.items import ForwardItem, item_from_json
from hub.forward import outbox
from hub.forward.clock import ForwardClock, SystemClock
from hub.forward.outbox import DeadLetter, SinkStats
from hub.forward.sink import Sink, SinkError
from xlconfig import default_of

log = logging.getLogger("hub.forward")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    # The forward section's defaults (hub/config_forward.py), written once there.
    base_s: float = default_of(ForwardConfig, "retry_base_s")  # first retry after 2.5–5 s
    cap_s: float = default_of(ForwardConfig, "retry_cap_s")  # a recovered platform is noticed quickly
    dead_after_s: float = default_of(ForwardConfig, "dead_after_h") * 3600.0  # a long weekend loses nothing
    keep_done_s: float = 7 * 86400.0  # delivered rows are purged after this

    def delay_ms(self, attempts: int, rng: random.Random) -> int:
        """Backoff before attempt ``attempts + 1``: exponential, capped, "equal jitter".

        Half the delay is fixed so retries never hammer a struggling platform;
        the random half spreads the hub's workers and sinks apart.
        """
        exp = min(self.cap_s, self.base_s * (2.0 ** max(0, attempts - 1)))
        return int(1000 * (exp / 2 + rng.uniform(0, exp / 2)))


class Forwarder:
    """Queue items in the ingest transaction; deliver them from a background loop.

    ``sinks`` are the targets (``ViidSink``, ``WebhookSink``, or anything that
    implements ``hub.forward.sink.Sink``); their ``name`` keys the queue, so it
    must stay stable across restarts.
    """

    def __init__(
        self,
        engine: Engine,
        sinks: Sequence[Sink],
        clock: ForwardClock | None = None,
        *,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        owner: str | None = None,
        lease_ttl_s: float = 60.0,
        poll_s: float = 1.0,
        max_per_run: int = 200,
    ) -> None:
        names = [s.name for s in sinks]
        if len(set(names)) != len(names) or any(not n or len(n) > 32 for n in names):
            raise ValueError(f"sink names must be unique, 1..32 characters: {names}")
        self.engine = engine
        self.sinks = {s.name: s for s in sinks}
        self.clock: ForwardClock = clock or SystemClock()
        self.policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease_ttl_ms = int(lease_ttl_s * 1000)
        self._poll_s = poll_s
        self._max_per_run = max_per_run
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_purge_ms = 0
        outbox.ensure_sinks(engine, names)

    # -- called by ingest / the alert engine ---------------------------------

    def enqueue(self, conn: Connection, item: ForwardItem) -> list[str]:
        """Queue ``item`` for every sink that accepts it, inside the caller's transaction.

        Call it after the event/alert row is written, as late in the transaction
        as possible: it takes each sink's counter lock until the commit. Returns
        the names of the sinks that queued it (empty if none wanted it or it was
        already queued).
        """
        return [name for name, queued in self.enqueue_many(conn, [item]).items() if queued]

    def enqueue_many(self, conn: Connection, items: Sequence[ForwardItem]) -> dict[str, list[ForwardItem]]:
        """``enqueue`` for a whole ingest batch, in order: a few statements per sink, not per item.

        Returns, per sink that wanted any of them, the items it got a new row for."""
        now_ms = self.clock.now_ms()
        queued: dict[str, list[ForwardItem]] = {}
        for name, sink in self.sinks.items():
            wanted = [item for item in items if sink.accepts(item)]
            if wanted:
                queued[name] = outbox.enqueue_many(conn, name, wanted, now_ms)
        return queued

    # -- the hub's ForwardSink port (hub.core.forwarding) ------------------------

    def hand_over(self, conn: Connection, items: Sequence[ForwardItem]) -> None:
        """What ingest and the alert engine call: ``enqueue_many``, nothing caught.

        A failure here (a sink not set up, the database) rolls back the batch
        with it and nothing is acknowledged, so the device sends again."""
        self.enqueue_many(conn, items)

    def queue_stats(self) -> QueueStats | None:
        stats = self.stats().values()
        return QueueStats(
            depth=sum(s.depth for s in stats), oldest_age_s=max((s.oldest_age_s for s in stats), default=0.0)
        )

    # -- delivery --------------------------------------------------------------

    def run_once(self, sink: str | None = None) -> int:
        """Deliver what is due now for one sink (or all); returns items delivered."""
        names = [sink] if sink is not None else list(self.sinks)
        delivered = 0
        for name in names:
            delivered += self._drain(name)
        self._maybe_purge()
        return delivered

    def _drain(self, name: str) -> int:
        sink = self.sinks[name]
        try:
            sink.tick(self.clock.now_ms())
        except Exception:  # a housekeeping bug must not stop delivery
            log.exception("forward sink %s: tick failed", name)
        lease_at = self.clock.now_ms()
        if not outbox.acquire_lease(self.engine, name, self.owner, lease_at, self._lease_ttl_ms):
            return 0  # another hub worker is sending for this sink
        delivered = 0
        for _ in range(self._max_per_run):
            now = self.clock.now_ms()
            if now - lease_at > self._lease_ttl_ms // 2:
                lease_at = now
                if not outbox.acquire_lease(self.engine, name, self.owner, now, self._lease_ttl_ms):
                    break
            with self.engine.connect() as conn:
                row = outbox.head(conn, name)
            if row is None or row.next_attempt_ms > now:
                break
            ok, permanent, error = self._send(sink, row.payload)
            now = self.clock.now_ms()
            with self.engine.begin() as conn:
                if ok:
                    outbox.mark_done(conn, row.id, now)
                    delivered += 1
                    continue
                age_s = (now - row.age_from_ms) / 1000.0
                if permanent or age_s >= self.policy.dead_after_s:
                    why = "rejected" if permanent else f"pending {age_s:.0f} s"
                    outbox.mark_dead(conn, row.id, now, error)
                    log.warning("forward %s: dead letter %s (%s): %s", name, row.item_key, why, error)
                    continue
                delay = self.policy.delay_ms(row.attempts + 1, self._rng)
                outbox.mark_retry(conn, row.id, now, error, now + delay)
            log.info(
                "forward %s: %s failed (attempt %d), retry in %.1f s: %s",
                name,
                row.item_key,
                row.attempts + 1,
                delay / 1000,
                error,
            )
            break
        return delivered

    @staticmethod
    def _send(sink: Sink, payload: str) -> tuple[bool, bool, str]:
        try:
            item = item_from_json(payload)
        except (ValueError, KeyError, TypeError) as exc:
            return False, True, f"unreadable outbox payload: {exc}"
        try:
            sink.send(item)
        except SinkError as exc:
            return False, exc.permanent, str(exc)
        except Exception as exc:  # unknown failures are retried, never silently dropped
            log.exception("forward sink %s: unexpected error", sink.name)
            return False, False, f"{type(exc).__name__}: {exc}"
        return True, False, ""

    def _maybe_purge(self) -> None:
        now = self.clock.now_ms()
        if now < self._next_purge_ms:
            return
        self._next_purge_ms = now + 3600_000
        with self.engine.begin() as conn:
            outbox.purge_done(conn, now - int(self.policy.keep_done_s * 1000))

    # -- background loop ---------------------------------------------------------

    def start(self) -> None:
        """One thread per sink, so a platform that times out does not delay the webhook."""
        if self._threads:
            raise RuntimeError("forwarder already started")
        self._stop.clear()
        for name in self.sinks:
            thread = threading.Thread(target=self._loop, args=(name,), name=f"forward-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once(name) >= self._max_per_run
            except Exception:  # the database may be restarting; keep the thread alive
                log.exception("forward %s: run failed", name)
                busy = False
            if not busy:
                self._stop.wait(self._poll_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        for name in self.sinks:
            try:
                outbox.release_lease(self.engine, name, self.owner)
            except Exception:
                log.exception("forward %s: could not release lease", name)
        for sink in self.sinks.values():
            sink.close()

    # -- operators, console, metrics ------------------------------------------------

    def stats(self) -> dict[str, SinkStats]:
        now = self.clock.now_ms()
        with self.engine.connect() as conn:
            return {name: outbox.sink_stats(conn, name, now) for name in self.sinks}

    def dead_letters(self, sink: str | None = None, limit: int = 100) -> list[DeadLetter]:
        with self.engine.connect() as conn:
            return outbox.dead_letters(conn, sink, limit)

    def retry_dead(self, ids: Iterable[int]) -> int:
        with self.engine.begin() as conn:
            return outbox.retry_dead(conn, ids, self.clock.now_ms())
