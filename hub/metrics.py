"""Prometheus metrics of one hub process, served on ``/metrics``.

Each Hub owns its registry (not the global default) so several workers can
live in one process — as they do in tests — without colliding series.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from hub.core.inbound import ALL_REASONS
from protocol.topics import UPLINK


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("xl_hub_messages", "Accepted uplink messages by channel", ["kind"], registry=r)
        self.rejected = Counter("xl_hub_rejected", "Rejected uplink messages by reason", ["reason"], registry=r)
        self.duplicates = Counter("xl_hub_duplicate_events", "Event phases received again", registry=r)
        self.lag = Histogram(
            "xl_hub_ingest_lag_seconds",
            "Receive time minus device time of trusted events",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )
        self.commit = Histogram(
            "xl_hub_batch_commit_seconds",
            "Time to validate and commit one batch",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=r,
        )
        self.batch_size = Histogram(
            "xl_hub_batch_size",
            "Messages per committed batch",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.db_errors = Counter("xl_hub_db_errors", "Batches whose commit failed (retried)", registry=r)
        self.devices = Gauge("xl_hub_devices", "Active devices by presence", ["state"], registry=r)
        self.open_alerts = Gauge("xl_hub_open_alerts", "十户联防 alerts not yet acknowledged", registry=r)
        self.open_alarms = Gauge("xl_hub_open_alarms", "Operator alarms not yet cleared", registry=r)
        self.broker_outage = Gauge(
            "xl_hub_broker_outage", "1 while a broker-wide disconnect alarm is open, else 0", registry=r
        )
        # Issue 21: recovery notices (an alarm that was raised, its device or the broker back),
        # open flapping alarms, and devices whose alarms a maintenance window keeps quiet.
        self.recoveries = Counter(
            "xl_hub_alarm_recoveries", "Recovery notices recorded, by the recovered alarm's kind", ["kind"], registry=r
        )
        self.flapping = Gauge("xl_hub_flapping_devices", "Devices with an open flapping alarm", registry=r)
        self.maintenance = Gauge(
            "xl_hub_maintenance_devices", "Devices in a maintenance window now (no alarms raised)", registry=r
        )
        self.alerts_raised = Counter("xl_hub_alerts_raised", "Alerts raised by kind", ["kind"], registry=r)
        self.forward_depth = Gauge("xl_hub_forward_queue_depth", "Items waiting for the platform", registry=r)
        self.forward_age = Gauge("xl_hub_forward_oldest_age_seconds", "Age of the oldest waiting item", registry=r)
        self.transport_restarts = Counter(
            "xl_hub_transport_restarts", "Times the MQTT transport process died and was restarted", registry=r
        )
        self.shed = Counter(
            "xl_hub_shed_messages", "QoS 0 messages (heartbeats) dropped while the writer was far behind", registry=r
        )
        # Issue 21: rows deleted by age per data class (events, snapshots, health, audit), and
        # those past their age kept at the last pass (open alert, waiting to be forwarded, kept clip).
        self.retention_deleted = Counter(
            "xl_hub_retention_deleted", "Rows deleted by retention, by data class", ["data_class"], registry=r
        )
        self.retention_held = Gauge(
            "xl_hub_retention_held",
            "Rows past their age kept at the last pass, by data class",
            ["data_class"],
            registry=r,
        )
        self.retention_pass_s = Gauge(
            "xl_hub_retention_pass_seconds", "Duration of the last retention pass", registry=r
        )
        for reason in sorted(ALL_REASONS):  # every series exists from the start, at zero
            self.rejected.labels(reason)
        for ch in sorted(UPLINK):
            self.messages.labels(ch.value)

    def serve(self, host: str, port: int) -> Callable[[], None]:
        """Serve /metrics in a daemon thread; returns the function that stops it."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        return stop
