"""Bytes per device for a typical agent-only update (issue 17): full target versus bsdiff4 delta.

Two releases of this repository's own wheel (the second with a one-line code
change, the model unchanged) are built into a real repository with
``provisioning.release``; a device that installed the first one then runs
python-tuf's client against the repository over HTTP, and every body byte
the server sends is counted: the TUF metadata of the check, the manifest, and
either the full agent wheel or the delta. The dependency wheels and the
model keep their hashes, so the device fetches none of them.

    .venv/bin/python bench/update_bytes.py [--wheelhouse DIR]

``--wheelhouse``: aarch64 wheels from tools/pi-wheels.sh, so the targets
metadata is as large as a real release's (default: two small wheels).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from _common import merge_results, print_table

from provisioning.release.build import ReleaseInput, add_release
from provisioning.release.deltas import delta_path
from provisioning.release.repo import TufDir, init_repository
from tests.support.release_kit import MODEL, build_agent_wheel, dependency_wheels, serve, updater
from xlrelease.store import Repository


def _fetch(client, path: str, dest: Path) -> None:  # type: ignore[no-untyped-def]
    info = client.get_targetinfo(path)
    assert info is not None, path
    client.download_target(info, str(dest / Path(path).name))


def run(wheelhouse: Path) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        old = build_agent_wheel(work / "wheels", "0.9.0")
        new = build_agent_wheel(work / "wheels", "0.9.1", change="a one-line fix")
        tuf = TufDir(work / "tuf")
        repo = init_repository(tuf, Repository(tuf.default_repo))
        add_release(repo, tuf, ReleaseInput("0.9.0", old, wheelhouse, MODEL, "0.1.0", ("aarch64",)))
        root = (repo.metadata_dir / "1.root.json").read_bytes()

        fresh: dict[str, int] = {}
        with serve(repo.path, fresh) as url:
            device = updater(work / "device", root, url)
            device.refresh()
            manifest_path = "agent/0.9.0/manifest.json"
            _fetch(device, manifest_path, work)
            manifest = json.loads((work / "manifest.json").read_bytes())
            for path in [manifest["agent"], manifest["model"], *manifest["platforms"]["aarch64"]]:
                _fetch(device, path, work)

        started = time.perf_counter()
        report = add_release(repo, tuf, ReleaseInput("0.9.1", new, wheelhouse, MODEL, "0.9.0", ("aarch64",)))
        build_s = time.perf_counter() - started
        agent_path = f"agent/0.9.1/{new.name}"
        targets = repo.targets().signed.targets
        delta = delta_path(targets[f"agent/0.9.0/{old.name}"].hashes["sha256"], agent_path)

        figures: dict[str, dict[str, int]] = {}
        for how, target in (("full", agent_path), ("delta", delta)):
            counts: dict[str, int] = {}
            with serve(repo.path, counts) as url:
                # The device's trusted metadata is what it kept from installing 0.9.0.
                client_dir = work / f"device-{how}"
                shutil.copytree(work / "device", client_dir)
                client = updater(client_dir, root, url)
                client.refresh()
                _fetch(client, "agent/0.9.1/manifest.json", client_dir)
                _fetch(client, target, client_dir)
            figures[how] = counts

    def metadata(counts: dict[str, int]) -> int:
        return sum(n for path, n in counts.items() if path.startswith("/metadata/"))

    def total(counts: dict[str, int]) -> int:
        return sum(counts.values())

    full, dl = figures["full"], figures["delta"]
    agent_row = next(r for r in report.sizes if r.target == agent_path)
    return {
        "update_agent_only_full_bytes": total(full),
        "update_agent_only_delta_bytes": total(dl),
        "update_agent_only_metadata_bytes": metadata(dl),
        "update_agent_wheel_bytes": agent_row.full,
        "update_agent_delta_bytes": agent_row.delta or 0,
        "update_fresh_install_bytes": total(fresh),
        "update_fresh_install_metadata_bytes": metadata(fresh),
        "update_release_build_s": round(build_s, 2),
        "update_bench_wheelhouse_wheels": len(list(wheelhouse.glob("*.whl"))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheelhouse", type=Path, help="aarch64 wheels (tools/pi-wheels.sh); default: two small wheels")
    args = ap.parse_args()
    figures = run(args.wheelhouse or dependency_wheels())
    merge_results(figures)
    full, delta = figures["update_agent_only_full_bytes"], figures["update_agent_only_delta_bytes"]
    print_table(
        "Bytes per device, agent-only update (one-line code change, model and wheels unchanged)",
        [
            ("full: metadata + manifest + wheel", full, "bytes"),
            ("delta: metadata + manifest + bsdiff4", delta, f"bytes ({full / delta:,.0f}x fewer)"),
            ("  of which TUF metadata", figures["update_agent_only_metadata_bytes"], "bytes"),
            ("agent wheel", figures["update_agent_wheel_bytes"], "bytes"),
            ("its delta", figures["update_agent_delta_bytes"], "bytes"),
            ("fresh install of a release", figures["update_fresh_install_bytes"], "bytes (aarch64, all targets)"),
            ("  of which TUF metadata", figures["update_fresh_install_metadata_bytes"], "bytes"),
            ("release build with delta", figures["update_release_build_s"], "s"),
            ("wheels in the wheelhouse", figures["update_bench_wheelhouse_wheels"], ""),
        ],
    )


if __name__ == "__main__":
    main()
