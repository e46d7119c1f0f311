"""The platform-forwarding view, read straight from the outbox tables.

Works whether or not this process runs the forwarder: a standalone console
(``xl-hub console``) sees the same queue that the hub's forwarder drains.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, select

from hub.forward import outbox
from hub.forward.tables import forward_sinks


def overview(conn: Connection, now_ms: int, dead_limit: int = 200) -> dict[str, Any]:
    names = conn.execute(select(forward_sinks.c.sink).order_by(forward_sinks.c.sink)).scalars().all()
    stats = [asdict(outbox.sink_stats(conn, name, now_ms)) for name in names]
    dead = [asdict(d) for d in outbox.dead_letters(conn, None, dead_limit)]
    return {
        "sinks": stats,
        "dead": dead,
        "depth": sum(s["depth"] for s in stats),
        "dead_total": sum(s["dead"] for s in stats),
    }


def retry(conn: Connection, ids: list[int] | None, now_ms: int) -> int:
    """Requeue the given dead letters, or every dead letter when ``ids`` is None."""
    if ids is None:
        ids = [d.id for d in outbox.dead_letters(conn, None, 10_000)]
    return outbox.retry_dead(conn, ids, now_ms)
