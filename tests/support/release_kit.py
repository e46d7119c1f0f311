"""Real parts for the release tooling's tests and bench: agent wheels of this
repository at two versions, real dependency wheels for two platforms, and the
repository served over plain HTTP to python-tuf's own client.

Wheels are built from a copy of the tree (as tools/pi-wheels.sh does), so the
checkout gets no build/ folder; dependency wheels come from the package index
once and are kept in ~/.cache/xueliang-edge-tests/ (outside the repository).
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuf.ngclient import Updater

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XL_TEST_CACHE", Path.home() / ".cache" / "xueliang-edge-tests"))
MODEL = ROOT / "agent" / "models" / "person_ssdlite_uint8.tflite"
# Small real wheels with compiled parts (PyYAML) and without (paho-mqtt), pinned as constraints.txt pins them.
DEPENDENCIES = ("PyYAML==6.0.4", "paho-mqtt==2.2.0")
PLATFORM_TAGS = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}
_EXCLUDE = {"var", "tests", "bench", "docs", "build", "__pycache__"}


def _copy_tree(dest: Path) -> None:
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if any(p in _EXCLUDE or p.startswith(".") or p.endswith(".egg-info") for p in parts[1:]):
            return None
        return info

    archive = dest.with_suffix(".tar")
    with tarfile.open(archive, "w") as tar:
        tar.add(ROOT, arcname="tree", filter=keep)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()


def build_agent_wheel(out: Path, version: str, change: str = "", code: str = "") -> Path:
    """This repository's wheel at ``version``: the distribution and ``agent.__version__`` (what the
    agent reports as health ``ver``, and what the device's install checks) both say ``version``.

    ``change`` is appended to agent/health.py as a comment (a code-only release that works);
    ``code`` is appended to agent/runtime.py as code, e.g. ``raise SystemExit(1)`` for a release
    whose ``xl-agent run`` dies at every start (``import agent`` alone still works)."""
    work = out / f"src-{version}"
    work.mkdir(parents=True)
    _copy_tree(work)
    tree = work / "tree"
    pyproject = tree / "pyproject.toml"
    text = pyproject.read_text()
    assert 'version = "0.1.0"' in text, "pyproject's version line moved; update release_kit"
    pyproject.write_text(text.replace('version = "0.1.0"', f'version = "{version}"', 1))
    init = tree / "agent" / "__init__.py"
    init_text = init.read_text()
    assert '__version__ = "0.1.0"' in init_text, "agent.__version__ moved; update release_kit"
    init.write_text(init_text.replace('__version__ = "0.1.0"', f'__version__ = "{version}"', 1))
    if change:
        with (tree / "agent" / "health.py").open("a") as fh:
            fh.write(f"\n# {change}\n")
    if code:
        with (tree / "agent" / "runtime.py").open("a") as fh:
            fh.write(f"\n{code}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(tree)],
        check=True,
        capture_output=True,
    )
    wheel = out / f"xueliang_edge-{version}-py3-none-any.whl"
    assert wheel.is_file(), sorted(p.name for p in out.iterdir())
    return wheel


def dependency_wheels() -> Path:
    """A wheelhouse with DEPENDENCIES for x86_64 and aarch64 (CPython 3.11), downloaded once."""
    house = CACHE / "wheelhouse"
    marker = house / ".complete"
    if marker.exists():
        return house
    house.mkdir(parents=True, exist_ok=True)
    for tag in PLATFORM_TAGS.values():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--platform", tag,
             "--python-version", "3.11", "--implementation", "cp", "-d", str(house), *DEPENDENCIES],
            check=True,
            capture_output=True,
        )  # fmt: skip
    marker.touch()
    return house


class _Quiet(http.server.SimpleHTTPRequestHandler):
    counts: dict[str, int] | None = None

    def log_message(self, format: str, *args: object) -> None:
        pass

    def copyfile(self, source: Any, outputfile: Any) -> None:
        data = source.read()
        outputfile.write(data)
        if self.counts is not None:
            self.counts[self.path] = self.counts.get(self.path, 0) + len(data)


@contextmanager
def serve(directory: Path, counts: dict[str, int] | None = None) -> Iterator[str]:
    """Serve ``directory`` read-only over HTTP on 127.0.0.1; yields the base URL.

    ``counts``, if given, gets the body bytes sent per URL path."""
    handler = type("Handler", (_Quiet,), {"counts": counts})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def updater(client_dir: Path, trusted_root: bytes, base_url: str) -> Updater:
    """python-tuf's client, trusting only ``trusted_root`` (what a device's bundle gives it)."""
    metadata = client_dir / "metadata"
    targets = client_dir / "targets"
    metadata.mkdir(parents=True, exist_ok=True)
    targets.mkdir(parents=True, exist_ok=True)
    return Updater(
        str(metadata),
        f"{base_url}/metadata/",
        str(targets),
        f"{base_url}/targets/",
        bootstrap=trusted_root,
    )
