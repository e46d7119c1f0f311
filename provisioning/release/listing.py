"""``xl-provision release list``: the releases in a repository, read from their manifests."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from tuf.api.metadata import Targets

from xlrelease.store import Repository, RepositoryError


def manifest_path(version: str) -> str:
    return f"agent/{version}/manifest.json"


def read_manifests(repo: Repository, targets: Targets) -> list[dict[str, Any]]:
    """Every release's manifest, in the order the releases were made."""
    found = []
    for path, target in targets.targets.items():
        parts = path.split("/")
        if len(parts) != 3 or parts[0] != "agent" or parts[2] != "manifest.json":
            continue
        stored = repo.target_file(path, target.hashes["sha256"])
        try:
            manifest = json.loads(stored.read_bytes())
        except FileNotFoundError:
            raise RepositoryError(f"{stored}: the manifest of release {parts[1]} is missing from the targets") from None
        except json.JSONDecodeError as exc:
            raise RepositoryError(f"{stored}: not JSON ({exc})") from None
        found.append(manifest)
    return sorted(found, key=lambda m: int(m["released_ms"]))


@dataclass(frozen=True)
class ReleaseInfo:
    version: str
    min_from: str
    released: dt.datetime
    agent_bytes: int
    model_bytes: int
    wheels: dict[str, int]  # platform -> number of dependency wheels
    wheel_bytes: dict[str, int]  # platform -> their total size
    deltas: int  # delta targets leading to this release


def releases(repo: Repository) -> list[ReleaseInfo]:
    targets = repo.targets().signed
    delta_counts: dict[str, int] = {}
    for target in targets.targets.values():
        custom = target.custom
        if isinstance(custom, dict) and "xl_delta" in custom:
            version = str(custom["xl_delta"]["to"]).split("/")[1]
            delta_counts[version] = delta_counts.get(version, 0) + 1
    out = []
    for m in read_manifests(repo, targets):
        plats: dict[str, list[str]] = m["platforms"]
        out.append(
            ReleaseInfo(
                version=m["version"],
                min_from=m["min_from"],
                released=dt.datetime.fromtimestamp(m["released_ms"] / 1000, dt.UTC),
                agent_bytes=targets.targets[m["agent"]].length,
                model_bytes=targets.targets[m["model"]].length,
                wheels={p: len(w) for p, w in plats.items()},
                wheel_bytes={p: sum(targets.targets[t].length for t in w) for p, w in plats.items()},
                deltas=delta_counts.get(m["version"], 0),
            )
        )
    return out
