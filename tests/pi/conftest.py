"""Fixtures for the tests in the emulated Raspberry Pi userland (Debian bookworm arm64).

They need root, debootstrap and qemu-user-static (tools/ensure-system.sh installs
them). Without them these tests skip on a developer's machine and fail in CI
(``CI=true``), where they must run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pi.chroot import PIP_CACHE, REPO, Chroot, ChrootError, build_rootfs, missing_tools

VENV = "/opt/xueliang/venv"
WHEELS = "/opt/xl-wheels"  # the project's own wheel: xueliang-edge is not on PyPI
CONSTRAINTS = "/opt/xl-src/constraints.txt"
TESTS = "/opt/xl-tests"  # a copy of tests/ only, so `import agent` finds the installed wheel
# What the emulated part cost, printed at the end of the session (tests/pi/README.md quotes it).
TIMINGS: dict[str, float] = {}


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the emulated Pi userland is required in CI: {why}")
    pytest.skip(f"emulated Pi userland unavailable: {why}")


@pytest.fixture(scope="session")
def arm64_rootfs() -> Path:
    missing = missing_tools()
    if missing:
        _unavailable("missing " + ", ".join(missing))
    start = time.monotonic()
    try:
        path = build_rootfs("arm64")
    except (ChrootError, subprocess.TimeoutExpired) as exc:
        _unavailable(str(exc))
    TIMINGS["rootfs (build or find)"] = time.monotonic() - start
    return path


IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "var",
    "build",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "demo-state",
    "test-artifacts",
)


@pytest.fixture(scope="session")
def project_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The source the emulated Pi gets: this working tree, or with ``XL_PI_FROM=<commit>`` that
    commit (``git archive``), so that uncommitted work elsewhere in a shared tree stays out.
    The wheel, the tests copied inside and the x86 side of every comparison all come from it."""
    dest = tmp_path_factory.mktemp("project") / "src"
    commit = os.environ.get("XL_PI_FROM")
    if commit:
        dest.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    else:
        shutil.copytree(REPO, dest, ignore=IGNORED)
    return dest


def build_project_wheel(src: Path, dest: Path) -> Path:
    """The xueliang-edge wheel from ``src``, built in a copy (no build/ folder in the checkout)."""
    build = dest / "build-src"
    shutil.copytree(src, build, ignore=shutil.ignore_patterns("tests", "bench", "docs", "tools"))
    out = dest / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(build)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(build)
    return out


def clip_frames(clip: Path, dest: Path, limit: int | None = None) -> Path:
    """A clip decoded once here into JPEG files (an image-folder source), so both CPUs see the same
    pixels: FFmpeg's decoders in OpenCV's x86 and aarch64 wheels differ from the second frame of
    Megamind.avi on, while libjpeg-turbo's accurate IDCT is the same everywhere. Also the camera's
    fake where OpenCV is not installed (the README's Pi install has no replay extra)."""
    import cv2
    import simplejpeg

    dest.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(clip))
    n = 0
    while limit is None or n < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        (dest / f"{n:05d}.jpg").write_bytes(simplejpeg.encode_jpeg(rgb, quality=95, colorspace="RGB"))
        n += 1
    cap.release()
    if n == 0:
        raise RuntimeError(f"{clip}: no frames decoded")
    return dest


def copy_tests(pi: Chroot, src: Path) -> None:
    """The tests that run inside: the agent's, their support code, and tests/pi/inside."""
    keep = ["__init__.py", "agent", "support", "pi/__init__.py", "pi/inside"]
    for rel in keep:
        pi.put(f"{TESTS}/tests/{rel}", src / "tests" / rel)
    # Only the agent's own conftest (MockFactory); tests/conftest.py needs the hub's SQLAlchemy.
    ini = "[pytest]\naddopts = -ra -p no:cacheprovider --timeout=300\nmarkers =\n    slow: slow\n"
    (pi.upper / TESTS.lstrip("/") / "pytest.ini").write_text(ini)


@pytest.fixture(scope="session")
def pi(arm64_rootfs: Path, project_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chroot]:
    """The arm64 userland with the agent installed as the README tells a Pi user:
    a venv made with --system-site-packages, then
    ``pip install -c constraints.txt 'xueliang-edge[agent,pi]'``."""
    work = tmp_path_factory.mktemp("pi-arm64")
    start = time.monotonic()
    wheels = build_project_wheel(project_tree, work / "wheel")
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    chroot = Chroot(arm64_rootfs, work / "root", binds={"/root/.cache/pip": PIP_CACHE, WHEELS: wheels})
    chroot.put(CONSTRAINTS, project_tree / "constraints.txt")
    install = chroot.run(
        f"python3 -m venv --system-site-packages {VENV} && "
        f"{VENV}/bin/pip install -q --find-links {WHEELS} -c {CONSTRAINTS} 'xueliang-edge[agent,pi]'",
        timeout=1800,
    ).check()
    TIMINGS["agent install (README)"] = install.seconds
    # Beyond the README's Pi install: the replay extra (OpenCV reads the real clip) and a test runner.
    extra = chroot.run(
        f"{VENV}/bin/pip install -q --find-links {WHEELS} -c {CONSTRAINTS} "
        "'xueliang-edge[agent,pi,replay]' pytest pytest-timeout",
        timeout=1800,
    ).check()
    TIMINGS["replay extra + pytest"] = extra.seconds
    copy_tests(chroot, project_tree)
    TIMINGS["pi fixture total"] = time.monotonic() - start
    yield chroot


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_line("emulated Pi userland: " + ", ".join(f"{k} {v:.0f} s" for k, v in TIMINGS.items()))
