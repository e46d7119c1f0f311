"""Making and steering rollouts: ``create``, ``pause``, ``resume``, ``abort``.

Each is one transaction that also writes its audit row, so the log can never
say something the tables do not (or miss something they do). State changes
are conditional updates (``WHERE status = …``): two operators, or an operator
and the engine halting the rollout, cannot both win.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, update

from hub.db.schema import devices
from hub.rollout.cohorts import CohortError, parse_cohort, resolve
from hub.rollout.tables import OPEN_STATES, rollout_audit, rollout_cohorts, rollout_devices, rollouts
from hub.rollout.window import WindowError, parse_window

# The characters of a PEP 440 version (as protocol.messages checks "ver" and "uv").
_VERSION = re.compile(r"[0-9][A-Za-z0-9.+!_-]{0,31}")
HUB = "hub"  # the actor of what the engine does by itself


class RolloutError(ValueError):
    pass


@dataclass(frozen=True)
class NewRollout:
    version: str
    cohorts: Sequence[str]
    min_success: float = 90.0
    max_failure: float = 5.0
    window: str | None = None
    downgrade: bool = False


def audit(
    conn: Connection,
    rollout_id: int,
    actor: str,
    action: str,
    at_ms: int,
    detail: str | None = None,
    *,
    cohort: int | None = None,
    device_id: str | None = None,
) -> None:
    conn.execute(
        rollout_audit.insert().values(
            at_ms=at_ms,
            rollout_id=rollout_id,
            actor=actor[:32],
            action=action,
            cohort=cohort,
            device_id=device_id,
            detail=None if detail is None else detail[:200],
        )
    )


def _check(new: NewRollout) -> None:
    if not _VERSION.fullmatch(new.version):
        raise RolloutError(f"version {new.version!r}: expected a release version such as 0.3.0")
    if not new.cohorts:
        raise RolloutError("a rollout needs at least one --cohort")
    for name, value in (("min-success", new.min_success), ("max-failure", new.max_failure)):
        if not 0 <= value <= 100:
            raise RolloutError(f"--{name} {value:g}: expected a percentage 0..100")
    if new.window is not None:
        try:
            parse_window(new.window)
        except WindowError as exc:
            raise RolloutError(str(exc)) from None


def create(engine: Engine, new: NewRollout, actor: str, now_ms: int) -> int:
    """Make the rollout and resolve its cohorts; returns its id. It is active at once:
    the engine's next tick starts its first cohort."""
    _check(new)
    try:
        parsed = [parse_cohort(s) for s in new.cohorts]
    except CohortError as exc:
        raise RolloutError(str(exc)) from None
    with engine.begin() as conn:
        busy = conn.execute(
            select(rollouts.c.id, rollouts.c.version, rollouts.c.status).where(rollouts.c.status.in_(OPEN_STATES))
        ).first()
        if busy is not None:
            raise RolloutError(
                f"rollout {busy.id} ({busy.version}) is {busy.status}: one rollout at a time; "
                f"abort it first (xl-hub rollout abort {busy.id})"
            )
        row = conn.execute(
            rollouts.insert().values(
                version=new.version,
                status="active",
                min_success=new.min_success,
                max_failure=new.max_failure,
                window=new.window,
                downgrade=new.downgrade,
                created_ms=now_ms,
                created_by=actor[:32],
            )
        )
        assert row.inserted_primary_key is not None
        rid = int(row.inserted_primary_key[0])
        try:
            members = resolve(conn, rid, parsed)
        except CohortError as exc:
            raise RolloutError(str(exc)) from None  # rolls the insert back
        versions = {r.id: r.agent_version for r in conn.execute(select(devices.c.id, devices.c.agent_version))}
        for pos, (c, ids) in enumerate(zip(parsed, members, strict=True)):
            conn.execute(
                rollout_cohorts.insert().values(rollout_id=rid, position=pos, spec=c.spec[:200], size=len(ids))
            )
            conn.execute(
                rollout_devices.insert(),
                [
                    {
                        "rollout_id": rid,
                        "device_id": d,
                        "cohort": pos,
                        "state": "waiting",
                        "from_version": versions.get(d),
                        "changed_ms": now_ms,
                    }
                    for d in ids
                ],
            )
        sizes = "; ".join(f"{c.spec} {len(ids)}" for c, ids in zip(parsed, members, strict=True))
        detail = f"{new.version}: {sizes}; min success {new.min_success:g}%, max failure {new.max_failure:g}%"
        audit(conn, rid, actor, "create", now_ms, detail + (f", window {new.window}" if new.window else ""))
    return rid


def _transition(
    engine: Engine,
    rollout_id: int,
    actor: str,
    now_ms: int,
    action: str,
    allowed: tuple[str, ...],
    to: str,
    reason: str | None,
) -> None:
    with engine.begin() as conn:
        current = conn.execute(select(rollouts.c.status).where(rollouts.c.id == rollout_id)).scalar()
        if current is None:
            raise RolloutError(f"no rollout {rollout_id}")
        if current not in allowed:
            hint = (
                " (halted by failures: abort it, fix the release, and create a new rollout)"
                if current == "halted"
                else ""
            )
            raise RolloutError(f"rollout {rollout_id} is {current}: cannot {action} it{hint}")
        values: dict[str, object] = {"status": to}
        if to == "aborted":
            values.update(ended_ms=now_ms, reason=(reason or f"aborted by {actor}")[:200])
        done = conn.execute(
            update(rollouts).where(rollouts.c.id == rollout_id, rollouts.c.status == current).values(**values)
        ).rowcount
        if not done:
            raise RolloutError(
                f"rollout {rollout_id} changed meanwhile; look again (xl-hub rollout status {rollout_id})"
            )
        audit(conn, rollout_id, actor, action, now_ms, reason)


def pause(engine: Engine, rollout_id: int, actor: str, now_ms: int, reason: str | None = None) -> None:
    """No more commands and no new cohort until ``resume``; devices already updating carry on."""
    _transition(engine, rollout_id, actor, now_ms, "pause", ("active",), "paused", reason)


def resume(engine: Engine, rollout_id: int, actor: str, now_ms: int, reason: str | None = None) -> None:
    _transition(engine, rollout_id, actor, now_ms, "resume", ("paused",), "active", reason)


def abort(engine: Engine, rollout_id: int, actor: str, now_ms: int, reason: str | None = None) -> None:
    """For good. Devices that already installed the release keep it (they roll back only on failure)."""
    _transition(engine, rollout_id, actor, now_ms, "abort", OPEN_STATES, "aborted", reason)
