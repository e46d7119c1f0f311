"""Signing of the online roles, snapshot and timestamp: what the hub does unattended.

Their versions come from the clock (``max(previous + 1, unix seconds)``),
not from a counter: the office signs them when it builds a release and the
hub signs them every few hours, each on its own copy of the repository, and
a device refuses any version lower than one it has seen. With clock-based
versions whichever signed last is highest, as long as the two clocks agree
to within the hours between signings.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Timestamp

from xlrelease.keys import SNAPSHOT, TIMESTAMP, key_path, load_signer
from xlrelease.store import Repository, RepositoryError

ONE_DAY = dt.timedelta(days=1)
SEVEN_DAYS = dt.timedelta(days=7)
TIMESTAMP_EXPIRY = ONE_DAY
SNAPSHOT_EXPIRY = SEVEN_DAYS


def _now(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)


def as_repository(repo: Repository | Path) -> Repository:
    return repo if isinstance(repo, Repository) else Repository(repo)


def next_version(previous: int, now: dt.datetime) -> int:
    return max(previous + 1, int(now.timestamp()))


def trusted_signer(root: Root, keys_dir: Path, role: str) -> CryptoSigner:
    """The key in ``keys_dir`` for ``role``, refused unless the newest root trusts it."""
    path = key_path(keys_dir, role)
    signer = load_signer(path)
    if signer.public_key.keyid not in root.roles[role].keyids:
        raise RepositoryError(
            f"{path}: root version {root.version} does not trust this key for {role} "
            "(was the key rotated? copy the new one from the county office)"
        )
    return signer


def refresh_timestamp(
    repo: Repository | Path,
    online_keys_dir: Path,
    expiry: dt.timedelta = TIMESTAMP_EXPIRY,
    now: dt.datetime | None = None,
) -> int:
    """A new ``timestamp.json`` naming the newest snapshot; returns its version."""
    repo = as_repository(repo)
    when = _now(now)
    root = repo.root().signed
    signer = trusted_signer(root, online_keys_dir, TIMESTAMP)
    snapshot_version = repo.snapshot().signed.version
    try:
        previous = repo.timestamp().signed.version
    except RepositoryError:
        previous = 0  # the first one, at `keys init`
    md = Metadata(Timestamp(version=next_version(previous, when), expires=when + expiry))
    md.signed.snapshot_meta = MetaFile(version=snapshot_version)
    md.sign(signer)
    repo.write(md)
    return md.signed.version


def refresh_snapshot(
    repo: Repository | Path,
    online_keys_dir: Path,
    expiry: dt.timedelta = SNAPSHOT_EXPIRY,
    now: dt.datetime | None = None,
    timestamp_expiry: dt.timedelta = TIMESTAMP_EXPIRY,
) -> int:
    """A new snapshot naming the newest targets metadata on disk, then a timestamp for it; returns its version."""
    repo = as_repository(repo)
    when = _now(now)
    root = repo.root().signed
    signer = trusted_signer(root, online_keys_dir, SNAPSHOT)
    targets_version = repo.targets().signed.version
    previous = repo.versions(SNAPSHOT)
    md = Metadata(Snapshot(version=next_version(previous[-1] if previous else 0, when), expires=when + expiry))
    md.signed.meta = {"targets.json": MetaFile(version=targets_version)}
    md.sign(signer)
    repo.write(md)
    refresh_timestamp(repo, online_keys_dir, timestamp_expiry, when)
    return md.signed.version


def snapshot_is_behind(repo: Repository | Path) -> bool:
    """Whether the newest targets metadata on disk is newer than what the newest snapshot names."""
    repo = as_repository(repo)
    named = repo.snapshot().signed.meta["targets.json"].version
    return repo.targets().signed.version > named
