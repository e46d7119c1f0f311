"""The health gate: a release on trial is committed only once it has really worked.

Within ``update.commit_within_s`` of starting, the running agent must have
(1) connected to the broker, (2) read frames from the camera, (3) loaded the
model and (4) run the vision pipeline on frames. Each is latched when first
seen: a link that drops later, or a camera that is reopened, does not undo it.
When all four have happened the release is committed; when the time is up
first, the agent switches back to the previous good release and stops, and
systemd starts the old release (the runtime exits with ``ROLLBACK_EXIT``).

The gate is polled from the runtime's main loop (once a second) and reads the
parts through small callables, so it holds no thread and no reference cycles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.update import switch
from agent.update.layout import Layout
from agent.update.state import running_trial

log = logging.getLogger(__name__)

ROLLBACK_EXIT = 75  # EX_TEMPFAIL: Restart=always brings up the release the link now names


@dataclass
class Probes:
    """What the gate watches; each returns the current value, the gate latches it."""

    connected: Callable[[], bool]
    frames: Callable[[], int]  # frames the camera delivered
    model_loaded: Callable[[], bool]
    processed: Callable[[], int]  # frames the pipeline processed
    model_error: Callable[[], str | None] = lambda: None


CHECKS = ("broker connection", "camera frames", "model loaded", "pipeline run")


@dataclass
class HealthGate:
    layout: Layout
    version: str
    within_s: float
    probes: Probes
    guard_source: Path | None = None
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    seen: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(CHECKS, False))
    outcome: str | None = None  # "commit" | "rollback" once decided
    last_error: str | None = None

    def __post_init__(self) -> None:
        self.started = self.started or self.clock()

    def _look(self) -> None:
        p, seen = self.probes, self.seen
        seen["broker connection"] = seen["broker connection"] or bool(p.connected())
        seen["camera frames"] = seen["camera frames"] or p.frames() > 0
        seen["model loaded"] = seen["model loaded"] or bool(p.model_loaded())
        seen["pipeline run"] = seen["pipeline run"] or p.processed() > 0

    def missing(self) -> list[str]:
        return [name for name, ok in self.seen.items() if not ok]

    def poll(self, safe: Callable[[], str | None] = lambda: None) -> str | None:
        """``commit``, ``rollback`` (the caller must stop the agent) or None (still watching).
        ``safe`` says why a restart must wait (an alert, a held button), or None."""
        if self.outcome is not None:
            return None
        self._look()
        missing = self.missing()
        if not missing:
            if not self._act(lambda: switch.commit(self.layout, self.version, self.guard_source)):
                return None
            log.info("release %s committed: %s", self.version, ", ".join(CHECKS))
            self.outcome = "commit"
            return self.outcome
        if self.clock() - self.started < self.within_s:
            return None
        blocker = safe()
        if blocker is not None:  # not now; the guard's deadline still holds if this never clears
            log.warning("release %s failed its health gate; rollback waits: %s", self.version, blocker)
            return None
        reason = self.reason(missing)
        if not self._act(lambda: switch.rollback(self.layout, reason)):
            return None
        log.error("release %s rolled back: %s", self.version, reason)
        self.outcome = "rollback"
        return self.outcome

    def _act(self, step: Callable[[], object]) -> bool:
        # A full card or a state file someone else holds must not kill the agent: it tries again
        # at the next poll, and the guard's deadline still holds if it never succeeds.
        try:
            step()
        except (OSError, switch.SwitchError) as exc:
            if str(exc) != self.last_error:
                log.error("update gate: %s", exc)
            self.last_error = str(exc)
            return False
        return True

    def reason(self, missing: list[str]) -> str:
        text = f"health gate: no {' and no '.join(missing)} within {self.within_s:g} s"
        error = self.probes.model_error() if "model loaded" in missing else None
        return f"{text} ({error})"[:160] if error else text[:160]


def gate_for(layout: Layout, version: str, within_s: float, probes: Probes) -> HealthGate | None:
    """A gate when ``version`` is the release on trial, else None (the usual case)."""
    try:
        trial = running_trial(layout, version)
    except OSError as exc:  # an unreadable state dir must not stop the agent
        log.warning("update state: %s", exc)
        return None
    return HealthGate(layout, version, within_s, probes) if trial is not None else None


def runtime_probes(agent: Any) -> Probes:
    """The probes of an ``agent.runtime.Agent``. With detection switched off in the config
    there is no model to load, and that check counts as passed."""

    def processed() -> int:
        stats = getattr(agent.capture.pipeline, "stats", None)
        return int(getattr(stats, "frames", 0))

    detect = agent.cfg.vision.detect.enabled
    return Probes(
        connected=lambda: bool(agent.link.connected),
        frames=lambda: int(agent.capture.frames),
        model_loaded=lambda: agent.detector is not None or not detect,
        processed=processed,
        model_error=lambda: agent.detector_error,
    )


def safe_to_restart(agent: Any) -> bool:
    """Whether the agent may stop now for a switch of release (``restart_blocker`` says why not)."""
    return restart_blocker(agent) is None


def restart_blocker(agent: Any) -> str | None:
    """None when the agent may stop for a switch now, else why not. Not during a 十户联防
    alert that is sounding, nor while the household's button is down (a press may be
    becoming a panic). The outbox needs no wait: it is SQLite, every event in it is
    committed, and the runtime's clean stop closes it; stopping sends what it can first."""
    desk = getattr(agent, "desk", None)
    if desk is not None and desk.sounding:
        return "a 十户联防 alert is sounding"
    button = getattr(agent.panel, "button", None)
    if button is not None and button.is_pressed:
        return "the panic button is pressed"
    error = agent.outbox.error
    if error:  # events may be held in memory only (agent.outbox): a restart would lose them
        return f"the outbox is failing ({error[:60]})"
    return None
