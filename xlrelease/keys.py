"""ed25519 signing keys of the update repository, one PEM file per role.

Unencrypted PKCS#8 PEM, mode 0600: the offline keys (root, targets) live on
the county office's machine, the online ones (snapshot, timestamp) on the hub,
which must sign unattended every few hours.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner

from xlrelease.store import RepositoryError

ROOT, TARGETS, SNAPSHOT, TIMESTAMP = "root", "targets", "snapshot", "timestamp"
OFFLINE_ROLES = (ROOT, TARGETS)
ONLINE_ROLES = (SNAPSHOT, TIMESTAMP)
ROLES = (*OFFLINE_ROLES, *ONLINE_ROLES)


def key_path(keys_dir: Path, role: str) -> Path:
    return keys_dir / f"{role}.pem"


def new_signer() -> CryptoSigner:
    return CryptoSigner(Ed25519PrivateKey.generate())


def write_signer(path: Path, signer: CryptoSigner) -> None:
    """Write the private key, never readable by anyone but its owner, even for an instant."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, signer.private_bytes)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_signer(path: Path) -> CryptoSigner:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise RepositoryError(f"{path}: signing key missing") from None
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise RepositoryError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RepositoryError(f"{path}: not an ed25519 key ({type(key).__name__})")
    return CryptoSigner(key)
