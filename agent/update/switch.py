"""The switch between releases and the state it moves through (docs/ota.md section 3).

Every step writes state.json before it touches the ``current`` link, so the
link is always a function of the state; whatever a kill interrupts, the guard
at the next start finds a state that says what the link should be and
finishes the step (agent.update.guard.on_start). The three steps:

- ``start_trial``: the new release becomes ``current`` on trial, remembering the
  good release it replaces; systemd's restart then runs it.
- ``commit``: the health gate passed. The release heads the good list (the last
  two are kept, older release folders deleted), and its own guard.py becomes
  the one systemd runs.
- ``rollback``: back to the previous good release, the failed one recorded with
  its reason (the guard does the same by itself after a crash loop).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from agent.update import guard
from agent.update.guard import KEEP_GOOD, State, Trial, crashpoint, locked, switch_link, write_atomic, write_state
from agent.update.layout import Layout
from agent.update.state import load

# The guard counts starts; an agent on trial also gets restarted by its own gate's deadline, so
# a trial that outlives this many windows has been restarted by something else (a hung start
# that systemd killed) and is rolled back at the next start.
DEADLINE_WINDOWS = 2


class SwitchError(Exception):
    pass


def _now_ms() -> int:
    return int(time.time() * 1000)


def start_trial(layout: Layout, version: str, commit_within_s: int, max_attempts: int) -> State:
    """Make ``version`` current, on trial. The caller then restarts the agent (exits)."""
    with locked(layout):
        state = load(layout)
        if not layout.installed(version):
            raise SwitchError(f"release {version} is not installed")
        if state.trial is not None:
            raise SwitchError(f"release {state.trial.version} is on trial already")
        if state.current == version:
            raise SwitchError(f"release {version} is running already")
        now = _now_ms()
        state.trial = Trial(
            version=version,
            previous=state.current,
            started_ms=now,
            deadline_ms=now + DEADLINE_WINDOWS * commit_within_s * 1000,
            max_attempts=max_attempts,
        )
        state.current = version
        state.failed.pop(version, None)  # a release retried after a fix starts with a clean slate
        state.us, state.ue, state.uv = "trial", None, version
        write_state(layout, state)
        crashpoint("trial: state written")
        switch_link(layout, version)
        return state


def commit(layout: Layout, version: str, guard_source: Path | None = None) -> State:
    """The release on trial is good. Idempotent: a repeated commit finishes what a kill interrupted."""
    with locked(layout):
        state = load(layout)
        committed = state.trial is None and state.good[:1] == [version]
        if not committed and (state.trial is None or state.trial.version != version):
            on_trial = state.trial.version if state.trial else "none"
            raise SwitchError(f"cannot commit {version}: the release on trial is {on_trial}")
        if not committed:
            state.good = [version, *[v for v in state.good if v != version]][:KEEP_GOOD]
            state.trial = None
            state.current = version
            state.us, state.ue, state.uv = "ok", None, version
            write_state(layout, state)
            crashpoint("commit: state written")
        # Done again when the commit is repeated: a kill after the state write must not leave
        # the old guard or the old releases behind for good.
        # The new release's guard runs from the next start: it must understand the state it wrote.
        install_guard(layout, guard_source or Path(guard.__file__))
        prune(layout, state)
        return state


def rollback(layout: Layout, reason: str) -> State:
    """Back to the previous good release (from inside the agent: its health gate failed)."""
    with locked(layout):
        state = load(layout)
        if state.trial is None:
            raise SwitchError("no release on trial to roll back")
        return guard.rollback(layout, state, reason)


def install_guard(layout: Layout, source: Path) -> None:
    write_atomic(layout.guard, source.read_bytes(), mode=0o644)


def prune(layout: Layout, state: State) -> list[str]:
    """Delete the release folders that are neither good nor current, and builds and deletions
    a kill left behind. A release folder is renamed to a dot name first, so one half deleted
    never looks installed. Returns the versions deleted."""
    keep = {*state.good, state.current}
    removed = []
    for version in layout.installed_releases():
        if version in keep:
            continue
        trash = layout.trash(version)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(trash)
        os.rename(layout.release(version), trash)
        removed.append(version)
    for leftover in layout.releases.glob(".*.trash"):
        shutil.rmtree(leftover, ignore_errors=True)
    return removed
