"""agent.update.install the way a device runs it: the system python, every
dependency from the release's own wheels, no index, no shortcut.

The other updater tests install the agent wheel alone over this venv's
packages, for speed; this one makes the venv a device would have, from a real
x86_64 wheelhouse of the agent extra (downloaded once into the test cache,
outside the repository), and then uses it: the new venv's agent reports the
release's version and loads the release's own model through LiteRT.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.update.install import InstallOptions, install_release, staged
from agent.update.layout import Layout
from tests.support.release_kit import CACHE, MODEL
from tests.support.update_release import build_wheel

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
VERSION = "0.7.0"

pytestmark = pytest.mark.slow


def _wheelhouse(agent_wheel: Path) -> Path:
    """The agent extra's dependency wheels for this machine, pinned by constraints.txt."""
    # Keyed by the pins and the extras: a cache filled before a dependency was added must not be used.
    key = hashlib.sha256((ROOT / "constraints.txt").read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    house = CACHE / f"wheelhouse-agent-full-{key[:12]}"
    done = house / ".complete"
    if not done.exists():
        house.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-c", str(ROOT / "constraints.txt"),
             "-d", str(house), f"{agent_wheel}[agent]"],
            check=True,
            timeout=900,
        )  # fmt: skip
        for own in house.glob("xueliang_edge-*.whl"):
            own.unlink()
        done.touch()
    return house


def _stage(staging: Path, wheel: Path, house: Path) -> Path:
    rel = staging / "agent" / VERSION
    rel.mkdir(parents=True)
    shutil.copy(wheel, rel / wheel.name)
    shutil.copy(MODEL, rel / MODEL.name)
    deps = sorted(house.glob("*.whl"))
    (staging / "wheels").mkdir()
    for w in deps:
        shutil.copy(w, staging / "wheels" / w.name)
    manifest = {
        "format": 1,
        "version": VERSION,
        "min_from": "0.1.0",
        "released_ms": 1764138000000,
        "agent": f"agent/{VERSION}/{wheel.name}",
        "model": f"agent/{VERSION}/{MODEL.name}",
        "platforms": {"x86_64": [f"wheels/{w.name}" for w in deps]},
        "requirement": f"xueliang-edge[agent]=={VERSION}",
    }
    (rel / "manifest.json").write_text(json.dumps(manifest))
    return staging


@pytest.mark.skipif(not Path(SYSTEM_PYTHON).is_file(), reason="needs the system python3 a device has")
def test_a_release_installs_offline_with_every_dependency_and_runs(tmp_path: Path) -> None:
    wheel = build_wheel(VERSION, tmp_path / "build")
    staging = _stage(tmp_path / "staging", wheel, _wheelhouse(wheel))
    layout = Layout(tmp_path / "opt", tmp_path / "upd")
    manifest, files = staged(staging, VERSION)
    rel = install_release(layout, manifest, files, InstallOptions(python=SYSTEM_PYTHON, machine="x86_64"))
    assert rel == layout.releases / VERSION

    version = subprocess.run([str(rel / "venv" / "bin" / "xl-agent"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"xl-agent {VERSION}", version.stderr
    probe = (
        "import json, numpy as np, sys\n"
        "from agent.vision.detector import PersonDetector\n"
        "d = PersonDetector(num_threads=1)\n"
        "found = d.detect(np.zeros((720, 1280, 3), np.uint8))\n"
        "print(json.dumps({'model': str(d.model_path), 'runtime': d.runtime_name, 'found': len(found),"
        " 'prefix': sys.prefix}))\n"
    )
    out = subprocess.run([str(rel / "venv" / "bin" / "python"), "-I", "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["prefix"] == str(rel / "venv")
    assert result["model"] == str(rel / "model" / MODEL.name)  # the release's own model target
    assert result["runtime"] == "ai-edge-litert" and result["found"] == 0
    # Offline means offline: nothing came from outside the release's files/.
    installed = {p.name for p in (rel / "files").iterdir()}
    assert {w.name for w in (staging / "wheels").iterdir()} <= installed
