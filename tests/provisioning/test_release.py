"""`xl-provision release`: real releases of this repository's wheel, read back by python-tuf's own client.

Two releases are built once per module from real wheels: 1.0.0, then 1.1.0
with a code change and a re-tuned model. Tests that change the repository
work on a hard-linked copy (the repository only ever replaces files, so the
original stays as it was).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from tuf.api.exceptions import ExpiredMetadataError, LengthOrHashMismatchError, UnsignedMetadataError
from tuf.api.metadata import Metadata, Targets

from provisioning.cli import main
from provisioning.release.build import ReleaseInput, add_release
from provisioning.release.deltas import apply_delta, delta_path
from provisioning.release.listing import releases
from provisioning.release.repo import TARGETS_EXPIRY, TufDir, init_repository
from provisioning.release.rotate import rotate_key
from tests.support.release_kit import MODEL, build_agent_wheel, dependency_wheels, serve, updater
from xlrelease.keys import load_signer
from xlrelease.online import refresh_snapshot, refresh_timestamp
from xlrelease.store import Repository, RepositoryError


@dataclass
class Built:
    tuf: TufDir
    repo: Repository
    wheels: dict[str, Path]
    models: dict[str, Path]
    wheelhouse: Path


def _retuned_model(dest: Path) -> Path:
    # What a re-quantised model looks like to a delta: same layout, a few percent of the bytes changed.
    data = bytearray(MODEL.read_bytes())
    for i in range(1000, len(data), 37):
        data[i] ^= 0x01
    dest.write_bytes(bytes(data))
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("release")
    wheels = {
        "1.0.0": build_agent_wheel(work / "wheels", "1.0.0"),
        "1.1.0": build_agent_wheel(work / "wheels", "1.1.0", change="a code-only change"),
    }
    models = {"1.0.0": MODEL, "1.1.0": _retuned_model(work / "retuned.tflite")}
    house = dependency_wheels()
    tuf = TufDir(work / "state" / "tuf")
    repo = init_repository(tuf, Repository(tuf.default_repo))
    for version, min_from in (("1.0.0", "0.1.0"), ("1.1.0", "1.0.0")):
        spec = ReleaseInput(version, wheels[version], house, models[version], min_from, ("x86_64", "aarch64"))
        add_release(repo, tuf, spec)
    return Built(tuf, repo, wheels, models, house)


def _linked_copy(b: Built, dest: Path) -> Built:
    shutil.copytree(b.repo.path, dest / "repo", copy_function=os.link)
    shutil.copytree(b.tuf.path, dest / "tuf", ignore=shutil.ignore_patterns("repo"))
    return Built(TufDir(dest / "tuf"), Repository(dest / "repo"), b.wheels, b.models, b.wheelhouse)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _first_root(b: Built) -> bytes:
    return (b.repo.metadata_dir / "1.root.json").read_bytes()


def test_a_device_with_the_first_root_downloads_and_verifies_a_release(built: Built, tmp_path: Path) -> None:
    with serve(built.repo.path) as url:
        client = updater(tmp_path, _first_root(built), url)
        client.refresh()
        info = client.get_targetinfo("agent/1.1.0/manifest.json")
        assert info is not None
        manifest = json.loads(Path(client.download_target(info, str(tmp_path / "manifest.json"))).read_bytes())
        assert manifest["version"] == "1.1.0" and manifest["min_from"] == "1.0.0"
        assert manifest["requirement"] == "xueliang-edge[agent,pi]==1.1.0"
        wanted = {manifest["agent"]: built.wheels["1.1.0"], manifest["model"]: built.models["1.1.0"]}
        for path in manifest["platforms"]["x86_64"]:
            wanted[path] = built.wheelhouse / path.removeprefix("wheels/")
        for path, source in wanted.items():
            target = client.get_targetinfo(path)
            assert target is not None, path
            got = Path(client.download_target(target, str(tmp_path / Path(path).name)))
            assert got.read_bytes() == source.read_bytes(), path
    # Each platform gets its own compiled wheels and the shared pure-Python one.
    x86, arm = manifest["platforms"]["x86_64"], manifest["platforms"]["aarch64"]
    assert any("x86_64" in p and p.startswith("wheels/pyyaml-") for p in x86), x86
    assert any("aarch64" in p and p.startswith("wheels/pyyaml-") for p in arm), arm
    assert not any("aarch64" in p for p in x86) and not any("x86_64" in p for p in arm)
    assert [p for p in x86 if "paho" in p] == [p for p in arm if "paho" in p] != []


def test_the_repository_is_laid_out_as_docs_ota_says(built: Built) -> None:
    md = built.repo.metadata_dir
    assert (md / "root.json").read_bytes() == (md / "1.root.json").read_bytes() == built.tuf.trusted_root.read_bytes()
    root = built.repo.root().signed
    assert root.consistent_snapshot is True
    now = dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=364) < root.expires - now <= dt.timedelta(days=365)
    assert dt.timedelta(days=89) < built.repo.targets().signed.expires - now <= TARGETS_EXPIRY
    assert dt.timedelta(days=6) < built.repo.snapshot().signed.expires - now <= dt.timedelta(days=7)
    assert dt.timedelta(hours=23) < built.repo.timestamp().signed.expires - now <= dt.timedelta(days=1)
    for path, target in built.repo.targets().signed.targets.items():
        assert built.repo.target_file(path, target.hashes["sha256"]).is_file(), path
    for key in (built.tuf.offline / "root.pem", built.tuf.offline / "targets.pem", built.tuf.online / "timestamp.pem"):
        assert key.stat().st_mode & 0o777 == 0o600, key
    listed = releases(built.repo)
    assert [r.version for r in listed] == ["1.0.0", "1.1.0"]
    assert listed[1].deltas == 2 and listed[0].deltas == 0


def test_deltas_round_trip_and_are_smaller(built: Built, tmp_path: Path) -> None:
    targets = built.repo.targets().signed.targets
    for kind, sources in (("agent", built.wheels), ("model", built.models)):
        old, new = sources["1.0.0"].read_bytes(), sources["1.1.0"].read_bytes()
        to = (
            f"agent/1.1.0/{built.wheels['1.1.0'].name}"
            if kind == "agent"
            else "agent/1.1.0/person_ssdlite_uint8.tflite"
        )
        path = delta_path(_sha(old), to)
        delta = targets[path]
        assert delta.custom == {"xl_delta": {"from_sha256": _sha(old), "to": to}}
        assert delta.length < targets[to].length
        with serve(built.repo.path) as url:
            client = updater(tmp_path / kind, _first_root(built), url)
            client.refresh()
            info = client.get_targetinfo(path)
            assert info is not None
            patch = Path(client.download_target(info, str(tmp_path / f"{kind}.bsdiff4"))).read_bytes()
        assert apply_delta(old, patch, targets[to].hashes["sha256"]) == new
        with pytest.raises(ValueError, match="wrong base"):
            apply_delta(new, patch, targets[to].hashes["sha256"])
    agent_delta = targets[
        delta_path(_sha(built.wheels["1.0.0"].read_bytes()), f"agent/1.1.0/{built.wheels['1.1.0'].name}")
    ]
    assert agent_delta.length * 50 < targets[f"agent/1.1.0/{built.wheels['1.1.0'].name}"].length


def test_a_tampered_target_is_refused(built: Built, tmp_path: Path) -> None:
    b = _linked_copy(built, tmp_path)
    path = f"agent/1.1.0/{b.wheels['1.1.0'].name}"
    stored = b.repo.target_file(path, b.repo.targets().signed.targets[path].hashes["sha256"])
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.unlink()  # a hard link: replace it, leave the module's repository alone
    stored.write_bytes(bytes(data))
    with serve(b.repo.path) as url:
        client = updater(tmp_path / "client", _first_root(b), url)
        client.refresh()
        info = client.get_targetinfo(path)
        assert info is not None
        with pytest.raises(LengthOrHashMismatchError):
            client.download_target(info, str(tmp_path / "agent.whl"))


def test_an_expired_timestamp_is_refused(built: Built, tmp_path: Path) -> None:
    b = _linked_copy(built, tmp_path)
    refresh_timestamp(b.repo, b.tuf.online, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    with serve(b.repo.path) as url, pytest.raises(ExpiredMetadataError):
        updater(tmp_path / "client", _first_root(b), url).refresh()
    # ...and the hub's next refresh mends it.
    refresh_timestamp(b.repo, b.tuf.online)
    with serve(b.repo.path) as url:
        updater(tmp_path / "client2", _first_root(b), url).refresh()


def test_targets_key_rotation(built: Built, tmp_path: Path) -> None:
    b = _linked_copy(built, tmp_path)
    old_key = load_signer(b.tuf.offline / "targets.pem")
    before = b.repo.targets().signed.version
    with serve(b.repo.path) as url:
        already = updater(tmp_path / "already", _first_root(b), url)  # a device that updated before the rotation
        already.refresh()
    report = rotate_key(b.repo, b.tuf, "targets")
    assert report.root_version == 2 and report.old_keyids == (old_key.public_key.keyid,)
    new_root = b.repo.root(2)
    assert len(new_root.signatures) == 1  # the root key did not change: its one signature satisfies roots 1 and 2
    assert b.tuf.trusted_root.read_bytes() == (b.repo.metadata_dir / "2.root.json").read_bytes()
    assert b.repo.targets().signed.version == before + 1
    path = f"agent/1.1.0/{b.wheels['1.1.0'].name}"
    with serve(b.repo.path) as url:
        for name in ("fresh", "already"):
            client = updater(tmp_path / name, _first_root(b), url)
            client.refresh()
            info = client.get_targetinfo(path)
            assert info is not None
            got = Path(client.download_target(info, str(tmp_path / f"{name}.whl")))
            assert got.read_bytes() == b.wheels["1.1.0"].read_bytes()

    # Targets signed with the retired key, published with a fresh snapshot: refused.
    forged = Metadata[Targets].from_bytes(b.repo.targets().to_bytes())
    forged.signed.version += 1
    forged.signatures.clear()
    forged.sign(old_key)
    b.repo.write(forged)
    refresh_snapshot(b.repo, b.tuf.online)
    with serve(b.repo.path) as url:
        for name in ("fresh2", "already"):
            with pytest.raises(UnsignedMetadataError):
                updater(tmp_path / name, _first_root(b), url).refresh()


def test_root_key_rotation_is_signed_by_old_and_new_keys(built: Built, tmp_path: Path) -> None:
    b = _linked_copy(built, tmp_path)
    old = load_signer(b.tuf.offline / "root.pem").public_key.keyid
    report = rotate_key(b.repo, b.tuf, "root")
    new_root = b.repo.root(report.root_version)
    assert set(new_root.signatures) == {old, report.new_keyid}
    assert (b.tuf.retired / f"root-{old[:16]}.pem").is_file()
    rotate_key(b.repo, b.tuf, "timestamp")  # signed by the new root key alone now
    with serve(b.repo.path) as url:
        client = updater(tmp_path / "client", _first_root(b), url)
        client.refresh()
        assert client.get_targetinfo("agent/1.0.0/manifest.json") is not None
    assert b.repo.root().signed.version == 3


def test_online_key_the_root_does_not_trust_is_refused_with_its_path(built: Built, tmp_path: Path) -> None:
    b = _linked_copy(built, tmp_path)
    stale = tmp_path / "hub-keys"
    shutil.copytree(b.tuf.online, stale)
    rotate_key(b.repo, b.tuf, "snapshot")
    with pytest.raises(RepositoryError, match=r"hub-keys/snapshot.pem: root version 2 does not trust this key"):
        refresh_snapshot(b.repo, stale)


def test_online_versions_keep_rising_across_office_and_hub(built: Built, tmp_path: Path) -> None:
    b = _linked_copy(built, tmp_path)
    first = b.repo.timestamp().signed.version
    versions = [refresh_timestamp(b.repo.path, b.tuf.online) for _ in range(3)]
    assert first < versions[0] < versions[1] < versions[2]
    snap = b.repo.snapshot().signed.version
    assert refresh_snapshot(b.repo.path, b.tuf.online) > snap


def test_build_refusals_name_what_is_wrong(built: Built, tmp_path: Path) -> None:
    b = _linked_copy(built, tmp_path)
    ok = ReleaseInput("1.2.0", b.wheels["1.1.0"], b.wheelhouse, MODEL, "1.0.0", ("x86_64",))
    with pytest.raises(RepositoryError, match=re.escape("must be named xueliang_edge-1.2.0-py3-none-any.whl")):
        add_release(b.repo, b.tuf, ok)
    with pytest.raises(RepositoryError, match="already in"):
        add_release(b.repo, b.tuf, ReleaseInput("1.1.0", b.wheels["1.1.0"], b.wheelhouse, MODEL, "1.0.0"))
    with pytest.raises(RepositoryError, match=re.escape("--min-from '1.x' is not a normalised PEP 440")):
        add_release(b.repo, b.tuf, ReleaseInput("1.1.0", b.wheels["1.1.0"], b.wheelhouse, MODEL, "1.x"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RepositoryError, match="no wheel installable on aarch64"):
        add_release(
            b.repo,
            b.tuf,
            ReleaseInput("1.1.0rc1", _renamed(b.wheels["1.1.0"], tmp_path, "1.1.0rc1"), empty, MODEL, "1.0.0"),
        )
    with pytest.raises(RepositoryError, match="keys already exist"):
        init_repository(b.tuf, Repository(tmp_path / "other"))


def _renamed(wheel: Path, where: Path, version: str) -> Path:
    dest = where / f"xueliang_edge-{version}-py3-none-any.whl"
    shutil.copy(wheel, dest)
    return dest


def test_cli_keys_init_build_list_and_errors(built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert main(["release", "keys", "init", "--state", str(state)]) == 0
    assert main(["release", "keys", "init", "--state", str(state)]) == 2
    assert "keys already exist" in capsys.readouterr().err
    args = ["--state", str(state), "--wheelhouse", str(built.wheelhouse), "--platform", "x86_64"]
    for version, min_from in (("1.0.0", "0.1.0"), ("1.1.0", "1.0.0")):
        rc = main(["release", "build", *args, "--version", version, "--wheel", str(built.wheels[version]),
                   "--model", str(built.models[version]), "--min-from", min_from])  # fmt: skip
        assert rc == 0
    out = capsys.readouterr().out
    assert "release 1.1.0: targets version 3" in out
    assert "agent/1.1.0/person_ssdlite_uint8.tflite" in out and "not smaller" not in out
    assert main(["release", "list", "--repo", str(state / "tuf" / "repo")]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed[1:3]] == ["1.0.0", "1.1.0"]
    assert listed[3:] == ["", "floor (xl-provision release floor): none"]
    assert main(["release", "rotate-key", "--state", str(state), "--role", "timestamp"]) == 0
    assert "copy " in capsys.readouterr().out
    assert main(["release", "list", "--repo", str(tmp_path / "nowhere")]) == 2
    assert "no repository here" in capsys.readouterr().err


def test_the_floor_is_a_signed_policy_devices_can_verify(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from provisioning.release.policy import POLICY_PATH, current_floor, set_floor

    b = _linked_copy(built, tmp_path)
    with pytest.raises(RepositoryError, match=r"floor 1\.0\.5: no such release .*releases: 1\.0\.0, 1\.1\.0"):
        set_floor(b.repo, b.tuf, "1.0.5")
    before = b.repo.targets().signed.version
    assert main(["release", "floor", "--state", str(b.tuf.path.parent), "--repo", str(b.repo.path),
                 "--version", "1.1.0"]) == 0  # fmt: skip
    assert "floor 1.1.0" in capsys.readouterr().out
    assert current_floor(b.repo) == "1.1.0" and b.repo.targets().signed.version == before + 1
    with serve(b.repo.path) as url:
        client = updater(tmp_path / "client", _first_root(b), url)
        client.refresh()
        info = client.get_targetinfo(POLICY_PATH)
        assert info is not None
        got = client.download_target(info, str(tmp_path / "policy.json"))
    assert json.loads(Path(got).read_text()) == {"format": 1, "floor": "1.1.0"}
    set_floor(b.repo, b.tuf, None)
    assert current_floor(b.repo) is None
