"""``xl-provision release rotate-key``: replace one role's key, through a new root version.

TUF lets a client move from root N to N+1 only if N+1 carries a threshold
of signatures from the keys root N names for ``root`` and a threshold from
the keys N+1 itself names. For targets, snapshot or timestamp the root keys
do not change and the one offline root key satisfies both; rotating the
root key itself signs with the old key and the new one. The role whose key
changed is re-signed at once with the new key, so no published metadata is
left that only the old key vouches for.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root

from provisioning.release.repo import ROOT_EXPIRY, TufDir, offline_signer, publish_root, sign_targets
from xlrelease.keys import ROLES, ROOT, TARGETS, key_path, load_signer, new_signer, write_signer
from xlrelease.online import refresh_snapshot
from xlrelease.store import Repository, RepositoryError


@dataclass(frozen=True)
class RotationReport:
    role: str
    old_keyids: tuple[str, ...]
    new_keyid: str
    root_version: int
    key_file: str
    retired: tuple[str, ...]


def rotate_key(repo: Repository, tuf: TufDir, role: str, now: dt.datetime | None = None) -> RotationReport:
    if role not in ROLES:
        raise RepositoryError(f"role {role!r}: one of {', '.join(ROLES)}")
    when = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    current = repo.root()
    old_root_signer = offline_signer(repo, tuf, ROOT)
    keys_dir = tuf.keys_dir(role)
    path = key_path(keys_dir, role)
    old_keyids = tuple(current.signed.roles[role].keyids)
    signer = new_signer()

    new = Metadata[Root].from_bytes(current.to_bytes())
    for keyid in old_keyids:
        new.signed.revoke_key(keyid, role)
    new.signed.add_key(signer.public_key, role)
    new.signed.version += 1
    new.signed.expires = when + ROOT_EXPIRY
    new.signatures.clear()
    new.sign(old_root_signer)
    if role == ROOT:
        new.sign(signer, append=True)
    try:
        # What every client does with it: signed by the old root's root keys and by its own.
        current.verify_delegate(ROOT, new)
        new.verify_delegate(ROOT, new)
    except UnsignedMetadataError as exc:
        raise RepositoryError(f"new root version {new.signed.version} would be refused by clients: {exc}") from None

    # The new key is on disk before any metadata names it, the old one kept until none does.
    pending = path.with_name(path.name + ".next")
    write_signer(pending, signer)
    publish_root(repo, tuf, new)
    retired = []
    tuf.retired.mkdir(parents=True, exist_ok=True)
    for keyid in old_keyids:
        if path.exists() and load_signer(path).public_key.keyid == keyid:
            dest = tuf.retired / f"{role}-{keyid[:16]}.pem"
            os.replace(path, dest)
            retired.append(str(dest))
    os.replace(pending, path)

    if role == TARGETS:
        sign_targets(repo, tuf, repo.targets(), when)
    else:
        refresh_snapshot(repo, tuf.online, now=when)
    return RotationReport(role, old_keyids, signer.public_key.keyid, new.signed.version, str(path), tuple(retired))
