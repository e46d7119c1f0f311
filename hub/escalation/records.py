"""Reading chains for the console: each step, who was notified on which channel, and
what became of each notice (the outbox row's state for queued ones)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, select

from hub.db.schema_ops import alerts
from hub.escalation.tables import ACKED, escalation_notices, escalation_steps, escalations
from hub.forward.tables import forward_outbox


def recent(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    q = (
        select(escalations, alerts.c.household_id, alerts.c.origin_device, alerts.c.status.label("alert_status"))
        .select_from(escalations.join(alerts, alerts.c.id == escalations.c.alert_id))
        .order_by(escalations.c.started_ms.desc())
        .limit(limit)
    )
    chains = [dict(r._mapping) for r in conn.execute(q)]
    if not chains:
        return []
    ids = [c["alert_id"] for c in chains]
    notices = conn.execute(
        select(
            escalation_notices,
            forward_outbox.c.state.label("delivery"),
            forward_outbox.c.attempts,
            forward_outbox.c.last_error,
        )
        .select_from(
            escalation_notices.outerjoin(
                forward_outbox,
                and_(
                    forward_outbox.c.sink == escalation_notices.c.sink,
                    forward_outbox.c.item_key == escalation_notices.c.item_key,
                ),
            )
        )
        .where(escalation_notices.c.alert_id.in_(ids))
        .order_by(escalation_notices.c.step, escalation_notices.c.id)
    ).all()
    steps = conn.execute(select(escalation_steps).where(escalation_steps.c.alert_id.in_(ids))).all()
    by_alert: dict[str, dict[int, dict[str, Any]]] = {i: {} for i in ids}
    for s in steps:
        by_alert[s.alert_id][s.step] = {"step": s.step, "at_ms": s.at_ms, "notices": []}
    for n in notices:
        entry = by_alert[n.alert_id].setdefault(n.step, {"step": n.step, "at_ms": n.at_ms, "notices": []})
        # A queued notice's result is the forwarder's: done, pending (retrying) or dead.
        result = n.result if n.item_key is None else (n.delivery or "purged")
        entry["notices"].append(
            {"channel": n.channel, "target": n.target, "result": result, "attempts": n.attempts, "error": n.last_error}
        )
    for c in chains:
        c["steps"] = [by_alert[c["alert_id"]][k] for k in sorted(by_alert[c["alert_id"]])]
    return chains


def live(conn: Connection, since_ms: int) -> list[dict[str, Any]]:
    """Chains not yet acknowledged, and those acknowledged since ``since_ms``: what the console's
    live poll shows and sounds for."""
    q = (
        select(
            escalations.c.alert_id,
            escalations.c.kind,
            escalations.c.group_id,
            escalations.c.step,
            escalations.c.status,
            escalations.c.started_ms,
            escalations.c.acked_by,
            escalations.c.ack_channel,
            alerts.c.household_id,
        )
        .select_from(escalations.join(alerts, alerts.c.id == escalations.c.alert_id))
        .where((escalations.c.status != ACKED) | (escalations.c.acked_ms >= since_ms))
        .where(escalations.c.started_ms >= since_ms - 86_400_000)
        .order_by(escalations.c.started_ms.desc())
        .limit(50)
    )
    return [dict(r._mapping) for r in conn.execute(q)]
