"""What the demo shows, counted from the hub's own database and the mock platform."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, func, select

from hub.db.schema import devices
from hub.db.schema_ops import alert_acks, alerts, events


@dataclass
class Summary:
    events_by_kind: dict[str, int] = field(default_factory=dict)  # visits (start phases) by kind
    event_rows: int = 0
    alerts_raised: int = 0
    alerts_acked: int = 0
    panic_alerts: list[dict[str, Any]] = field(default_factory=list)
    forwarded_viid: int = 0
    forwarded_webhook: int = 0
    devices_online: int = 0
    devices_total: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = ["", "demo summary"]
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.events_by_kind.items())) or "none"
        lines.append(f"  events stored        {self.event_rows} rows; visits by kind: {kinds}")
        lines.append(f"  alerts               {self.alerts_raised} raised, {self.alerts_acked} acknowledged")
        for a in self.panic_alerts:
            lines.append(
                f"    panic from {a['household']} ({a['origin']}): {a['acks']} neighbour acks, "
                f"first after {a['response_s']}"
            )
        lines.append(
            f"  forwarded            视图库 persons {self.forwarded_viid}, webhook posts {self.forwarded_webhook}"
        )
        lines.append(f"  devices online       {self.devices_online} of {self.devices_total}")
        for p in self.problems:
            lines.append(f"  PROBLEM: {p}")
        lines.append("  result               " + ("OK" if self.ok else "the demo did not show everything it should"))
        return "\n".join(lines)


def summarize(db_url: str, viid: Any, hook: Any, panic_device: str) -> Summary:
    engine = create_engine(db_url)
    s = Summary()
    try:
        with engine.connect() as conn:
            s.event_rows = conn.execute(select(func.count()).select_from(events)).scalar_one()
            for kind, n in conn.execute(
                select(events.c.kind, func.count()).where(events.c.phase == "start").group_by(events.c.kind)
            ):
                s.events_by_kind[kind] = n
            s.alerts_raised = conn.execute(select(func.count()).select_from(alerts)).scalar_one()
            s.alerts_acked = conn.execute(
                select(func.count()).select_from(alerts).where(alerts.c.first_ack_ms.is_not(None))
            ).scalar_one()
            for row in conn.execute(select(alerts).where(alerts.c.kind == "panic")).mappings():
                acks = conn.execute(
                    select(func.count()).select_from(alert_acks).where(alert_acks.c.alert_id == row["id"])
                ).scalar_one()
                rs = f"{row['response_ms'] / 1000:.1f} s" if row["response_ms"] is not None else "no ack yet"
                s.panic_alerts.append(
                    {"household": row["household_id"], "origin": row["origin_device"], "acks": acks, "response_s": rs}
                )
            s.devices_total = conn.execute(select(func.count()).select_from(devices)).scalar_one()
            s.devices_online = conn.execute(
                select(func.count()).select_from(devices).where(devices.c.online.is_(True))
            ).scalar_one()
    finally:
        engine.dispose()
    s.forwarded_viid = len(viid.persons)
    s.forwarded_webhook = len(hook.bodies)
    if not s.events_by_kind.get("person"):
        s.problems.append("no person event was stored")
    if panic_device and not any(a["origin"] == panic_device for a in s.panic_alerts):
        s.problems.append(f"no panic alert from {panic_device}")
    elif panic_device and not any(a["acks"] for a in s.panic_alerts if a["origin"] == panic_device):
        s.problems.append("no neighbour acknowledged the panic alert")
    if s.forwarded_viid == 0 and s.forwarded_webhook == 0:
        s.problems.append("nothing reached the platform")
    if s.devices_online == 0:
        s.problems.append("no device online")
    return s


def progress_line(db_url: str, viid: Any, hook: Any, elapsed: float) -> str:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            n_events = conn.execute(select(func.count()).select_from(events)).scalar_one()
            n_alerts = conn.execute(select(func.count()).select_from(alerts)).scalar_one()
            online = conn.execute(
                select(func.count()).select_from(devices).where(devices.c.online.is_(True))
            ).scalar_one()
    finally:
        engine.dispose()
    return (
        f"  t={elapsed:4.0f}s  events {n_events:4d}  alerts {n_alerts}  online {online:2d}  "
        f"forwarded: 视图库 {len(viid.persons)}, webhook {len(hook.bodies)}"
    )
