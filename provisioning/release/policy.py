"""``xl-provision release floor``: the lowest agent version any device may install.

The floor is the target ``policy.json`` (docs/ota.md), signed with the offline
targets key like every release. A device refuses any release below it even
when the rollout allows a downgrade, because the hub, which holds only the
online keys, decides ``dg``; a compromised hub could otherwise walk the fleet
back to an old release whose signature is still good. Raising the floor after
a security fix is the office's decision; lowering it again is too.
"""

from __future__ import annotations

import datetime as dt
import json

from tuf.api.metadata import TargetFile

from provisioning.release.build import check_version
from provisioning.release.listing import read_manifests
from provisioning.release.repo import TufDir, sign_targets
from xlrelease.store import Repository, RepositoryError, write_atomic

POLICY_PATH = "policy.json"


def set_floor(repo: Repository, tuf: TufDir, floor: str | None, now: dt.datetime | None = None) -> int:
    """Sign a new policy with ``floor`` (None: no floor); returns the new targets version."""
    targets_md = repo.targets()
    if floor is not None:
        check_version(floor, "--version")
        known = {m["version"] for m in read_manifests(repo, targets_md.signed)}
        if floor not in known:
            # A floor no release meets would strand every device; name one that exists.
            listed = ", ".join(sorted(known)) or "none"
            raise RepositoryError(f"floor {floor}: no such release in {repo.path} (releases: {listed})")
    data = (json.dumps({"format": 1, "floor": floor}, sort_keys=True) + "\n").encode()
    target = TargetFile.from_data(POLICY_PATH, data, ["sha256"])
    stored = repo.target_file(POLICY_PATH, target.hashes["sha256"])
    if not stored.exists():
        write_atomic(stored, data)
    targets_md.signed.targets[POLICY_PATH] = target
    return sign_targets(repo, tuf, targets_md, now)


def current_floor(repo: Repository) -> str | None:
    target = repo.targets().signed.targets.get(POLICY_PATH)
    if target is None:
        return None
    doc = json.loads(repo.target_file(POLICY_PATH, target.hashes["sha256"]).read_bytes())
    floor = doc.get("floor")
    return str(floor) if floor is not None else None
