"""agent.update.install: a real offline venv per release, idempotent, and clear refusals.

The agent wheel goes in with ``--no-deps`` into a ``--system-site-packages`` venv
of this interpreter; its dependencies come from this venv through a .pth file
(InstallOptions.extra_paths), for speed. Kills mid-install: test_update_crash.py.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from agent.update.install import InstallError, InstallOptions, install_release, staged
from agent.update.layout import Layout
from tests.support.update_release import build_wheel, stage

OPTS = InstallOptions(python=sys.executable, no_deps=True, extra_paths=(Path(sysconfig.get_paths()["purelib"]),))


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("release")
    return stage(tmp / "staging", "0.4.0", build_wheel("0.4.0", tmp / "build"))


def test_install_makes_a_release_that_runs_and_a_second_install_keeps_it(staging: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "opt", tmp_path / "upd")
    manifest, files = staged(staging, "0.4.0")
    rel = install_release(layout, manifest, files, OPTS)
    assert rel == layout.releases / "0.4.0" and layout.installed("0.4.0")
    assert sorted(p.name for p in layout.releases.iterdir()) == ["0.4.0"]  # no partial left
    assert (rel / "model" / "person_ssdlite_uint8.tflite").read_bytes() == b"model bytes"
    out = subprocess.run([str(rel / "venv" / "bin" / "xl-agent"), "--version"], capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "xl-agent 0.4.0"
    mtime = (rel / "venv" / "bin" / "xl-agent").stat().st_mtime_ns
    assert install_release(layout, manifest, files, OPTS) == rel
    assert (rel / "venv" / "bin" / "xl-agent").stat().st_mtime_ns == mtime


def test_not_enough_space_is_refused_before_anything_is_written(staging: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "opt", tmp_path / "upd")
    manifest, files = staged(staging, "0.4.0")
    with pytest.raises(InstallError, match=r"not enough free space in .*releases: the install needs \d+ MB"):
        install_release(layout, manifest, files, dataclasses.replace(OPTS, reserve_bytes=1 << 60))
    assert list(layout.releases.iterdir()) == []


def test_missing_targets_and_platforms_are_named(staging: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "opt", tmp_path / "upd")
    manifest, files = staged(staging, "0.4.0")
    del files["agent/0.4.0/person_ssdlite_uint8.tflite"]
    with pytest.raises(InstallError, match=r"missing agent/0\.4\.0/person_ssdlite_uint8\.tflite"):
        install_release(layout, manifest, files, OPTS)
    with pytest.raises(InstallError, match="has no wheels for riscv64"):
        install_release(layout, manifest, files, dataclasses.replace(OPTS, no_deps=False, machine="riscv64"))
    with pytest.raises(InstallError, match=r"no manifest for 0\.9\.0"):
        staged(staging, "0.9.0")


def test_an_agent_only_install_still_keeps_the_platform_wheels_it_was_given(staging: Path, tmp_path: Path) -> None:
    """no_deps (tests, development) installs the agent wheel alone, but files/ keeps the
    platform's dependency wheels as on a device: the next release's update copies them from
    there (agent.update.tuf_client.LocalFiles) rather than download them again, so the bytes
    an end-to-end test measures are a device's (tests/e2e/test_ota_rollout.py)."""
    copy = tmp_path / "staging"
    shutil.copytree(staging, copy)
    dep = copy / "wheels" / "dep-1.0-py3-none-any.whl"
    dep.parent.mkdir()
    dep.write_bytes(b"PK a dependency wheel")
    manifest_file = copy / "agent" / "0.4.0" / "manifest.json"
    doc = json.loads(manifest_file.read_text())
    doc["platforms"] = {platform.machine(): ["wheels/dep-1.0-py3-none-any.whl"], "riscv64": ["wheels/other.whl"]}
    manifest_file.write_text(json.dumps(doc))
    layout = Layout(tmp_path / "opt", tmp_path / "upd")
    manifest, files = staged(copy, "0.4.0")
    rel = install_release(layout, manifest, files, OPTS)
    assert sorted(p.name for p in (rel / "files").iterdir()) == sorted(
        ["dep-1.0-py3-none-any.whl", "person_ssdlite_uint8.tflite", "xueliang_edge-0.4.0-py3-none-any.whl"]
    )
    assert (rel / "files" / dep.name).read_bytes() == dep.read_bytes()
