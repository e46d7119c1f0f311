"""The ``updates:`` and ``rollout:`` sections of the hub config (issue 17, docs/ota.md).

Leaf module beneath hub/updates and hub/rollout, like hub/config_forward.py:
the hub's config validates these sections without importing the rooms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field

from xlconfig import Bool, Float, Int, Str, problem


@dataclass(frozen=True)
class UpdatesConfig:
    enabled: Annotated[
        Bool,
        Field(
            description="Serve the TUF repository to devices over mTLS. host, port, ca, cert and key below are the"
            " devices' HTTPS server, which also carries clip uploads (clips.enabled) with or without this."
        ),
    ] = False
    host: Annotated[Str, Field(description="Listen address (the devices' side of the hub).")] = "0.0.0.0"
    port: Annotated[
        Int, Field(ge=0, le=65535, description="HTTPS port (updates and clips); 0 picks a free one (tests).")
    ] = 8443
    repo: Annotated[
        Str | None, Field(description="The TUF repository folder as the office published it (metadata/, targets/).")
    ] = None
    keys_dir: Annotated[
        Str | None, Field(description="Folder with the online keys snapshot.pem and timestamp.pem.")
    ] = None
    timestamp_refresh_s: Annotated[
        Float, Field(gt=0, description="Re-sign timestamp.json this often (it expires after 1 day).")
    ] = 21600.0
    ca: Annotated[Str | None, Field(description="The county CA: device certificates must chain to it.")] = None
    cert: Annotated[
        Str | None,
        Field(description="The server certificate (xl-provision ca init's server.crt); its names must match the hub."),
    ] = None
    key: Annotated[Str | None, Field(description="Its private key (server.key).")] = None


def updates_problems(cfg: UpdatesConfig, where: str, *, clips_enabled: bool = False) -> list[str]:
    """What the devices' HTTPS server is missing; every path is checked at start-up.

    The server runs when updates or clips (``clips.enabled``) are on: the TLS
    files then, the repository and its keys only for updates."""
    if not cfg.enabled and not clips_enabled:
        return []
    names = (("repo", True), ("keys_dir", True)) if cfg.enabled else ()
    why = "updates.enabled" if cfg.enabled else "clips.enabled"
    out = []
    for name, want_dir in (*names, ("ca", False), ("cert", False), ("key", False)):
        value = getattr(cfg, name)
        path = None if value is None else Path(value)
        if path is None:
            out.append(problem(f"{where}.{name}", None, f"a path (required when {why} is true)"))
        elif want_dir and not path.is_dir():
            out.append(problem(f"{where}.{name}", value, "an existing folder"))
        elif not want_dir and not path.is_file():
            out.append(problem(f"{where}.{name}", value, "an existing file"))
    return out


@dataclass(frozen=True)
class RolloutConfig:
    enabled: Annotated[Bool, Field(description="Run the rollout engine in this hub process (one per county).")] = True
    tick_s: Annotated[
        Float, Field(gt=0, description="How often rollouts are evaluated: devices' states read, commands sent.")
    ] = 10.0
    resend_after_s: Annotated[
        Float,
        Field(gt=0, description="A device that was sent `update` but shows no progress gets it again after this."),
    ] = 3600.0
