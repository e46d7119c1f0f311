"""A small real TUF repository for the device updater's tests (docs/ota.md section 1).

Built with python-tuf's Metadata API: ed25519 keys, consistent snapshots,
targets under their sha256. Each ``publish`` bumps targets, snapshot and
timestamp like the office and the hub do, and keeps every version on disk, so
a test can serve an old one (rollback, freeze, mix-and-match) or forge one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

ROLES = ("root", "targets", "snapshot", "timestamp")


def _in(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)


class TufRepo:
    def __init__(self, where: Path) -> None:
        self.dir = where
        self.metadata_dir = where / "metadata"
        self.targets_dir = where / "targets"
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.signers = {role: CryptoSigner.generate_ed25519() for role in ROLES}
        root = Root(expires=_in(365), consistent_snapshot=True)
        for role, signer in self.signers.items():
            root.add_key(signer.public_key, role)
        self.root = Metadata(root)
        self.targets = Metadata(Targets(expires=_in(90)))
        self.snapshot = Metadata(Snapshot(expires=_in(7)))
        self.timestamp = Metadata(Timestamp(expires=_in(1)))
        self.targets.signed.version = 0  # publish() makes it 1
        self.snapshot.signed.version = 0
        self.timestamp.signed.version = 0
        self._write(self.root, "root", self.signers["root"], versioned=True)

    @property
    def root_bytes(self) -> bytes:
        return (self.metadata_dir / "1.root.json").read_bytes()

    def add_target(self, path: str, data: bytes, custom: dict[str, Any] | None = None) -> TargetFile:
        info = TargetFile.from_data(path, data, ["sha256"])
        if custom:
            info.unrecognized_fields["custom"] = custom
        self.targets.signed.targets[path] = info
        dirname, sep, name = path.rpartition("/")
        dest = self.targets_dir / f"{dirname}{sep}{hashlib.sha256(data).hexdigest()}.{name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return info

    def add_release(self, version: str, files: dict[str, bytes], min_from: str | None = None) -> dict[str, Any]:
        """A release as the manifest contract has it: agent wheel, model, one x86_64 wheel list."""
        agent = f"agent/{version}/xueliang_edge-{version}-py3-none-any.whl"
        model = f"agent/{version}/person_ssdlite_uint8.tflite"
        wheels = sorted(p for p in files if p.startswith("wheels/"))
        manifest: dict[str, Any] = {
            "format": 1,
            "version": version,
            "min_from": min_from,
            "released_ms": 1764138000000,
            "agent": agent,
            "model": model,
            "platforms": {"x86_64": wheels, "aarch64": wheels},
            "requirement": f"xueliang-edge[agent,pi]=={version}",
        }
        if min_from is None:
            del manifest["min_from"]
        for path, data in files.items():
            self.add_target(path, data)
        self.add_target(f"agent/{version}/manifest.json", json.dumps(manifest).encode())
        return manifest

    def publish(self, timestamp_expires: dt.datetime | None = None) -> None:
        """New targets, snapshot and timestamp versions, all written."""
        self.targets.signed.version += 1
        self._write(self.targets, "targets", self.signers["targets"], versioned=True)
        self.snapshot.signed.version += 1
        self.snapshot.signed.meta["targets.json"] = MetaFile(version=self.targets.signed.version)
        self._write(self.snapshot, "snapshot", self.signers["snapshot"], versioned=True)
        self.refresh_timestamp(timestamp_expires)

    def refresh_timestamp(self, expires: dt.datetime | None = None) -> None:
        self.timestamp.signed.version += 1
        self.timestamp.signed.expires = expires or _in(1)
        self.timestamp.signed.snapshot_meta = MetaFile(version=self.snapshot.signed.version)
        self._write(self.timestamp, "timestamp", self.signers["timestamp"], versioned=False)
        # Every version kept too, so a test can replay an old one.
        self._copy("timestamp.json", f"timestamp.v{self.timestamp.signed.version}.json")

    def metadata_file(self, name: str) -> Path:
        return self.metadata_dir / name

    def _write(self, md: Metadata[Any], role: str, signer: CryptoSigner, *, versioned: bool) -> None:
        md.signatures.clear()
        md.sign(signer)
        name = f"{md.signed.version}.{role}.json" if versioned else f"{role}.json"
        md.to_file(str(self.metadata_dir / name), JSONSerializer(compact=True))

    def _copy(self, src: str, dst: str) -> None:
        (self.metadata_dir / dst).write_bytes((self.metadata_dir / src).read_bytes())

    def sign_with(self, md: Metadata[Any], signer: CryptoSigner) -> bytes:
        """``md`` signed by ``signer`` alone (an attacker's key), serialised."""
        md.signatures.clear()
        md.sign(signer)
        return md.to_bytes(JSONSerializer(compact=True))
