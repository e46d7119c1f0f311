"""What a rollout looks like: per cohort and per village, the versions running,
the progress and the failures with their reasons. One reading for
``xl-hub rollout status`` and the console's rollout page."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Connection, func, select

from hub.db.schema import devices, households, townships, villages
from hub.rollout.tables import DEVICE_STATES, rollout_audit, rollout_cohorts, rollout_devices, rollouts


def list_rollouts(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    counts: dict[int, Counter[str]] = {}
    for rid, state, n in conn.execute(
        select(rollout_devices.c.rollout_id, rollout_devices.c.state, func.count()).group_by(
            rollout_devices.c.rollout_id, rollout_devices.c.state
        )
    ):
        counts.setdefault(int(rid), Counter())[state] = int(n)
    out = []
    for r in conn.execute(select(rollouts).order_by(rollouts.c.id.desc()).limit(limit)).mappings():
        c = counts.get(int(r["id"]), Counter())
        out.append({**dict(r), "devices": sum(c.values()), "committed": c["committed"], "failed": c["failed"]})
    return out


def rollout_detail(conn: Connection, rollout_id: int, audit_limit: int = 200) -> dict[str, Any] | None:
    r = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).mappings().first()
    if r is None:
        return None
    cohorts = [
        {**dict(c), "counts": Counter[str](), "versions": Counter[str]()}
        for c in conn.execute(
            select(rollout_cohorts)
            .where(rollout_cohorts.c.rollout_id == rollout_id)
            .order_by(rollout_cohorts.c.position)
        ).mappings()
    ]
    q = (
        select(
            rollout_devices.c.device_id,
            rollout_devices.c.cohort,
            rollout_devices.c.state,
            rollout_devices.c.reason,
            rollout_devices.c.changed_ms,
            rollout_devices.c.sends,
            devices.c.agent_version,
            villages.c.name.label("village"),
            townships.c.name.label("township"),
        )
        .select_from(
            rollout_devices.outerjoin(devices, devices.c.id == rollout_devices.c.device_id)
            .outerjoin(households, households.c.id == devices.c.household_id)
            .outerjoin(villages, villages.c.id == households.c.village_id)
            .outerjoin(townships, townships.c.code == villages.c.township_code)
        )
        .where(rollout_devices.c.rollout_id == rollout_id)
        .order_by(rollout_devices.c.device_id)
    )
    villages_: dict[tuple[str, str], dict[str, Any]] = {}
    failures = []
    for d in conn.execute(q).mappings():
        ver = d["agent_version"] or "?"
        c = cohorts[d["cohort"]]
        c["counts"][d["state"]] += 1
        c["versions"][ver] += 1
        key = (d["township"] or "?", d["village"] or "?")
        v = villages_.setdefault(
            key, {"township": key[0], "village": key[1], "counts": Counter[str](), "versions": Counter[str]()}
        )
        v["counts"][d["state"]] += 1
        v["versions"][ver] += 1
        if d["state"] == "failed":
            failures.append({**dict(d), "cohort_spec": c["spec"]})
    for group in (*cohorts, *villages_.values()):
        total = sum(group["counts"].values())
        group["total"] = total
        for state in ("committed", "failed"):
            group[f"{state}_pct"] = 100.0 * group["counts"][state] / total if total else 0.0
    log = (
        conn.execute(
            select(rollout_audit)
            .where(rollout_audit.c.rollout_id == rollout_id)
            .order_by(rollout_audit.c.id.desc())
            .limit(audit_limit)
        )
        .mappings()
        .all()
    )
    return {
        "rollout": dict(r),
        "cohorts": cohorts,
        "villages": [villages_[k] for k in sorted(villages_)],
        "failures": failures,
        "reasons": Counter(f["reason"] or "?" for f in failures).most_common(),
        "audit": [dict(a) for a in log],
        "states": DEVICE_STATES,
    }


def status_text(detail: dict[str, Any]) -> list[str]:
    """The detail as lines of text (``xl-hub rollout status ID``)."""
    r = detail["rollout"]
    lines = [
        f"rollout {r['id']}: {r['version']} {r['status']}"
        + (f" ({r['reason']})" if r["reason"] else "")
        + f"; next cohort at >= {r['min_success']:g}% committed and <= {r['max_failure']:g}% failed"
        + (f"; window {r['window']} county time" if r["window"] else "")
    ]

    def row(label: str, g: dict[str, Any]) -> str:
        counts = " ".join(f"{s} {g['counts'][s]}" for s in DEVICE_STATES if g["counts"][s])
        versions = ", ".join(f"{v}: {n}" for v, n in sorted(g["versions"].items()))
        return (
            f"  {label:<28} {g['total']:>5}  {g['committed_pct']:5.1f}% ok  {g['failed_pct']:5.1f}% failed"
            f"  [{counts}]  versions {versions}"
        )

    lines.append("cohorts:")
    for c in detail["cohorts"]:
        mark = "started" if c["started_ms"] is not None else "waiting"
        lines.append(row(f"{c['position'] + 1}. {c['spec']} ({mark})", c))
    lines.append("villages:")
    for v in detail["villages"]:
        lines.append(row(f"{v['township']} {v['village']}", v))
    if detail["failures"]:
        lines.append("failures:")
        for f in detail["failures"]:
            lines.append(f"  {f['device_id']}  {f['village'] or '?'}  cohort {f['cohort'] + 1}  {f['reason'] or '?'}")
    return lines
