"""The release manifest (docs/ota.md section 1), read on the device.

The manifest is itself a TUF target, so by the time this parses it its bytes
are the county office's; the checks here are for a release built wrong, and
they say which key is wrong rather than failing later in the install.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.update.versions import VersionError, parse

FORMAT = 1
MAX_BYTES = 256 * 1024


class ManifestError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Manifest:
    version: str
    min_from: str | None
    released_ms: int | None
    agent: str  # target path of the agent wheel
    model: str | None  # target path of the model
    platforms: dict[str, tuple[str, ...]]  # platform.machine() -> dependency wheel target paths
    requirement: str

    def targets_for(self, machine: str) -> list[str]:
        """Every target path this platform needs, the agent first."""
        paths = [self.agent, *([self.model] if self.model else []), *self.platforms.get(machine, ())]
        return list(dict.fromkeys(paths))  # a path listed twice is fetched once


def parse_manifest(data: bytes) -> Manifest:
    if len(data) > MAX_BYTES:
        raise ManifestError(f"manifest is {len(data)} bytes, over {MAX_BYTES}")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"manifest is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    if doc.get("format") != FORMAT:
        raise ManifestError(f"manifest format {doc.get('format')!r:.20} is not {FORMAT}")
    version = _version(doc, "version", required=True)
    assert version is not None
    platforms = doc.get("platforms")
    if not isinstance(platforms, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(_is_path(p) for p in v) for k, v in platforms.items()
    ):
        raise ManifestError("manifest 'platforms' must map machine names to lists of target paths")
    released = doc.get("released_ms")
    if released is not None and (isinstance(released, bool) or not isinstance(released, int)):
        raise ManifestError("manifest 'released_ms' must be an integer")
    return Manifest(
        version=version,
        min_from=_version(doc, "min_from", required=False),
        released_ms=released,
        agent=_path(doc, "agent", required=True) or "",
        model=_path(doc, "model", required=False),
        platforms={k: tuple(v) for k, v in platforms.items()},
        requirement=_text(doc, "requirement"),
    )


def _version(doc: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ManifestError(f"manifest {key!r} must be a version string")
    try:
        parse(value)
    except VersionError as exc:
        raise ManifestError(f"manifest {key!r}: {exc}") from None
    return value


def _is_path(value: object) -> bool:
    # Target paths become file names under dl/ and the release folder: no escape from them.
    return (
        isinstance(value, str)
        and 0 < len(value) <= 255
        and not value.startswith("/")
        and all(part not in ("", ".", "..") for part in value.split("/"))
    )


def _path(doc: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not _is_path(value):
        raise ManifestError(f"manifest {key!r} must be a relative target path, got {value!r:.60}")
    assert isinstance(value, str)
    return value


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ManifestError(f"manifest {key!r} must be a non-empty string")
    return value
