"""The ``retention:`` section of the hub config (issue 21, docs/retention.md).

Leaf module beneath hub/retention, like hub/config_clips.py: the hub's config
validates it without importing the room. Clips keep their own keys
(``clips.keep_days``, ``clips.keep_days_alert``, ``clips.max_bytes``) and their
own job (hub/clips/retention.py); this section covers the other data classes.

The defaults are a starting point for data minimisation (PIPL art. 19: no
longer than the purpose needs), not a legal opinion: the county sets and
confirms its own periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from xlconfig import Bool, Float, Int, problem


@dataclass(frozen=True)
class RetentionConfig:
    enabled: Annotated[
        Bool, Field(description="Prune each data class below at its age; off: nothing is ever deleted by age.")
    ] = True
    events_days: Annotated[
        Float,
        Field(
            gt=0,
            description="Events (one row per phase of a visit) are deleted this many days after their time; never one"
            " an open alert names, one still waiting to be forwarded, or one whose clip is still kept.",
        ),
    ] = 365.0
    snapshots_days: Annotated[
        Float,
        Field(
            gt=0,
            description="Snapshots (pictures of faces: sensitive personal information) are deleted this many days"
            " after they arrived; those of events that raised an alert stay as long as their event (events_days).",
        ),
    ] = 30.0
    health_days: Annotated[
        Float, Field(gt=0, description="Health history buckets are deleted this many days after their bucket.")
    ] = 90.0
    audit_days: Annotated[
        Float,
        Field(
            gt=0,
            description="The operators' audit log (console_audit, rollout_audit): kept longest, it is what shows"
            " who looked at whose pictures.",
        ),
    ] = 1095.0
    batch: Annotated[
        Int,
        Field(
            gt=0, le=10_000, description="Rows deleted per transaction: each one is short, so ingest never waits long."
        ),
    ] = 2000
    pause_s: Annotated[
        Float,
        Field(
            ge=0,
            le=60,
            description="Pause between two batches (at least 4 times the batch's own time), so a backlog drains"
            " without hogging the database.",
        ),
    ] = 0.5
    interval_s: Annotated[Float, Field(gt=0, description="How often pruning runs.")] = 3600.0


def retention_problems(cfg: RetentionConfig, where: str, clips_keep_days_alert: float) -> list[str]:
    """What the fields' own checks cannot see."""
    out = []
    if cfg.snapshots_days > cfg.events_days:
        # A snapshot goes with its event: a longer snapshot period would silently mean events_days.
        out.append(
            problem(
                f"{where}.snapshots_days",
                cfg.snapshots_days,
                f"at most {where}.events_days ({cfg.events_days:g}): a snapshot is deleted with its event",
            )
        )
    if cfg.audit_days < cfg.events_days:
        # The audit says who saw which event; it must outlive what it audits.
        out.append(
            problem(
                f"{where}.audit_days",
                cfg.audit_days,
                f"at least {where}.events_days ({cfg.events_days:g}): the audit must outlive what it records",
            )
        )
    if cfg.events_days < clips_keep_days_alert:
        out.append(
            problem(
                f"{where}.events_days",
                cfg.events_days,
                f"at least clips.keep_days_alert ({clips_keep_days_alert:g}): a kept clip keeps its event",
            )
        )
    return out
