"""progress.json: how the update child tells the running agent where it is.

Keys are the health keys they become (docs/ota.md section 2): ``uv``, ``us``,
``ub``, ``ue``, ``ro``. Written atomically (agent.update.guard.write_atomic),
so the agent reads the old state or the new one, never half of one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.update.guard import write_atomic
from protocol.messages import MAX_UPDATE_ERROR_LEN, UPDATE_STATES


@dataclass(frozen=True, slots=True)
class Progress:
    uv: str  # the release worked on
    us: str  # one of protocol.messages.UPDATE_STATES
    ub: int = 0  # bytes of the release downloaded so far
    ue: str | None = None  # why "fail" or "rb"
    ro: str | None = None  # the rollout

    def __post_init__(self) -> None:
        if self.us not in UPDATE_STATES:
            raise ValueError(f"not an update state: {self.us!r}")


def write_progress(path: Path, progress: Progress) -> None:
    doc = {k: v for k, v in asdict(progress).items() if v is not None}
    if progress.ue is not None:
        doc["ue"] = progress.ue[:MAX_UPDATE_ERROR_LEN]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(doc, separators=(",", ":")).encode())


def read_progress(path: Path) -> Progress | None:
    """The last progress written, or None when there is none or it is unreadable."""
    try:
        doc = json.loads(path.read_bytes())
        return Progress(
            uv=str(doc["uv"]),
            us=str(doc["us"]),
            ub=int(doc.get("ub", 0)),
            ue=None if doc.get("ue") is None else str(doc["ue"])[:MAX_UPDATE_ERROR_LEN],
            ro=None if doc.get("ro") is None else str(doc["ro"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
