"""Checks before anything of a release is downloaded or installed (issue 17).

Each failing check raises UpdateRefused with the reason an operator reads in
health ``ue``: the device stays on its release, and nothing has been spent on
the metered link but metadata and the manifest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agent.update.manifest import Manifest
from agent.update.tuf_client import UpdateRefused
from agent.update.versions import VersionError, compare

# The SD card also holds the outbox, which must never be the one to run out.
RESERVE_BYTES = 64 * 1024 * 1024
# A venv takes about twice its wheels once unpacked (numpy: 15 MB wheel, 37 MB installed).
UNPACK_FACTOR = 2


def check_release(
    manifest: Manifest,
    *,
    running: str,
    machine: str,
    allow_downgrade: bool,
    floor: str | None = None,
) -> None:
    """Platform, the office's floor, downgrade and ``min_from``; in that order, so the reason is
    the most basic one.

    ``floor`` is the county office's ``policy.json`` (signed with the offline targets key): no
    release below it is installed, whatever the command says. The hub holds only the online
    keys and may send ``dg``=1; without the floor a compromised hub could walk the whole
    fleet back to an old, signed, vulnerable release."""
    if machine not in manifest.platforms:
        have = ", ".join(sorted(manifest.platforms)) or "none"
        raise UpdateRefused(f"release {manifest.version} has no build for {machine} (it has: {have})")
    try:
        if floor is not None and compare(manifest.version, floor) < 0:
            raise UpdateRefused(
                f"release {manifest.version} is below the county office's floor {floor}; only the office can lower it"
            )
        newer = compare(manifest.version, running)
        if newer < 0 and not allow_downgrade:
            raise UpdateRefused(f"downgrade from {running} to {manifest.version} refused: the rollout does not allow")
        if manifest.min_from is not None and compare(running, manifest.min_from) < 0:
            raise UpdateRefused(
                f"release {manifest.version} updates only from {manifest.min_from} or newer; this device runs {running}"
            )
    except VersionError as exc:
        raise UpdateRefused(f"version: {exc}") from exc


def space_needed(total_bytes: int, still_to_download: int) -> int:
    return still_to_download + UNPACK_FACTOR * total_bytes + RESERVE_BYTES


def check_space(where: Path, total_bytes: int, still_to_download: int) -> None:
    """Room for the rest of the download, the unpacked venv and the reserve."""
    where.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(where).free
    need = space_needed(total_bytes, still_to_download)
    if free < need:
        raise UpdateRefused(
            f"not enough SD space: {free // 2**20} MB free, {need // 2**20} MB needed "
            f"(release {total_bytes // 2**20} MB, unpacked, and a {RESERVE_BYTES // 2**20} MB reserve)"
        )
