"""The rollout engine: one ``tick`` reads the fleet, moves rollouts on, sends commands.

It learns nothing from messages directly. Ingest already stores each device's
presence (``devices.online``, ``state_changed_ms``), its running version
(``devices.agent_version``, from state and health ``ver``) and its latest
heartbeat (``health_latest.data``, wire keys, with ``uv``/``us``/``ue``/``ro``);
the engine reads those. So a device that was offline when its cohort started
gets its command on the first tick after it is seen online, and a hub restart
loses nothing: every decision is recomputed from the tables.

Every write is conditional on what was read (``WHERE state = …``), so two hub
workers ticking at once neither send a device two commands nor log a step twice.

``clock`` returns epoch ms; tests pass a fake one and call ``tick`` themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, and_, select, update

from hub.db.schema import devices
from hub.db.schema_ops import health_latest
from hub.rollout.store import HUB, audit
from hub.rollout.tables import OPEN_STATES, TERMINAL, rollout_cohorts, rollout_devices, rollouts
from hub.rollout.window import in_window

log = logging.getLogger("xl.hub.rollout")

# At most this many commands per tick (10 s by default: 1,200 a minute). The
# devices download at once what they are told at once, and the hub's uplink is
# shared with the live event traffic of the whole county.
SEND_BATCH = 200
WORKING = frozenset({"wait", "dl", "inst", "trial"})
FAILED = frozenset({"fail", "rb"})


class Sender(Protocol):
    def send(self, device_id: str, op: str, args: dict[str, Any] | None) -> str:
        """Record and publish a command; returns its id (raises on a refusal)."""
        ...


@dataclass(frozen=True, slots=True)
class Seen:
    """What ingest stored about a device."""

    status: str | None  # registry status; None: gone from the registry
    online: bool
    changed_ms: int | None  # last online/offline transition
    ver: str | None
    us: str | None = None
    uv: str | None = None
    ue: str | None = None
    ro: str | None = None


def judge(state: str, seen: Seen, version: str, rollout_id: int) -> tuple[str, str | None]:
    """A device's next state in a rollout, and the reason when it failed."""
    if state == "skipped":
        return state, None
    if seen.status != "active":
        return "skipped", f"device is {seen.status or 'gone from the registry'}"
    if seen.ver == version:
        # Running the release. Not yet a commit while the updater still works: a trial's health gate
        # may roll it back, and the restarted agent's online state (new ver) reaches the hub before
        # its first health, so until then the latest health is the old release's dl/inst.
        return ("working", None) if seen.us in WORKING else ("committed", None)
    if state not in ("sent", "working", "failed"):
        return state, None  # nothing asked of it yet; an old update's state is not ours
    mine = seen.ro == str(rollout_id) if seen.ro else seen.uv == version
    if mine and seen.us in FAILED:
        return "failed", (seen.ue or f"update state {seen.us}")[:160]
    if mine and seen.us in WORKING:
        return "working", None
    if state == "working" and seen.us in (None, "idle"):
        return "sent", None  # the device lost its progress (restarted): it will be sent the command again
    return state, None


@dataclass
class Tally:
    size: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def pct(self, state: str) -> float:
        return 100.0 * self.counts.get(state, 0) / self.size if self.size else 0.0


@dataclass
class TickReport:
    sent: list[str] = field(default_factory=list)
    started: list[tuple[int, int]] = field(default_factory=list)  # (rollout, cohort position)
    halted: list[int] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    changed: int = 0


