"""The release tooling's smaller parts: wheel selection by platform, the trusted
root in SD-card bundles, and the import rule that lets the hub sign without provisioning."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from provisioning.commands import ca_init, open_db
from provisioning.enroll import Enroller
from provisioning.release import wheels
from provisioning.release.repo import TufDir, init_repository
from provisioning.state import State
from tests.support.provisioned_county import spec
from xlrelease.store import Repository

ROOT = Path(__file__).resolve().parents[2]

NAMES = {
    "PyYAML-6.0.4-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl": {"aarch64"},
    "pyyaml-6.0.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": {"x86_64"},
    "cryptography-50.0.2-cp311-abi3-manylinux2014_aarch64.manylinux_2_17_aarch64.whl": {"aarch64"},
    "cryptography-50.0.2-cp37-abi3-manylinux_2_34_x86_64.whl": {"x86_64"},
    "paho_mqtt-2.2.0-py3-none-any.whl": {"aarch64", "x86_64"},
    "six-1.17.0-py2.py3-none-any.whl": {"aarch64", "x86_64"},
    # Not for a Bookworm Pi: another Python, a newer glibc, musl, another OS.
    "numpy-2.4.6-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl": set(),
    "numpy-2.4.6-cp311-cp311-manylinux_2_39_aarch64.whl": set(),
    "numpy-2.4.6-cp311-cp311-musllinux_1_2_aarch64.whl": set(),
    "numpy-2.4.6-cp311-cp311-win_amd64.whl": set(),
    "xueliang_edge-1.0.0-py3-none-any.whl": set(),  # our own wheel is its own target
}


def test_wheels_are_chosen_by_their_platform_tags(tmp_path: Path) -> None:
    for name in NAMES:
        (tmp_path / name).write_bytes(b"")
    for machine in wheels.PLATFORMS:
        chosen = {p.name for p in wheels.select(tmp_path, machine)}
        assert chosen == {n for n, machines in NAMES.items() if machine in machines}, machine


def test_wheel_selection_refuses_unknown_platforms_and_names(tmp_path: Path) -> None:
    with pytest.raises(wheels.WheelError, match="platform 'armv7l': releases are for aarch64, x86_64"):
        wheels.select(tmp_path, "armv7l")
    (tmp_path / "not-a-wheel.whl").write_bytes(b"")
    with pytest.raises(wheels.WheelError, match=r"not-a-wheel\.whl: not a wheel filename"):
        wheels.select(tmp_path, "aarch64")


def _enroll(state: State, household: str) -> Path:
    engine = open_db(state, None)
    try:
        outcome = Enroller(state, engine).run([(None, spec(household, "g1"))])
    finally:
        engine.dispose()
    assert not outcome.errors, outcome.errors
    return state.bundle_dir(outcome.results[0].device_id)


def test_bundles_carry_the_newest_update_root_once_there_is_one(tmp_path: Path) -> None:
    state = State(tmp_path / "state")
    ca_init(state, broker_host="localhost", hostnames=[], broker_port=8883, ntp_server=None, hub_cn="hub", force=False)
    before = _enroll(state, "HA")
    assert not (before / "tuf").exists()
    tuf = TufDir(state.root / "tuf")
    repo = init_repository(tuf, Repository(tuf.default_repo))
    after = _enroll(state, "HB")
    assert (after / "tuf" / "root.json").read_bytes() == (repo.metadata_dir / "1.root.json").read_bytes()


def _absolute_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_xlrelease_imports_neither_provisioning_nor_hub() -> None:
    # The hub signs the online roles with xlrelease; provisioning imports hub, so
    # xlrelease importing provisioning would put the hub on the far side of a circle.
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "xlrelease").rglob("*.py"))
        for name in _absolute_imports(path)
        if name.split(".")[0] in ("provisioning", "hub", "agent")
    ]
    assert wrong == []
