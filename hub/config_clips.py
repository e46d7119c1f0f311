"""The ``clips:`` section of the hub config (issue 18, docs/clips.md).

Leaf module beneath hub/clips, like hub/config_updates.py: the hub's config
validates it without importing the room.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from protocol.ids import parse_group_id
from xlconfig import SECTION, Bool, Expect, Float, Int, Str, problem

AutoKind = Literal["panic", "person_armed"]  # protocol.messages.CLIP_AUTO


@dataclass(frozen=True)
class ClipPolicy:
    """What a device uploads without being asked, pushed to it with the ``clips`` command."""

    auto: Annotated[
        tuple[AutoKind, ...],
        Expect("a list of: panic, person_armed"),
        Field(description="Clips uploaded at once: panic, and person events in armed hours; others on request."),
    ] = ("panic", "person_armed")
    daily: Annotated[
        Int, Field(ge=0, le=1 << 40, description="Clip bytes a device may upload a day (its SIM's budget).")
    ] = 20_000_000

    def wire(self) -> dict[str, object]:
        """The ``clips`` command's ``a``: sorted, so an unchanged policy is the same JSON."""
        return {"auto": sorted(set(self.auto)), "daily": self.daily}


def _groups(value: dict[str, ClipPolicy]) -> dict[str, ClipPolicy]:
    for gid in value:
        parse_group_id(gid)
    return value


@dataclass(frozen=True)
class ClipsConfig:
    enabled: Annotated[
        Bool,
        Field(
            description="Receive clip uploads over mTLS on the devices' HTTPS server (updates.host, port, ca, cert,"
            " key); it runs for clips alone when updates.enabled is false."
        ),
    ] = False
    path: Annotated[Str, Field(min_length=1, description="Clips are stored as <path>/<device>/<event id>.mp4.")] = (
        "var/clips"
    )
    keep_days: Annotated[
        Float, Field(gt=0, description="A clip is deleted this many days after it arrived (alert clips: below).")
    ] = 30.0
    keep_days_alert: Annotated[
        Float,
        Field(
            gt=0,
            description="Clips of events that raised an alert, and panics: deleted this many days after they arrived"
            " (at least keep_days).",
        ),
    ] = 90.0
    max_bytes: Annotated[
        Int,
        Field(
            gt=0, description="All clips together; past it the oldest go first, alert clips only when no other is left."
        ),
    ] = 50 * 1000 * 1000 * 1000
    retention_interval_s: Annotated[Float, Field(gt=0, description="How often retention runs.")] = 600.0
    policy_interval_s: Annotated[
        Float, Field(gt=0, description="How often devices that came online or whose policy changed are sent it.")
    ] = 30.0
    policy: Annotated[ClipPolicy, SECTION, Field(description="The county's policy.")] = field(
        default_factory=ClipPolicy
    )
    groups: Annotated[
        dict[Str, ClipPolicy],
        AfterValidator(_groups),
        Expect("group id: {auto: [...], daily: bytes}"),
        Field(description="Per 联防组 overrides of the policy, by group id."),
    ] = field(default_factory=dict)

    def policy_for(self, group_id: str | None) -> ClipPolicy:
        return self.groups.get(group_id or "", self.policy)


def clips_problems(cfg: ClipsConfig, where: str) -> list[str]:
    """What the fields' own checks cannot see. The server the uploads need is
    checked with the ``updates`` section (``updates_problems``)."""
    if cfg.keep_days_alert < cfg.keep_days:
        return [
            problem(
                f"{where}.keep_days_alert",
                cfg.keep_days_alert,
                f"at least {where}.keep_days ({cfg.keep_days:g}): alert clips are kept longest",
            )
        ]
    return []
