"""progress.json: how the update child tells the running agent where it is.

Keys are the health keys they become (docs/ota.md section 2): ``uv``, ``us``,
``ub``, ``ue``, ``ro``. Written atomically (agent.update.guard.write_atomic),
so the agent reads the old state or the new one, never half of one.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.update.guard import write_atomic
from protocol.limits import MAX_ID_LEN
from protocol.messages import MAX_UPDATE_ERROR_LEN, MAX_VERSION_LEN, UPDATE_STATES, VERSION_TEXT

_ROLLOUT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")


@dataclass(frozen=True, slots=True)
class Progress:
    uv: str  # the release worked on
    us: str  # one of protocol.messages.UPDATE_STATES
    ub: int = 0  # bytes of the release downloaded so far
    ue: str | None = None  # why "fail" or "rb"
    ro: str | None = None  # the rollout

    def __post_init__(self) -> None:
        # Checked as the hub's decoder will: one bad key would cost the device its whole heartbeat.
        if self.us not in UPDATE_STATES:
            raise ValueError(f"not an update state: {self.us!r}")
        if len(self.uv) > MAX_VERSION_LEN or not VERSION_TEXT.fullmatch(self.uv):
            raise ValueError(f"not a version: {self.uv[:40]!r}")
        if self.ro is not None and (len(self.ro) > MAX_ID_LEN or not _ROLLOUT.fullmatch(self.ro)):
            raise ValueError(f"not a rollout id: {self.ro[:40]!r}")
        if self.ub < 0:
            raise ValueError("negative byte count")


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
