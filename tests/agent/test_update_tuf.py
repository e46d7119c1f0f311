"""The update child against a real TUF repository on a real mTLS server: a good
release, the TUF attacks (each refused with its reason in progress.json ``ue``),
the pre-install checks, deltas and their fallback."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bsdiff4
import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, TargetFile, Targets, Timestamp

from agent.config import AgentConfig, parse
from agent.update.apply_cli import apply_release
from agent.update.layout import Layout
from agent.update.progress import read_progress
from agent.update.tuf_client import Release
from tests.support.tls import DEVICE, GROUP, Pki, make_pki
from tests.support.tuf_repo import TufRepo
from tests.support.update_server import UpdateServer

OLD, NEW = "0.2.0", "0.3.0"


def wheel(version: str) -> str:
    return f"agent/{version}/xueliang_edge-{version}-py3-none-any.whl"


MODEL = "agent/{}/person_ssdlite_uint8.tflite"
DEP = "wheels/pyyaml-6.0-cp311-cp311-manylinux_2_17_x86_64.whl"


@dataclass
class Installed:
    """Stands in for agent.update.install (tested on its own): records what it was handed."""

    calls: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)

    def __call__(self, layout: Layout, release: Release, files: dict[str, Path]) -> None:
        self.calls.append((release.manifest.version, {p: f.read_bytes() for p, f in files.items()}))


@dataclass
class Rig:
    repo: TufRepo
    server: UpdateServer
    cfg: AgentConfig
    layout: Layout
    files: dict[str, bytes]
    installed: Installed

    def apply(self, version: str = NEW, *, running: str = OLD, machine: str = "x86_64", dg: bool = False) -> int:
        return apply_release(
            self.cfg, version, allow_downgrade=dg, rollout="r-1", running=running, machine=machine,
            install=self.installed,
        )  # fmt: skip

    def progress(self) -> dict[str, object]:
        return json.loads(self.layout.progress_file.read_text())

    @property
    def ue(self) -> str:
        p = read_progress(self.layout.progress_file)
        assert p is not None and p.us == "fail", p
        assert p.ue is not None
        return p.ue


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def rig(tmp_path: Path, pki: Pki) -> Iterator[Rig]:
    repo = TufRepo(tmp_path / "repo")
    files = {wheel(NEW): os.urandom(120_000), MODEL.format(NEW): os.urandom(80_000), DEP: os.urandom(40_000)}
    repo.add_release(NEW, files, min_from="0.1.0")
    repo.publish()
    server = UpdateServer(repo.dir, pki).start()
    doc = {
        "device": {"id": DEVICE, "group": GROUP, "household": "HH1"},
        "broker": {"url": "mqtts://localhost:8883", "ca": str(pki.ca), "cert": str(pki.cert), "key": str(pki.key)},
        "state_dir": str(tmp_path / "state"),
        "update": {
            "url": server.url,
            "root": str(tmp_path / "opt"),
            "state_dir": str(tmp_path / "upd"),
            "bandwidth_bytes_per_s": None,
        },
    }
    cfg = parse(doc)
    layout = Layout.from_config(cfg.update)
    layout.tuf_dir.mkdir(parents=True)
    (layout.tuf_dir / "root.json").write_bytes(repo.root_bytes)  # what first boot installs
    yield Rig(repo, server, cfg, layout, files, Installed())
    server.close()


def served_path(target: str, data: bytes) -> str:
    d, sep, name = target.rpartition("/")
    return f"/tuf/targets/{d}{sep}{hashlib.sha256(data).hexdigest()}.{name}"


# -- the good path ---------------------------------------------------------------


def test_a_good_release_is_verified_and_handed_to_install(rig: Rig) -> None:
    assert rig.apply() == 0
    [(version, got)] = rig.installed.calls
    assert version == NEW
    for path, data in rig.files.items():
        assert got[path] == data
    assert json.loads(got[f"agent/{NEW}/manifest.json"])["version"] == NEW
    p = rig.progress()
    assert p["us"] == "inst" and p["uv"] == NEW and p["ro"] == "r-1"
    assert p["ub"] == sum(len(d) for d in rig.files.values()) + len(got[f"agent/{NEW}/manifest.json"])
    assert not rig.layout.download_dir.exists()  # handed over and cleared


def test_a_release_not_in_the_signed_targets_is_refused(rig: Rig) -> None:
    assert rig.apply("0.9.0") == 1
    assert rig.ue == "release 0.9.0 is not in the signed targets"


# -- the TUF attacks --------------------------------------------------------------


def test_a_tampered_target_is_refused(rig: Rig) -> None:
    data = rig.files[wheel(NEW)]
    rig.server.overrides[served_path(wheel(NEW), data)] = data[:-1] + bytes([data[-1] ^ 1])
    assert rig.apply() == 1
    assert rig.ue.startswith(f"tuf: {wheel(NEW)} does not match its signed length and hashes")
    assert rig.installed.calls == []


def test_a_rollback_to_an_older_timestamp_is_refused(rig: Rig) -> None:
    assert rig.apply() == 0  # the device now trusts timestamp v1, snapshot v1, targets v1
    rig.repo.add_target("agent/extra.bin", b"x")
    rig.repo.publish()  # v2 of each
    assert rig.apply() == 0
    rig.server.overrides["/tuf/metadata/timestamp.json"] = rig.repo.metadata_file("timestamp.v1.json").read_bytes()
    assert rig.apply() == 1
    assert rig.ue == "tuf: version rollback or mix-and-match: New timestamp version 1 must be >= 2"


def test_a_rollback_of_the_snapshot_signed_with_the_online_keys_is_refused(rig: Rig) -> None:
    """The timestamp and snapshot keys are online at the hub: a hub broken into can
    sign a fresh timestamp. It still cannot take a device back to an older snapshot."""
    rig.repo.add_target("agent/extra.bin", b"x")
    rig.repo.publish()
    assert rig.apply() == 0  # trusts snapshot v2
    ts = Metadata(Timestamp(version=rig.repo.timestamp.signed.version + 1, snapshot_meta=MetaFile(version=1)))
    forged = rig.repo.sign_with(ts, rig.repo.signers["timestamp"])
    rig.server.overrides["/tuf/metadata/timestamp.json"] = forged
    assert rig.apply() == 1
    assert rig.ue == "tuf: version rollback or mix-and-match: New snapshot version must be >= 2, got version 1"


def test_a_frozen_repository_with_an_expired_timestamp_is_refused(rig: Rig) -> None:
    rig.repo.refresh_timestamp(expires=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert rig.apply() == 1
    assert rig.ue == "tuf: expired: timestamp.json is expired"
    assert rig.installed.calls == []


def test_mix_and_match_of_targets_from_another_snapshot_is_refused(rig: Rig) -> None:
    rig.repo.add_target("agent/extra.bin", b"x")
    rig.repo.publish()  # snapshot v2 names targets v2
    rig.server.overrides["/tuf/metadata/2.targets.json"] = rig.repo.metadata_file("1.targets.json").read_bytes()
    assert rig.apply() == 1
    assert rig.ue == "tuf: version rollback or mix-and-match: Expected targets v2, got v1."


def test_an_arbitrary_target_signed_by_an_untrusted_key_is_refused(rig: Rig) -> None:
    evil = os.urandom(5000)
    targets = Metadata(Targets(version=2, expires=rig.repo.targets.signed.expires))
    targets.signed.targets = dict(rig.repo.targets.signed.targets)
    targets.signed.targets[wheel(NEW)] = TargetFile.from_data(wheel(NEW), evil, ["sha256"])
    rig.repo.publish()  # snapshot v2 wants targets v2: the attacker serves its own v2
    rig.server.overrides["/tuf/metadata/2.targets.json"] = rig.repo.sign_with(targets, CryptoSigner.generate_ed25519())
    rig.server.overrides[served_path(wheel(NEW), evil)] = evil
    assert rig.apply() == 1
    assert rig.ue == "tuf: signature invalid: targets was signed by 0/1 keys"
    assert served_path(wheel(NEW), evil) not in [p for p, _, _ in rig.server.requests]


# -- the checks before anything is installed ---------------------------------------------


def test_a_downgrade_is_refused_unless_the_rollout_allows_it(rig: Rig) -> None:
    assert rig.apply(running="0.4.0") == 1
    assert rig.ue == "downgrade from 0.4.0 to 0.3.0 refused: the rollout does not allow"
    assert not any("/targets/agent/0.3.0/xueliang" in p for p, _, _ in rig.server.requests)
    assert rig.apply(running="0.4.0", dg=True) == 0


def test_the_offices_floor_holds_even_when_the_rollout_allows_a_downgrade(rig: Rig) -> None:
    """A compromised hub holds only the online keys and may send dg=1: the floor (policy.json,
    signed with the offline targets key) still keeps devices off releases below it."""
    rig.repo.add_target("policy.json", json.dumps({"format": 1, "floor": "0.3.1"}).encode())
    rig.repo.publish()
    assert rig.apply(running="0.4.0", dg=True) == 1
    assert rig.ue == "release 0.3.0 is below the county office's floor 0.3.1; only the office can lower it"
    assert not any("/targets/agent/0.3.0/xueliang" in p for p, _, _ in rig.server.requests)
    rig.repo.add_target("policy.json", json.dumps({"format": 1, "floor": "0.3.0"}).encode())
    rig.repo.publish()
    assert rig.apply(running="0.4.0", dg=True) == 0  # at the floor is allowed


def test_a_floor_the_hub_rewrote_is_refused_like_any_tampered_target(rig: Rig) -> None:
    rig.repo.add_target("policy.json", json.dumps({"format": 1, "floor": "0.3.1"}).encode())
    rig.repo.publish()
    # The hub swaps the stored policy for one with a lower floor, same length: its hash no longer matches.
    stored = next((rig.repo.dir / "targets").glob("*.policy.json"))
    stored.write_bytes(json.dumps({"format": 1, "floor": "0.0.1"}).encode())
    assert rig.apply(running="0.4.0", dg=True) == 1
    assert "policy.json" in rig.ue


def test_a_device_older_than_min_from_is_refused(rig: Rig) -> None:
    assert rig.apply(running="0.0.9") == 1
    assert rig.ue == "release 0.3.0 updates only from 0.1.0 or newer; this device runs 0.0.9"


def test_the_wrong_platform_is_refused(rig: Rig) -> None:
    assert rig.apply(machine="armv7l") == 1
    assert rig.ue == "release 0.3.0 has no build for armv7l (it has: aarch64, x86_64)"


def test_asking_for_the_running_release_is_ok_at_once(rig: Rig) -> None:
    assert rig.apply(running=NEW) == 0
    assert rig.progress()["us"] == "ok"
    assert rig.server.requests == []


# -- deltas and local copies --------------------------------------------------------


def install_old_release(rig: Rig, files: dict[str, bytes]) -> None:
    d = rig.layout.releases / OLD / "files"
    d.mkdir(parents=True)
    for path, data in files.items():
        (d / Path(path).name).write_bytes(data)
    rig.layout.current.symlink_to(f"releases/{OLD}")


def add_delta(rig: Rig, old: bytes, target: str, patch: bytes) -> str:
    path = f"deltas/{hashlib.sha256(old).hexdigest()}/{target}.bsdiff4"
    rig.repo.add_target(
        path, patch, custom={"xl_delta": {"from_sha256": hashlib.sha256(old).hexdigest(), "to": target}}
    )
    return path


def test_a_delta_from_the_installed_release_is_used_and_shared_wheels_are_copied(rig: Rig) -> None:
    new = rig.files[wheel(NEW)]
    old = new[:50_000] + os.urandom(300) + new[50_000:]  # the last release: nearly the same bytes
    install_old_release(rig, {wheel(OLD): old, DEP: rig.files[DEP]})
    patch = bsdiff4.diff(old, new)
    assert len(patch) < len(new) // 10
    add_delta(rig, old, wheel(NEW), patch)
    rig.repo.publish()
    assert rig.apply() == 0
    [(_, got)] = rig.installed.calls
    assert got[wheel(NEW)] == new and got[DEP] == rig.files[DEP]
    fetched = [p for p, _, _ in rig.server.requests if p.startswith("/tuf/targets/")]
    assert not any(p.endswith(Path(wheel(NEW)).name) or p.endswith(Path(DEP).name) for p in fetched), fetched
    manifest = len(got[f"agent/{NEW}/manifest.json"])
    assert rig.progress()["ub"] == manifest + len(patch) + len(rig.files[MODEL.format(NEW)])


def test_a_corrupt_delta_falls_back_to_the_full_file(rig: Rig) -> None:
    new = rig.files[wheel(NEW)]
    old = os.urandom(len(new))
    install_old_release(rig, {wheel(OLD): old})
    garbage = b"BSDIFF40" + os.urandom(2000)  # signed correctly, but not a patch that makes the file
    add_delta(rig, old, wheel(NEW), garbage)
    rig.repo.publish()
    assert rig.apply() == 0
    [(_, got)] = rig.installed.calls
    assert got[wheel(NEW)] == new
    fetched = [p for p, _, _ in rig.server.requests]
    assert served_path(wheel(NEW), new) in fetched  # the full artefact, after the delta failed


def test_a_delta_that_patches_to_the_wrong_bytes_falls_back(rig: Rig) -> None:
    new = rig.files[wheel(NEW)]
    old = new[:1000] + os.urandom(len(new) - 1000)
    install_old_release(rig, {wheel(OLD): old})
    add_delta(rig, old, wheel(NEW), bsdiff4.diff(old, new + b"!"))  # a valid patch to a file that is not the target
    rig.repo.publish()
    assert rig.apply() == 0
    assert rig.installed.calls[0][1][wheel(NEW)] == new


def test_an_interrupted_download_resumes_in_the_next_run(rig: Rig) -> None:
    new = rig.files[wheel(NEW)]
    part = rig.layout.download_dir / f"{wheel(NEW)}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(new[:70_000])  # what a killed child left
    assert rig.apply() == 0
    assert rig.installed.calls[0][1][wheel(NEW)] == new
    assert (served_path(wheel(NEW), new), "bytes=70000-", 206) in rig.server.requests


def test_a_torn_partial_file_is_fetched_again_from_the_start(rig: Rig) -> None:
    new = rig.files[wheel(NEW)]
    part = rig.layout.download_dir / f"{wheel(NEW)}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(new[:60_000] + b"\0" * 10_000)  # a power cut left zeros at the end
    assert rig.apply() == 0
    assert rig.installed.calls[0][1][wheel(NEW)] == new
    assert (served_path(wheel(NEW), new), None, 200) in rig.server.requests
