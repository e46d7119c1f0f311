"""Helpers of the updater's tests (tests/agent/test_update_*.py): real wheels, real releases.

Wheels are this repository built with ``pip wheel --no-deps`` from a copy whose
version is changed (and, for a broken release, whose ``xl-agent`` exits 1), so
each release is a distinct distribution pip really installs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from agent.update.layout import Layout

ROOT = Path(__file__).resolve().parents[2]
GUARD = ROOT / "agent" / "update" / "guard.py"
PACKAGES = ("protocol", "agent", "hub", "provisioning", "sim", "firmware_config", "xlconfig")
BROKEN_MAIN = """

def main(argv: list[str] | None = None) -> int:  # the tests' broken release: every start fails
    sys.stderr.write("xl-agent: this release is broken on purpose\\n")
    return 1
"""


def build_wheel(version: str, out: Path, *, broken: bool = False) -> Path:
    src = out / f"src-{version}"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tflite")  # the model is its own target
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore)
    shutil.copy(ROOT / "README.md", src / "README.md")
    pyproject = (ROOT / "pyproject.toml").read_text()
    (src / "pyproject.toml").write_text(pyproject.replace('version = "0.1.0"', f'version = "{version}"', 1))
    init = src / "agent" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', f'__version__ = "{version}"'))
    if broken:
        cli = src / "agent" / "cli.py"
        cli.write_text(
            cli.read_text().replace('\n\nif __name__ == "__main__":', BROKEN_MAIN + '\n\nif __name__ == "__main__":')
        )
    wheels = out / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", str(wheels)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(src)
    (wheel,) = wheels.glob(f"xueliang_edge-{version}-*.whl")
    return wheel


def stage(staging: Path, version: str, wheel: Path, model: bytes = b"model bytes") -> Path:
    """A staging folder as the TUF client leaves it: targets under their target paths."""
    rel = staging / "agent" / version
    rel.mkdir(parents=True, exist_ok=True)
    shutil.copy(wheel, rel / wheel.name)
    (rel / "person_ssdlite_uint8.tflite").write_bytes(model)
    manifest = {
        "format": 1,
        "version": version,
        "min_from": "0.1.0",
        "released_ms": 1764138000000,
        "agent": f"agent/{version}/{wheel.name}",
        "model": f"agent/{version}/person_ssdlite_uint8.tflite",
        "platforms": {"x86_64": [], "aarch64": []},
        "requirement": f"xueliang-edge=={version}",
    }
    (rel / "manifest.json").write_text(json.dumps(manifest))
    return staging


def fake_release(layout: Layout, version: str) -> Path:
    """An installed-looking release without a venv: for the state machine's tests, where what
    runs does not matter and a real venv per case would cost seconds each."""
    rel = layout.releases / version
    (rel / "venv" / "bin").mkdir(parents=True)
    (rel / "venv" / "bin" / "xl-agent").write_text("#!/bin/sh\nexit 0\n")
    (rel / "manifest.json").write_text(json.dumps({"format": 1, "version": version}))
    return rel


def install_guard(layout: Layout) -> Path:
    layout.root.mkdir(parents=True, exist_ok=True)
    shutil.copy(GUARD, layout.guard)
    return layout.guard


def run_guard(layout: Layout, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The guard as systemd runs it: the lone file, by a python that cannot see the agent
    (-I: no current directory, no PYTHONPATH, no user site)."""
    return subprocess.run(
        [sys.executable, "-I", str(layout.guard), "--root", str(layout.root), "--state-dir", str(layout.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd="/",
    )


def state_doc(layout: Layout) -> dict[str, object]:
    return dict(json.loads(layout.state_file.read_text()))
