"""Where the updater's files are (docs/ota.md section 3), under a configurable root.

Production: releases under ``/opt/xueliang`` and state under
``/var/lib/xueliang/update`` (config ``update.root`` and ``update.state_dir``);
tests point both at temporary directories. The paths the guard needs are
defined in ``agent.update.guard.Paths``, because the guard runs as a lone file;
this adds the ones only the agent's updater uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.update.guard import Paths

if TYPE_CHECKING:
    from agent.config import UpdateConfig

MODEL_NAME = "person_ssdlite_uint8.tflite"


@dataclass(frozen=True)
class Layout(Paths):
    @classmethod
    def from_config(cls, cfg: UpdateConfig) -> Layout:
        return cls(root=cfg.root, state_dir=cfg.state_dir)

    def partial(self, version: str) -> Path:
        """A release being built: a dot name, so nothing takes it for an installed release."""
        self.release(version)  # the same name check
        return self.releases / f".{version}.partial"

    def trash(self, version: str) -> Path:
        """A release being deleted: renamed here first, so a half-deleted one never looks installed."""
        self.release(version)
        return self.releases / f".{version}.trash"

    @property
    def tuf_dir(self) -> Path:
        return self.state_dir / "tuf"

    @property
    def download_dir(self) -> Path:
        return self.state_dir / "dl"

    @property
    def progress_file(self) -> Path:
        return self.state_dir / "progress.json"
