"""Keys and the first version of the update repository (``xl-provision release keys init``).

::

    <state>/tuf/offline/root.pem, targets.pem     county office only
    <state>/tuf/offline/retired/<role>-<keyid>.pem keys replaced by rotate-key
    <state>/tuf/online/snapshot.pem, timestamp.pem copied to the hub's updates.keys_dir
    <state>/tuf/repo/                              the repository (default of --repo)
    <state>/tuf/root.json                          the newest root, for SD-card bundles
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root, Targets

from xlrelease.keys import OFFLINE_ROLES, ROLES, ROOT, TARGETS, key_path, new_signer, write_signer
from xlrelease.online import refresh_snapshot, refresh_timestamp, trusted_signer
from xlrelease.store import Repository, RepositoryError, write_atomic

__all__ = [
    "ROOT_EXPIRY",
    "TARGETS_EXPIRY",
    "Repository",
    "RepositoryError",
    "TufDir",
    "init_repository",
    "publish_root",
    "refresh_snapshot",
    "refresh_timestamp",
    "sign_targets",
]

ROOT_EXPIRY = dt.timedelta(days=365)
TARGETS_EXPIRY = dt.timedelta(days=90)


class TufDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offline = path / "offline"
        self.online = path / "online"
        self.retired = self.offline / "retired"
        self.default_repo = path / "repo"
        self.trusted_root = path / "root.json"

    def keys_dir(self, role: str) -> Path:
        return self.offline if role in OFFLINE_ROLES else self.online


def _now(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)


def init_repository(tuf: TufDir, repo: Repository, now: dt.datetime | None = None) -> Repository:
    """Four new keys and version 1 of every role; refuses to replace existing keys or metadata."""
    existing = [key_path(tuf.keys_dir(r), r) for r in ROLES if key_path(tuf.keys_dir(r), r).exists()]
    if existing:
        raise RepositoryError(
            f"{existing[0]}: keys already exist; a new root would orphan every device that trusts the old one"
        )
    if repo.metadata_dir.exists() and any(repo.metadata_dir.iterdir()):
        raise RepositoryError(f"{repo.metadata_dir}: not empty; refusing to start a second repository over it")
    when = _now(now)
    signers = {role: new_signer() for role in ROLES}
    root = Root(version=1, expires=when + ROOT_EXPIRY, consistent_snapshot=True)
    for role, signer in signers.items():
        root.add_key(signer.public_key, role)
    # Keys first: metadata naming a key whose private half was lost is worse than a stray key.
    for role, signer in signers.items():
        write_signer(key_path(tuf.keys_dir(role), role), signer)
    root_md = Metadata(root)
    root_md.sign(signers[ROOT])
    publish_root(repo, tuf, root_md)
    targets_md = Metadata(Targets(version=1, expires=when + TARGETS_EXPIRY))
    targets_md.sign(signers[TARGETS])
    repo.write(targets_md)
    refresh_snapshot(repo, tuf.online, now=when)
    return repo


def publish_root(repo: Repository, tuf: TufDir, root_md: Metadata[Root]) -> None:
    """Write a root version into the repository and keep the bundles' copy in step."""
    repo.write(root_md)
    write_atomic(tuf.trusted_root, (repo.metadata_dir / "root.json").read_bytes())


def offline_signer(repo: Repository, tuf: TufDir, role: str) -> CryptoSigner:
    return trusted_signer(repo.root().signed, tuf.offline, role)


def sign_targets(repo: Repository, tuf: TufDir, targets_md: Metadata[Targets], now: dt.datetime | None = None) -> int:
    """Sign ``targets_md`` as the next targets version, then a snapshot and timestamp naming it."""
    when = _now(now)
    signer = offline_signer(repo, tuf, TARGETS)
    targets_md.signed.version = repo.targets().signed.version + 1
    targets_md.signed.expires = when + TARGETS_EXPIRY
    targets_md.signatures.clear()
    targets_md.sign(signer)
    repo.write(targets_md)
    refresh_snapshot(repo, tuf.online, now=when)
    return targets_md.signed.version