class RolloutEngine:
    def __init__(
        self, engine: Engine, sender: Sender, *, timezone: str, resend_after_s: float, clock: Callable[[], int]
    ) -> None:
        self.engine = engine
        self.sender = sender
        self.timezone = timezone
        self.resend_after_ms = int(resend_after_s * 1000)
        self.clock = clock

    def tick(self) -> TickReport:
        now = self.clock()
        report = TickReport()
        with self.engine.connect() as conn:
            open_ = conn.execute(select(rollouts).where(rollouts.c.status.in_(OPEN_STATES))).mappings().all()
        for r in open_:
            try:
                self._one(dict(r), now, report)
            except Exception:
                log.exception("rollout %s: tick failed; retried at the next", r["id"])
        return report

    def _one(self, r: dict[str, Any], now: int, report: TickReport) -> None:
        rid, version = int(r["id"]), str(r["version"])
        with self.engine.begin() as conn:
            rows = self._read(conn, rid)
            for d in rows:
                new, reason = judge(d["state"], d["seen"], version, rid)
                if new != d["state"] and self._move(conn, rid, d, new, reason, now):
                    report.changed += 1
                    d["state"] = new
            if r["status"] == "halted":
                return  # kept up to date for the status view, nothing more
            cohorts = (
                conn.execute(
                    select(rollout_cohorts)
                    .where(rollout_cohorts.c.rollout_id == rid)
                    .order_by(rollout_cohorts.c.position)
                )
                .mappings()
                .all()
            )
            tallies = [Tally(int(c["size"])) for c in cohorts]
            for d in rows:
                t = tallies[d["cohort"]]
                t.counts[d["state"]] = t.counts.get(d["state"], 0) + 1
            started = [c["started_ms"] is not None for c in cohorts]
            if self._halt_if_failing(conn, r, cohorts, tallies, started, now):
                report.halted.append(rid)
                return
            if r["status"] != "active":
                return
            if all(d["state"] in TERMINAL for d in rows) and all(started):
                if conn.execute(
                    update(rollouts)
                    .where(rollouts.c.id == rid, rollouts.c.status == "active")
                    .values(status="done", ended_ms=now)
                ).rowcount:
                    audit(conn, rid, HUB, "done", now, _summary(tallies))
                    report.done.append(rid)
                return
            self._advance(conn, r, cohorts, tallies, started, rows, now, report)
        if in_window(r["window"], now, self.timezone):
            self._send(r, rows, started, now, report)

    def _read(self, conn: Connection, rid: int) -> list[dict[str, Any]]:
        q = (
            select(
                rollout_devices.c.device_id,
                rollout_devices.c.cohort,
                rollout_devices.c.state,
                rollout_devices.c.sent_ms,
                devices.c.status,
                devices.c.online,
                devices.c.state_changed_ms,
                devices.c.agent_version,
                health_latest.c.data,
            )
            .select_from(
                rollout_devices.outerjoin(devices, devices.c.id == rollout_devices.c.device_id).outerjoin(
                    health_latest, health_latest.c.device_id == rollout_devices.c.device_id
                )
            )
            .where(rollout_devices.c.rollout_id == rid)
        )
        out = []
        for row in conn.execute(q):
            data = row.data if isinstance(row.data, dict) else {}
            seen = Seen(
                status=row.status,
                online=bool(row.online),
                changed_ms=row.state_changed_ms,
                ver=row.agent_version or data.get("ver"),
                us=data.get("us"),
                uv=data.get("uv"),
                ue=data.get("ue"),
                ro=data.get("ro"),
            )
            out.append(
                {
                    "device_id": row.device_id,
                    "cohort": row.cohort,
                    "state": row.state,
                    "sent_ms": row.sent_ms,
                    "seen": seen,
                }
            )
        return out

    def _move(self, conn: Connection, rid: int, d: dict[str, Any], new: str, reason: str | None, now: int) -> bool:
        done = conn.execute(
            update(rollout_devices)
            .where(
                rollout_devices.c.rollout_id == rid,
                rollout_devices.c.device_id == d["device_id"],
                rollout_devices.c.state == d["state"],
            )
            .values(state=new, changed_ms=now, reason=reason)
        ).rowcount
        if done:
            seen: Seen = d["seen"]
            detail = reason if new == "failed" else f"ver {seen.ver or '?'}, us {seen.us or '-'}"
            audit(conn, rid, HUB, new, now, detail, cohort=d["cohort"], device_id=d["device_id"])
        return bool(done)

    def _halt_if_failing(
        self, conn: Connection, r: dict[str, Any], cohorts: Any, tallies: list[Tally], started: list[bool], now: int
    ) -> bool:
        for pos, (c, t) in enumerate(zip(cohorts, tallies, strict=True)):
            if not started[pos] or t.pct("failed") <= r["max_failure"]:
                continue
            reason = (
                f"cohort {pos + 1} ({c['spec']}): {t.counts['failed']} of {t.size} failed "
                f"({t.pct('failed'):.1f}% > {r['max_failure']:g}%)"
            )
            moved = conn.execute(
                update(rollouts)
                .where(rollouts.c.id == r["id"], rollouts.c.status.in_(("active", "paused")))
                .values(status="halted", reason=reason[:200])
            ).rowcount
            if moved:
                audit(conn, int(r["id"]), HUB, "halt", now, reason, cohort=pos)
                log.warning("rollout %s halted: %s", r["id"], reason)
            return True
        return False

    def _advance(
        self,
        conn: Connection,
        r: dict[str, Any],
        cohorts: Any,
        tallies: list[Tally],
        started: list[bool],
        rows: list[dict[str, Any]],
        now: int,
        report: TickReport,
    ) -> None:
        rid = int(r["id"])
        for pos in range(len(cohorts)):
            if started[pos]:
                continue
            if pos > 0:
                prev = tallies[pos - 1]
                if prev.pct("committed") < r["min_success"] or prev.pct("failed") > r["max_failure"]:
                    return
            if not conn.execute(
                update(rollout_cohorts)
                .where(
                    rollout_cohorts.c.rollout_id == rid,
                    rollout_cohorts.c.position == pos,
                    rollout_cohorts.c.started_ms.is_(None),
                )
                .values(started_ms=now)
            ).rowcount:
                return  # another worker started it
            conn.execute(
                update(rollout_devices)
                .where(and_(rollout_devices.c.rollout_id == rid, rollout_devices.c.cohort == pos))
                .where(rollout_devices.c.state == "waiting")
                .values(state="queued", changed_ms=now)
            )
            for d in rows:
                if d["cohort"] == pos and d["state"] == "waiting":
                    d["state"] = "queued"
            why = "first cohort" if pos == 0 else f"cohort {pos}: {_pct(tallies[pos - 1])}"
            audit(
                conn,
                rid,
                HUB,
                "cohort_start",
                now,
                f"{cohorts[pos]['spec']}, {tallies[pos].size} devices ({why})",
                cohort=pos,
            )
            started[pos] = True
            report.started.append((rid, pos))

    def _due(self, d: dict[str, Any], now: int) -> bool:
        seen: Seen = d["seen"]
        if not seen.online or seen.status != "active":
            return False
        if d["state"] == "queued":
            return True
        if d["state"] != "sent" or d["sent_ms"] is None:
            return False
        sent_ms = int(d["sent_ms"])
        came_back = seen.changed_ms is not None and seen.changed_ms > sent_ms
        return came_back or now - sent_ms >= self.resend_after_ms

    def _send(
        self, r: dict[str, Any], rows: list[dict[str, Any]], started: list[bool], now: int, report: TickReport
    ) -> None:
        rid = int(r["id"])
        args: dict[str, Any] = {"ver": r["version"], "ro": str(rid)}
        if r["downgrade"]:
            args["dg"] = 1
        due = [d for d in rows if started[d["cohort"]] and self._due(d, now)][:SEND_BATCH]
        for d in due:
            dev = d["device_id"]
            with self.engine.begin() as conn:
                claim = (
                    update(rollout_devices)
                    .where(rollout_devices.c.rollout_id == rid, rollout_devices.c.device_id == dev)
                    .where(rollout_devices.c.state == d["state"])
                    .where(
                        rollout_devices.c.sent_ms.is_(None)
                        if d["sent_ms"] is None
                        else rollout_devices.c.sent_ms == d["sent_ms"]
                    )
                    .values(state="sent", sent_ms=now, changed_ms=now, sends=rollout_devices.c.sends + 1)
                )
                if not conn.execute(claim).rowcount:
                    continue  # another worker sent it, or the device moved on
            try:
                command_id = self.sender.send(dev, "update", args)
            except Exception as exc:  # refused (revoked meanwhile) or not queued: try again next tick
                with self.engine.begin() as conn:
                    conn.execute(
                        update(rollout_devices)
                        .where(rollout_devices.c.rollout_id == rid, rollout_devices.c.device_id == dev)
                        .values(state=d["state"], sent_ms=d["sent_ms"])
                    )
                    audit(conn, rid, HUB, "send_failed", now, str(exc), cohort=d["cohort"], device_id=dev)
                continue
            with self.engine.begin() as conn:
                again = "" if d["state"] == "queued" else " (again: no progress reported)"
                audit(
                    conn,
                    rid,
                    HUB,
                    "send",
                    now,
                    f"update {r['version']} id={command_id}{again}",
                    cohort=d["cohort"],
                    device_id=dev,
                )
            report.sent.append(dev)


def _pct(t: Tally) -> str:
    return f"{t.pct('committed'):.0f}% committed, {t.pct('failed'):.0f}% failed"


def _summary(tallies: list[Tally]) -> str:
    return "; ".join(f"cohort {i + 1}: {_pct(t)}" for i, t in enumerate(tallies))
