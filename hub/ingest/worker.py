"""An ingest worker: the MQTT thread queues messages, the writer thread
commits them in batches and only then acknowledges them to the broker.

Batching is what makes the database keep up (one commit per N messages or
T ms, whichever first); acking after commit is what makes a hub crash lose
nothing — the broker re-sends whatever was not acknowledged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.alerts.engine import Publication
from hub.config import HubConfig
from hub.ingest.batch import BatchProcessor, BatchResult
from hub.ingest.mqtt import connect_properties, make_client, subscriptions
from hub.ingest.validate import Inbound
from hub.metrics import HubMetrics
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

    def rejected(self, reason: str, topic: str, detail: str) -> None:
        now = time.monotonic()
        if now - self._last.get(reason, float("-inf")) < self.interval_s:
            self._held[reason] = self._held.get(reason, 0) + 1
            return
        held = self._held.pop(reason, 0)
        self._last[reason] = now
        more = f" (+{held} more since last report)" if held else ""
        log.warning("rejected %s on %s: %s%s", reason, topic, detail, more)


class IngestWorker:
    def __init__(self, config: HubConfig, processor: BatchProcessor, metrics: HubMetrics,
                 client_id: str | None = None) -> None:
        self.config = config
        self.processor = processor
        self.metrics = metrics
        self.client = make_client(config.mqtt, client_id)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._confirm_lock = threading.Lock()
        self._awaiting: dict[int, str] = {}  # mid → alert id
        self._confirmed: list[tuple[str, int]] = []
        self.inbox: queue.Queue[Inbound] = queue.Queue()
        self.subscribed = threading.Event()
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="xl-hub-writer", daemon=True)
        self._rejects = RateLimitedLog(config.ingest.reject_log_interval_s)
        self.batches = 0

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        cfg = self.config.mqtt
        self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=False,
                                  properties=connect_properties(cfg))
        self.client.loop_start()
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
        props = None
        if retire:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props)
        self.client.loop_stop()

    # -- MQTT thread ---------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        log.info("connected to %s:%d", self.config.mqtt.host, self.config.mqtt.port)
        client.subscribe(subscriptions(self.config.mqtt.share_group))

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("subscription refused by the broker: %s", ", ".join(failed))
            return
        self.subscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _p: Any) -> None:
        self.subscribed.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from broker (%s); paho reconnects", reason)

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        if self._stopping.is_set():
            return  # left unacknowledged: the broker re-sends it to the next session
        self.inbox.put(Inbound(msg.topic, msg.payload, msg.mid, msg.qos, int(time.time() * 1000),
                               bool(msg.retain)))

    # -- writer thread -------------------------------------------------------

    def _next_batch(self) -> list[Inbound]:
        try:
            first = self.inbox.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.config.ingest.batch_ms / 1000
        while len(batch) < self.config.ingest.batch_max:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self.inbox.get_nowait() if remaining <= 0 else self.inbox.get(timeout=remaining))
            except queue.Empty:
                break
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
            for msg in batch:
                if msg.qos > 0:
                    self.client.ack(msg.mid, msg.qos)
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
        with self._confirm_lock:  # held so a fast PUBACK cannot beat the bookkeeping
            for pub in publications:
                info = self.client.publish(alert_topic(pub.group_id), encode(pub.alert), qos=qos)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    log.error("alert %s to group %s not queued: rc=%s", pub.alert.alert_id, pub.group_id,
                              info.rc)
                elif pub.alert.phase == "raise":
                    self._awaiting[info.mid] = pub.alert.alert_id

    def _on_publish(self, _c: mqtt.Client, _ud: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._confirm_lock:
            alert_id = self._awaiting.pop(mid, None)
            if alert_id is not None and not reason.is_failure:
                self._confirmed.append((alert_id, int(time.time() * 1000)))

    def take_confirmed(self) -> list[tuple[str, int]]:
        """(alert id, confirmed ms) of raises the broker has accepted since the last call."""
        with self._confirm_lock:
            out, self._confirmed = self._confirmed, []
        return out
