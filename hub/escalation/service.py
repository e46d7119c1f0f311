"""Building the escalation's running parts for ``xl-hub run``: its forwarder and its job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from hub.alerts.engine import AlertEngine, Publication
from hub.commands import Publisher
from hub.config_escalation import EscalationConfig
from hub.config_forward import ForwardConfig
from hub.core.forwarding import ForwardSink
from hub.core.items import EscalationItem
from hub.escalation.channels import BuzzerChannel, ConsoleChannel, MqttChannel, NotificationChannel, WebhookChannel
from hub.escalation.engine import Escalator, on_device_ack
from hub.escalation.sinks import DeviceAlertSink, RoleWebhookSink
from hub.forward.forwarder import Forwarder, RetryPolicy
from hub.forward.sink import Sink
from hub.periodic import Periodic


def build_sinks(engine: Engine, cfg: EscalationConfig, publisher: Publisher | None) -> list[Sink]:
    sinks: list[Sink] = [RoleWebhookSink(engine, role, hook, cfg.secret(role)) for role, hook in cfg.webhooks.items()]
    if cfg.mqtt and publisher is not None:
        sinks.append(DeviceAlertSink(engine, publisher))
    return sinks


def build(
    engine: Engine,
    cfg: EscalationConfig,
    *,
    forward: ForwardConfig | None,
    publisher: Publisher | None,
    publish: Callable[[list[Publication]], None] | None,
    platform: ForwardSink | None,
    alerts_engine: AlertEngine | None,
    poll_s: float = 0.5,
) -> tuple[Escalator, list[Any]]:
    """The escalator and the extensions to start: the forwarder of its sinks, then its periodic pass."""
    policy = (
        RetryPolicy()
        if forward is None
        else RetryPolicy(
            base_s=forward.retry_base_s, cap_s=forward.retry_cap_s, dead_after_s=forward.dead_after_h * 3600
        )
    )
    sinks = build_sinks(engine, cfg, publisher)
    # A killed hub's sink leases hold its successor back until they lapse: the platform's
    # forwarder can wait a minute, an unanswered panic should not. Twice the slowest
    # request still keeps one sender per sink while a request is in flight.
    lease_s = 2 * max([5.0, *(h.timeout_s for h in cfg.webhooks.values())])
    forwarder = Forwarder(engine, sinks, policy=policy, poll_s=poll_s, lease_ttl_s=lease_s) if sinks else None

    def enqueue(conn: Connection, items: Sequence[EscalationItem]) -> dict[str, list[Any]]:
        return {} if forwarder is None else dict(forwarder.enqueue_many(conn, items))

    channels: list[NotificationChannel] = [BuzzerChannel(), ConsoleChannel()]
    channels.append(WebhookChannel(enqueue, frozenset(cfg.webhooks)))
    if cfg.mqtt and publisher is not None:
        channels.append(MqttChannel(enqueue))
    escalator = Escalator(engine, cfg, channels, platform=platform, publish=publish)
    if alerts_engine is not None:
        alerts_engine.foreign_ack = on_device_ack
    job = Periodic("xl-escalation", cfg.check_interval_s, escalator.run_once, at_start=True)
    return escalator, ([forwarder] if forwarder is not None else []) + [job]
