"""An ingest worker: the MQTT transport process (hub/mqtt/transport.py)
hands over raw messages, the writer thread commits them in batches and only
then has the transport acknowledge them to the broker.

Batching is what makes the database keep up (one commit per N messages or
T ms, whichever first); acking after commit is what makes a hub crash lose
nothing — the broker re-sends whatever was not acknowledged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import paho.mqtt.client as mqtt

from hub.alerts.engine import Publication
from hub.config import HubConfig
from hub.core.inbound import Inbound
from hub.ingest.batch import BatchProcessor, BatchResult
from hub.ingest.receipts import receipt_publications
from hub.metrics import HubMetrics
from hub.mqtt.transport_proxy import TransportProcess
from protocol.codec import encode
from protocol.qos import DELIVERY
from protocol.topics import Channel, alert_topic

log = logging.getLogger("xl.hub.ingest")


class RateLimitedLog:
    """At most one line per reason per interval, with how many were held back."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def rejected(self, reason: str, topic: str, detail: str, what: str = "rejected") -> None:
        now = time.monotonic()
        if now - self._last.get(reason, float("-inf")) < self.interval_s:
            self._held[reason] = self._held.get(reason, 0) + 1
            return
        held = self._held.pop(reason, 0)
        self._last[reason] = now
        more = f" (+{held} more since last report)" if held else ""
        log.warning("%s %s on %s: %s%s", what, reason, topic, detail, more)


class IngestWorker:
    def __init__(
        self, config: HubConfig, processor: BatchProcessor, metrics: HubMetrics, client_id: str | None = None
    ) -> None:
        self.config = config
        self.processor = processor
        self.metrics = metrics
        self.transport = TransportProcess(
            config.mqtt,
            client_id or config.mqtt.client_id,
            self._on_messages,
            self._on_confirmed,
            on_restart=metrics.transport_restarts.inc,
        )
        self._pending = 0  # messages handed over and not yet taken by the writer
        self._pending_lock = threading.Lock()
        self._confirm_lock = threading.Lock()
        self._confirmed: list[tuple[str, int]] = []
        self.inbox: queue.Queue[list[Inbound]] = queue.Queue()
        self._carry: list[Inbound] = []
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="xl-hub-writer", daemon=True)
        self._rejects = RateLimitedLog(config.ingest.reject_log_interval_s)
        self.batches = 0

    @property
    def subscribed(self) -> threading.Event:
        return self.transport.subscribed

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self.transport.start()
        self._writer.start()

    def stop(self, timeout: float = 10.0, *, retire: bool = False) -> None:
        """Finish the batch in hand, acknowledge it, then disconnect.

        Messages the broker sent but we never took are not acknowledged, so
        it delivers them again on the next start (the session persists).
        ``retire`` ends the session instead (DISCONNECT with session expiry 0),
        for a worker that is being removed: otherwise the broker would keep
        queueing its share of the traffic for it."""
        self._stopping.set()
        self._writer.join(timeout)
        self.transport.stop(retire=retire, timeout=timeout)

    def kill(self) -> None:
        """Die as a crashed hub would (tests of redelivery): the writer gives up
        without acknowledging anything more and the transport is SIGKILLed, not restarted."""
        self._stopping.set()
        self.transport.kill(restart=False)

    # -- transport reader thread ---------------------------------------------

    # QoS 1 messages are bounded by the broker (mqtt.receive_maximum unacked at
    # a time); QoS 0 heartbeats are not. While the database is down they would
    # pile up here without end, so past this many waiting messages they are
    # dropped and counted: the next heartbeat carries the same facts.
    PENDING_LIMIT = 100_000

    def _on_messages(self, chunk: list[Inbound]) -> None:
        if self._stopping.is_set():
            return  # left unacknowledged: the broker re-sends them
        if self._pending > self.PENDING_LIMIT:
            kept = [m for m in chunk if m.qos > 0]
            if len(kept) < len(chunk):
                self.metrics.shed.inc(len(chunk) - len(kept))
                self._rejects.rejected(
                    "qos0",
                    chunk[0].topic,
                    f"{len(chunk) - len(kept)} dropped: {self._pending} messages waiting for the database",
                    what="shed",
                )
            chunk = kept
        if chunk:
            with self._pending_lock:
                self._pending += len(chunk)
            self.inbox.put(chunk)

    def _on_confirmed(self, alert_id: str, ok: bool, at_ms: int) -> None:
        if ok:
            with self._confirm_lock:
                self._confirmed.append((alert_id, at_ms))

    # -- writer thread -------------------------------------------------------

    def _next_batch(self) -> list[Inbound]:
        limit = self.config.ingest.batch_max
        batch, self._carry = self._carry, []
        if not batch:
            try:
                batch = self.inbox.get(timeout=0.1)
            except queue.Empty:
                return []
        deadline = time.monotonic() + self.config.ingest.batch_ms / 1000
        while len(batch) < limit:
            remaining = deadline - time.monotonic()
            try:
                batch.extend(self.inbox.get_nowait() if remaining <= 0 else self.inbox.get(timeout=remaining))
            except queue.Empty:
                break
        if len(batch) > limit:
            batch, self._carry = batch[:limit], batch[limit:]
        with self._pending_lock:
            self._pending -= len(batch)
        return batch

    def _write_loop(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                if self._stopping.is_set():
                    return
                continue
            result = self._commit(batch)
            if result is None:  # stopping while the database is down: leave it to redelivery
                return
            self.publish(result.publications)
            self.transport.ack(batch, receipt_publications(result.receipts))
            self.batches += 1

    def _commit(self, batch: list[Inbound]) -> BatchResult | None:
        delay = 0.5
        while True:
            started = time.perf_counter()
            try:
                result = self.processor.process(batch)
            except Exception:
                self.metrics.db_errors.inc()
                log.exception("batch of %d failed; retrying in %.1fs (not acknowledged)", len(batch), delay)
                if self._stopping.wait(delay):
                    return None
                delay = min(delay * 2, 30.0)
                continue
            self.metrics.commit.observe(time.perf_counter() - started)
            self.metrics.batch_size.observe(len(batch))
            self._count(result)
            return result

    def _count(self, result: BatchResult) -> None:
        m = self.metrics
        for kind, n in result.accepted.items():
            m.messages.labels(kind).inc(n)
        for r in result.rejected:
            m.rejected.labels(r.reason).inc()
            self._rejects.rejected(r.reason, r.topic, r.detail)
        if result.duplicates:
            m.duplicates.inc(result.duplicates)
        for lag in result.lags_s:
            m.lag.observe(lag)
        for pub in result.publications:
            if pub.alert.phase == "raise":
                m.alerts_raised.labels(pub.alert.kind).inc()

    def publish(self, publications: list[Publication]) -> None:
        """Send alerts; raises are tracked until the broker's PUBACK confirms them."""
        qos = DELIVERY[Channel.ALERT].qos
        items = [
            (alert_topic(p.group_id), encode(p.alert), qos, p.alert.alert_id if p.alert.phase == "raise" else None)
            for p in publications
        ]
        for pub, rc in zip(publications, self.transport.publish(items), strict=True):
            if rc != mqtt.MQTT_ERR_SUCCESS:
                log.error("alert %s to group %s not queued: rc=%s", pub.alert.alert_id, pub.group_id, rc)

    def take_confirmed(self) -> list[tuple[str, int]]:
        """(alert id, confirmed ms) of raises the broker has accepted since the last call."""
        with self._confirm_lock:
            out, self._confirmed = self._confirmed, []
        return out
