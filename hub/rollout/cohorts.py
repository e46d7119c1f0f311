"""Cohort specs (``--cohort``) and the devices each one means.

::

    installers:ID,ID,…     these devices (any label before the colon names a list:
    devices:ID,ID,…        installers, pilot, …; the ids must be registered and active)
    village:和平村          a village by name, by id, or township code/name (01/和平村) when names repeat
    township:泉山镇         a township by name or 2-digit code
    group:g0101-03         a 联防组
    percent:10             10 % of the active fleet (rounded up), chosen from devices no earlier cohort took
    all                    every active device no earlier cohort took

Resolved once, when the rollout is made (``resolve``): a device belongs to the
first cohort that names it; a cohort left with no device is an error, since
its thresholds could never be judged.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from sqlalchemy import Connection, select

from hub.db.schema import devices, groups, households, townships, villages
from protocol.ids import is_device_id

_LABEL = re.compile(r"[a-z][a-z0-9_-]{0,23}")
PLACE_KINDS = ("village", "township", "group")


class CohortError(ValueError):
    pass


@dataclass(frozen=True)
class Cohort:
    spec: str  # as written
    kind: str  # list | village | township | group | percent | all
    value: str = ""
    ids: tuple[str, ...] = ()
    percent: float = 0.0


def parse_cohort(spec: str) -> Cohort:
    text = spec.strip()
    if text == "all":
        return Cohort(text, "all")
    label, sep, value = text.partition(":")
    value = value.strip()
    if not sep or not value:
        raise CohortError(
            f"cohort {spec!r}: expected all, percent:N, village:NAME, township:NAME, group:ID or LABEL:ID,ID,…"
        )
    if label == "percent":
        try:
            pct = float(value.rstrip("%"))
        except ValueError:
            raise CohortError(f"cohort {spec!r}: {value!r} is not a number of percent") from None
        if not 0 < pct <= 100:
            raise CohortError(f"cohort {spec!r}: percent must be more than 0 and at most 100")
        return Cohort(text, "percent", percent=pct)
    if label in PLACE_KINDS:
        return Cohort(text, label, value=value)
    if not _LABEL.fullmatch(label):
        raise CohortError(f"cohort {spec!r}: {label!r} is not a cohort kind or a list label (a-z, 0-9, _ -)")
    ids = tuple(i.strip() for i in value.split(",") if i.strip())
    bad = [i for i in ids if not is_device_id(i)]
    if bad:
        raise CohortError(f"cohort {spec!r}: {bad[0]!r} is not a 20-digit device id")
    if len(set(ids)) != len(ids):
        raise CohortError(f"cohort {spec!r}: a device is listed twice")
    return Cohort(text, "list", value=label, ids=ids)


def _village_ids(conn: Connection, value: str) -> list[int]:
    if value.isdigit():  # village names are words; digits are the registry id
        rows = conn.execute(select(villages.c.id).where(villages.c.id == int(value))).all()
        if not rows:
            raise CohortError(f"village:{value}: no village has id {value}")
        return [int(rows[0].id)]
    code, slash, name = value.partition("/")
    q = select(villages.c.id, villages.c.township_code, townships.c.name.label("township")).join(
        townships, townships.c.code == villages.c.township_code
    )
    q = (
        q.where(villages.c.township_code == code, villages.c.name == name)
        if slash
        else q.where(villages.c.name == value)
    )
    rows = conn.execute(q).all()
    if not rows:
        raise CohortError(f"village:{value}: no such village in the registry")
    if len(rows) > 1:
        where = ", ".join(f"{r.township_code}/{value} ({r.township})" for r in rows)
        raise CohortError(f"village:{value}: the name is in {len(rows)} townships; write one of {where}")
    return [int(rows[0].id)]


def _place_devices(conn: Connection, c: Cohort, active: list[str]) -> list[str]:
    q = select(devices.c.id).join(households, households.c.id == devices.c.household_id)
    if c.kind == "village":
        q = q.where(households.c.village_id.in_(_village_ids(conn, c.value)))
    elif c.kind == "township":
        code = conn.execute(
            select(townships.c.code).where((townships.c.code == c.value) | (townships.c.name == c.value))
        ).scalar()
        if code is None:
            raise CohortError(f"township:{c.value}: no such township in the registry")
        q = q.join(villages, villages.c.id == households.c.village_id).where(villages.c.township_code == code)
    else:
        if conn.execute(select(groups.c.id).where(groups.c.id == c.value)).first() is None:
            raise CohortError(f"group:{c.value}: no such group in the registry")
        q = q.where(households.c.group_id == c.value)
    wanted = {r.id for r in conn.execute(q)}
    return [d for d in active if d in wanted]


def _spread(rollout_id: int, device_id: str) -> str:
    """A stable order that mixes villages: a percent cohort is not "the first village in the table"."""
    return hashlib.sha256(f"{rollout_id}:{device_id}".encode()).hexdigest()


def resolve(conn: Connection, rollout_id: int, cohorts: list[Cohort]) -> list[list[str]]:
    """Each cohort's devices (active ones, none twice), in the cohorts' order."""
    status = {r.id: r.status for r in conn.execute(select(devices.c.id, devices.c.status))}
    active = sorted(d for d, s in status.items() if s == "active")
    taken: set[str] = set()
    out: list[list[str]] = []
    for n, c in enumerate(cohorts, 1):
        if c.kind == "list":
            for d in c.ids:
                if d not in status:
                    raise CohortError(f"cohort {n} ({c.spec}): device {d} is not registered")
                if status[d] != "active":
                    raise CohortError(f"cohort {n} ({c.spec}): device {d} is {status[d]}")
            members = [d for d in c.ids if d not in taken]
        elif c.kind == "all":
            members = [d for d in active if d not in taken]
        elif c.kind == "percent":
            want = math.ceil(len(active) * c.percent / 100)
            free = sorted((d for d in active if d not in taken), key=lambda d: _spread(rollout_id, d))
            members = free[:want]
        else:
            members = [d for d in _place_devices(conn, c, active) if d not in taken]
        if not members:
            raise CohortError(f"cohort {n} ({c.spec}) has no device (left) for it: earlier cohorts took them all")
        taken.update(members)
        out.append(members)
    return out
