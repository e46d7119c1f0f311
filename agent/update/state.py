"""state.json (docs/ota.md section 3): the agent's way in.

The format and the atomic write live in ``agent.update.guard`` (the guard runs
as a lone stdlib file, and it and the agent must agree byte for byte); this
module names them for the rest of the agent and adds what only the agent asks.
"""

from __future__ import annotations

from agent.update.guard import State, Trial, locked, read_state, state_from_doc, write_atomic, write_state
from agent.update.layout import Layout

__all__ = ["State", "Trial", "load", "locked", "read_state", "running_trial", "state_from_doc", "write_atomic",
           "write_state"]  # fmt: skip


def load(layout: Layout) -> State:
    """The state, rebuilt from the ``current`` link if state.json is missing or damaged."""
    return read_state(layout)[0]


def running_trial(layout: Layout, version: str) -> Trial | None:
    """The trial of ``version`` if that is the release on trial now; None on a device (or a
    developer's machine) with no updater state at all."""
    if not layout.state_file.exists():
        return None
    trial = load(layout).trial
    return trial if trial is not None and trial.version == version else None
