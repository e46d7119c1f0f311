"""A TUF repository folder with consistent snapshots, as docs/ota.md lays it out.

::

    metadata/<N>.root.json      every root version (clients walk the chain)
    metadata/root.json          a copy of the newest root
    metadata/<N>.targets.json
    metadata/<N>.snapshot.json
    metadata/timestamp.json     the only unversioned name
    targets/<dir>/<sha256>.<name>

Every file is written to a temporary name and renamed, and versioned files
are never overwritten, so the hub can serve the folder while a new release
or a new timestamp is written into it: a client sees either the old
timestamp and all it names, or the new one and all it names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TypeVar

from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

# Constrained like python-tuf's own (a bound would not match its Metadata[T]).
T = TypeVar("T", Root, Targets, Snapshot, Timestamp)

_VERSIONED = re.compile(r"^(\d+)\.(root|targets|snapshot)\.json$")


class RepositoryError(RuntimeError):
    pass


class Repository:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.metadata_dir = path / "metadata"
        self.targets_dir = path / "targets"

    def exists(self) -> bool:
        return (self.metadata_dir / "1.root.json").is_file()

    def versions(self, role: str) -> list[int]:
        """Versions of ``role`` on disk, oldest first (not for timestamp: it has one file)."""
        if not self.metadata_dir.is_dir():
            return []
        found = []
        for entry in self.metadata_dir.iterdir():
            m = _VERSIONED.match(entry.name)
            if m and m.group(2) == role:
                found.append(int(m.group(1)))
        return sorted(found)

    def _newest_path(self, role: str) -> Path:
        versions = self.versions(role)
        if not versions:
            raise RepositoryError(
                f"{self.metadata_dir}: no {role} metadata (is this a repository? `xl-provision release keys init`)"
            )
        return self.metadata_dir / f"{versions[-1]}.{role}.json"

    def _load(self, path: Path, kind: type[T]) -> Metadata[T]:
        try:
            md = Metadata[T].from_bytes(path.read_bytes())
        except FileNotFoundError:
            raise RepositoryError(f"{path}: missing") from None
        except DeserializationError as exc:
            raise RepositoryError(f"{path}: not TUF metadata ({exc})") from None
        if not isinstance(md.signed, kind):
            raise RepositoryError(f"{path}: holds {md.signed.type} metadata, expected {kind.type}")
        return md

    def root(self, version: int | None = None) -> Metadata[Root]:
        path = self._newest_path("root") if version is None else self.metadata_dir / f"{version}.root.json"
        return self._load(path, Root)

    def targets(self) -> Metadata[Targets]:
        return self._load(self._newest_path("targets"), Targets)

    def snapshot(self) -> Metadata[Snapshot]:
        return self._load(self._newest_path("snapshot"), Snapshot)

    def timestamp(self) -> Metadata[Timestamp]:
        return self._load(self.metadata_dir / "timestamp.json", Timestamp)

    def write(self, md: Metadata[T]) -> Path:
        """Write one role's metadata under its consistent-snapshot name; returns the path."""
        role = md.signed.type
        data = md.to_bytes(JSONSerializer(compact=False))
        if role == "timestamp":
            path = self.metadata_dir / "timestamp.json"
        else:
            path = self.metadata_dir / f"{md.signed.version}.{role}.json"
            if path.exists() and path.read_bytes() != data:
                # Two different files under one versioned name would split clients' views.
                raise RepositoryError(f"{path}: already exists with other content; versions are never reused")
        write_atomic(path, data)
        if role == "root":
            write_atomic(self.metadata_dir / "root.json", data)
        return path

    def target_file(self, target_path: str, sha256: str) -> Path:
        """Where the bytes of ``target_path`` with this hash live (``<dir>/<sha256>.<name>``)."""
        directory, _, name = target_path.rpartition("/")
        return self.targets_dir / directory / f"{sha256}.{name}"


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
