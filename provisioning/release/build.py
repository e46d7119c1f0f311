"""``xl-provision release build``: add one release's targets to the repository and sign them.

A release is the agent wheel, the model, the dependency wheels of each
platform and a manifest naming them (docs/ota.md). Dependency wheels are
shared targets (``wheels/<filename>``): a release that changes only the agent
adds no wheel bytes. For every earlier release's agent wheel and model whose
bytes differ from the new one's, a bsdiff4 delta is added when it is smaller
than the full file.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tuf.api.metadata import TargetFile

from provisioning.release import wheels
from provisioning.release.deltas import delta_path, make_delta
from provisioning.release.listing import manifest_path, read_manifests
from provisioning.release.repo import TufDir, sign_targets
from xlrelease.store import Repository, RepositoryError, write_atomic

MANIFEST_FORMAT = 1
MODEL_NAME = "person_ssdlite_uint8.tflite"
REQUIREMENT = "xueliang-edge[agent,pi]"
# PEP 440 versions in their normalised form, which is how they appear in wheel filenames.
_VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


@dataclass(frozen=True)
class ReleaseInput:
    version: str
    agent_wheel: Path
    wheelhouse: Path
    model: Path
    min_from: str
    platforms: tuple[str, ...] = ("aarch64",)


@dataclass(frozen=True)
class SizeRow:
    target: str
    full: int
    base: str  # the earlier release the delta starts from
    delta: int | None  # None: no smaller delta; 0: the same bytes, nothing to fetch


@dataclass
class ReleaseReport:
    version: str
    targets_version: int
    added: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    sizes: list[SizeRow] = field(default_factory=list)


def check_version(value: str, what: str) -> str:
    if not _VERSION.match(value):
        raise RepositoryError(f"{what} {value!r} is not a normalised PEP 440 version (e.g. 0.3.0, 0.3.1rc1)")
    return value


def _check(spec: ReleaseInput) -> None:
    check_version(spec.version, "--version")
    check_version(spec.min_from, "--min-from")
    expected = f"xueliang_edge-{spec.version}-py3-none-any.whl"
    if spec.agent_wheel.name != expected:
        raise RepositoryError(f"{spec.agent_wheel}: the agent wheel of release {spec.version} must be named {expected}")
    for path, what in ((spec.agent_wheel, "agent wheel"), (spec.model, "model")):
        if not path.is_file():
            raise RepositoryError(f"{path}: {what} not found")
    if not spec.wheelhouse.is_dir():
        raise RepositoryError(f"{spec.wheelhouse}: wheelhouse folder not found")
    if not spec.platforms:
        raise RepositoryError("no --platform given")


class _Builder:
    def __init__(self, repo: Repository, targets: dict[str, TargetFile], report: ReleaseReport) -> None:
        self.repo = repo
        self.targets = targets
        self.report = report

    def add(self, path: str, data: bytes, custom: Mapping[str, object] | None = None) -> TargetFile:
        target = TargetFile.from_data(path, data, ["sha256"])
        if custom:
            target.unrecognized_fields["custom"] = dict(custom)
        old = self.targets.get(path)
        if old is not None:
            if old.hashes != target.hashes:
                raise RepositoryError(
                    f"target {path} is already in the repository with other bytes; give it a new name"
                )
            self.report.reused.append(path)
            return old
        stored = self.repo.target_file(path, target.hashes["sha256"])
        if not stored.exists():
            write_atomic(stored, data)
        self.targets[path] = target
        self.report.added.append(path)
        return target

    def read(self, path: str) -> bytes:
        target = self.targets[path]
        return self.repo.target_file(path, target.hashes["sha256"]).read_bytes()


def add_release(repo: Repository, tuf: TufDir, spec: ReleaseInput, now: dt.datetime | None = None) -> ReleaseReport:
    _check(spec)
    when = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    targets_md = repo.targets()
    targets = targets_md.signed.targets
    if manifest_path(spec.version) in targets:
        raise RepositoryError(f"release {spec.version} is already in {repo.path}; releases are never rebuilt")
    earlier = read_manifests(repo, targets_md.signed)
    report = ReleaseReport(spec.version, 0)
    b = _Builder(repo, targets, report)

    platforms: dict[str, list[str]] = {}
    for machine in dict.fromkeys(spec.platforms):
        try:
            chosen = wheels.select(spec.wheelhouse, machine)
        except wheels.WheelError as exc:
            raise RepositoryError(str(exc)) from None
        if not chosen:
            raise RepositoryError(
                f"{spec.wheelhouse}: no wheel installable on {machine} (tools/pi-wheels.sh makes one)"
            )
        platforms[machine] = [b.add(f"wheels/{w.name}", w.read_bytes()).path for w in chosen]

    agent_path = f"agent/{spec.version}/{spec.agent_wheel.name}"
    model_path = f"agent/{spec.version}/{MODEL_NAME}"
    agent = b.add(agent_path, spec.agent_wheel.read_bytes())
    model = b.add(model_path, spec.model.read_bytes())
    for kind, new in (("agent", agent), ("model", model)):
        new_bytes = b.read(new.path)
        seen: set[str] = set()
        for old_manifest in earlier:
            old = targets[old_manifest[kind]]
            old_sha = old.hashes["sha256"]
            if old_sha in seen:
                continue
            seen.add(old_sha)
            if old_sha == new.hashes["sha256"]:
                report.sizes.append(SizeRow(new.path, new.length, old_manifest["version"], 0))
                continue
            patch = make_delta(b.read(old.path), new_bytes)
            if len(patch) >= new.length:
                report.sizes.append(SizeRow(new.path, new.length, old_manifest["version"], None))
                continue
            custom = {"xl_delta": {"from_sha256": old_sha, "to": new.path}}
            b.add(delta_path(old_sha, new.path), patch, custom)
            report.sizes.append(SizeRow(new.path, new.length, old_manifest["version"], len(patch)))

    manifest = {
        "format": MANIFEST_FORMAT,
        "version": spec.version,
        "min_from": spec.min_from,
        "released_ms": int(when.timestamp() * 1000),
        "agent": agent_path,
        "model": model_path,
        "platforms": platforms,
        "requirement": f"{REQUIREMENT}=={spec.version}",
    }
    b.add(manifest_path(spec.version), (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    report.targets_version = sign_targets(repo, tuf, targets_md, when)
    return report
