"""The ``escalation:`` section of the hub config (issue 21, docs/escalation.md).

A leaf module beneath hub/escalation, like hub/config_clips.py. The chain is
four steps: 1 the group's household buzzers (the alert itself), 2 the
village's 治安户长 and grid worker, 3 the township duty officer, 4 the county
综治中心 duty desk. ``panic_s`` / ``person_s`` are the seconds without an
acknowledgement before steps 2, 3 and 4, each counted from the step before;
``groups`` changes them (or drops steps) for one group.

::

    escalation:
      enabled: true
      panic_s: [60, 120, 180]
      person_s: [180, 300, 600]
      groups:
        g-heping: {panic_s: [30, 60, 120], steps: [1, 2, 4]}
      webhooks:                       # the county SMS/voice gateway, one signed webhook per role
        security_head: {url: https://sms.minqin.example/xl, secret_file: /etc/xueliang/esc-sms.secret}
        county_desk: {url: https://voice.minqin.example/xl, secret_file: /etc/xueliang/esc-voice.secret}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from protocol.errors import ProtocolError
from protocol.ids import parse_group_id
from xlconfig import Bool, Float, Int, NonEmptyPath, Str, problem

Role = Literal["security_head", "grid_worker", "township_duty", "county_desk"]
STEPS = (1, 2, 3, 4)
# Which roles each step after the buzzers notifies.
STEP_ROLES: dict[int, tuple[str, ...]] = {
    2: ("security_head", "grid_worker"),
    3: ("township_duty",),
    4: ("county_desk",),
}


@dataclass(frozen=True)
class RoleWebhook:
    url: Annotated[Str, Field(pattern=r"^https?://", description="Where this role's notices are POSTed, signed.")]
    secret_file: Annotated[
        NonEmptyPath | None, Field(description="A file holding the HMAC secret (16 bytes or more).")
    ] = None
    secret: Annotated[Str | None, Field(description="The secret inline (tests; prefer secret_file).")] = None
    timeout_s: Annotated[Float, Field(gt=0)] = 10.0
    verify_tls: Annotated[Bool, Field(description="Check the gateway's certificate.")] = True


@dataclass(frozen=True)
class GroupChain:
    panic_s: Annotated[tuple[Float, ...] | None, Field(description="This group's panic timings.")] = None
    person_s: Annotated[tuple[Float, ...] | None, Field(description="This group's person timings.")] = None
    steps: Annotated[tuple[Int, ...], Field(description="The steps this group uses; 1 (the buzzers) always.")] = STEPS


@dataclass(frozen=True)
class EscalationConfig:
    enabled: Annotated[Bool, Field(description="Escalate unacknowledged alerts beyond the household buzzers.")] = False
    check_interval_s: Annotated[
        Float, Field(gt=0, le=60, description="How often due steps are looked for: the lateness of a step at worst.")
    ] = 2.0
    panic_s: Annotated[
        tuple[Float, ...],
        Field(
            description="Seconds without an acknowledgement before steps 2, 3, 4 of a panic, each after the one before."
        ),
    ] = (60.0, 120.0, 180.0)
    person_s: Annotated[
        tuple[Float, ...],
        Field(description="The same for an armed-hours person alert: slower, a panic is a person in need."),
    ] = (180.0, 300.0, 600.0)
    groups: Annotated[dict[Str, GroupChain], Field(description="Per group: its own timings or steps.")] = field(
        default_factory=dict
    )
    webhooks: Annotated[
        dict[Role, RoleWebhook], Field(description="A signed webhook per role (the SMS/voice gateway); unset: none.")
    ] = field(default_factory=dict)
    mqtt: Annotated[
        Bool, Field(description="Send an `alert` command to a 治安户长's own device, when the contact names one.")
    ] = True
    ack_max_skew_s: Annotated[
        Float, Field(gt=0, description="A signed acknowledgement callback older than this is refused (replay).")
    ] = 300.0

    def chain(self, group_id: str) -> GroupChain:
        return self.groups.get(group_id) or GroupChain()

    def delays_s(self, group_id: str, kind: str) -> tuple[float, ...]:
        g = self.chain(group_id)
        own = g.panic_s if kind == "panic" else g.person_s
        return tuple(own if own is not None else (self.panic_s if kind == "panic" else self.person_s))

    def secret(self, role: str) -> bytes:
        hook = self.webhooks[role]  # type: ignore[index]
        if hook.secret_file is not None:
            return Path(hook.secret_file).read_text(encoding="utf-8").strip().encode()
        return (hook.secret or "").encode()


def _timings(values: tuple[float, ...] | None, key: str) -> list[str]:
    if values is None:
        return []
    if len(values) != 3 or any(v <= 0 for v in values):
        return [problem(key, list(values), "three positive numbers of seconds: before steps 2, 3 and 4")]
    return []


def escalation_problems(cfg: EscalationConfig, where: str) -> list[str]:
    out = _timings(cfg.panic_s, f"{where}.panic_s") + _timings(cfg.person_s, f"{where}.person_s")
    if not out and any(p > q for p, q in zip(cfg.panic_s, cfg.person_s, strict=True)):
        out.append(
            problem(
                f"{where}.panic_s",
                list(cfg.panic_s),
                f"each at most person_s ({list(cfg.person_s)}): a panic escalates faster",
            )
        )
    for gid, g in cfg.groups.items():
        key = f"{where}.groups.{gid}"
        try:
            parse_group_id(gid)
        except ProtocolError:
            out.append(problem(key, gid, "a group id of [A-Za-z0-9_-], 1-32 chars"))
        out += _timings(g.panic_s, f"{key}.panic_s") + _timings(g.person_s, f"{key}.person_s")
        if 1 not in g.steps or any(s not in STEPS for s in g.steps) or len(set(g.steps)) != len(g.steps):
            out.append(problem(f"{key}.steps", list(g.steps), "distinct steps of 1, 2, 3, 4, with 1 (the buzzers)"))
    for role, hook in cfg.webhooks.items():
        key = f"{where}.webhooks.{role}"
        if hook.secret_file is None and not hook.secret:
            out.append(problem(f"{key}.secret_file", None, "a file holding the HMAC secret (or secret inline)"))
        elif hook.secret_file is not None and not Path(hook.secret_file).is_file():
            out.append(problem(f"{key}.secret_file", str(hook.secret_file), "a readable file"))
        elif hook.secret is not None and len(hook.secret.encode()) < 16:
            out.append(problem(f"{key}.secret", "(hidden)", "at least 16 bytes"))
    return out
