"""The ``xl-provision release …`` commands: argument parsing and what they print."""

from __future__ import annotations

import argparse
from pathlib import Path

from provisioning.release.build import ReleaseInput, ReleaseReport, add_release
from provisioning.release.listing import releases
from provisioning.release.policy import current_floor, set_floor
from provisioning.release.repo import TufDir, init_repository
from provisioning.release.rotate import rotate_key
from provisioning.release.wheels import PLATFORMS
from xlrelease.keys import ROLES
from xlrelease.store import Repository, RepositoryError


class ReleaseUsageError(RuntimeError):
    pass


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    rel_parser = sub.add_parser(
        "release", parents=[common], help="signed agent updates: the TUF repository (docs/ota.md)"
    )
    rel = rel_parser.add_subparsers(dest="release_command", metavar="ACTION")
    repo_help = "the repository folder (default: DIR/tuf/repo of --state)"

    keys_parser = rel.add_parser("keys", parents=[common], help="the repository's signing keys")
    keys = keys_parser.add_subparsers(dest="keys_command", metavar="ACTION")
    ki = keys.add_parser("init", parents=[common], help="new keys and version 1 of the repository")
    ki.add_argument("--repo", type=Path, metavar="DIR", help=repo_help)

    bd = rel.add_parser("build", parents=[common], help="add and sign a release")
    bd.add_argument("--repo", type=Path, metavar="DIR", help=repo_help)
    bd.add_argument("--version", dest="release_version", required=True, metavar="V", help="its PEP 440 version")
    bd.add_argument("--wheel", type=Path, required=True, metavar="AGENT.whl", help="xueliang_edge-V-py3-none-any.whl")
    bd.add_argument(
        "--wheelhouse", type=Path, required=True, metavar="DIR", help="dependency wheels (tools/pi-wheels.sh)"
    )
    bd.add_argument("--model", type=Path, required=True, metavar="PATH", help="the .tflite person model")
    bd.add_argument("--min-from", required=True, metavar="V0", help="the oldest running version that may update to it")
    machines = ", ".join(PLATFORMS)
    bd.add_argument("--platform", action="append", choices=PLATFORMS, metavar="MACHINE",
                    help=f"platform.machine() of the devices, repeat ({machines}; default aarch64)")  # fmt: skip

    rk = rel.add_parser("rotate-key", parents=[common], help="replace one role's key (a new root version)")
    rk.add_argument("--repo", type=Path, metavar="DIR", help=repo_help)
    rk.add_argument("--role", required=True, choices=ROLES)

    fl = rel.add_parser("floor", parents=[common], help="the lowest version any device may install (signed offline)")
    fl.add_argument("--repo", type=Path, metavar="DIR", help=repo_help)
    group = fl.add_mutually_exclusive_group(required=True)
    group.add_argument("--version", dest="floor_version", metavar="V", help="a release in the repository")
    group.add_argument("--clear", action="store_true", help="no floor")

    ls = rel.add_parser("list", parents=[common], help="the releases in a repository")
    ls.add_argument("--repo", type=Path, metavar="DIR", help=repo_help)


def _tuf(args: argparse.Namespace) -> TufDir:
    if args.state is None:
        raise ReleaseUsageError("--state DIR is required (its tuf/ folder holds the keys), or set XL_PROVISION_STATE")
    return TufDir(Path(args.state) / "tuf")


def _repo(args: argparse.Namespace) -> Repository:
    repo_dir = getattr(args, "repo", None)
    if repo_dir is None:
        if args.state is None:
            raise ReleaseUsageError("give --repo DIR, or --state DIR whose tuf/repo is the repository")
        repo_dir = Path(args.state) / "tuf" / "repo"
    return Repository(Path(repo_dir))


def _existing(args: argparse.Namespace) -> Repository:
    repo = _repo(args)
    if not repo.exists():
        raise RepositoryError(
            f"{repo.path}: no repository here (no metadata/1.root.json); run `xl-provision release keys init`"
        )
    return repo


def size_table(report: ReleaseReport) -> list[str]:
    lines = [f"{'target':<60} {'from':<10} {'full':>12} {'delta':>12}"]
    for row in report.sizes:
        shown = "same bytes" if row.delta == 0 else "not smaller" if row.delta is None else f"{row.delta:,}"
        lines.append(f"{row.target:<60} {row.base:<10} {row.full:>12,} {shown:>12}")
    return lines


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    action = args.release_command
    if action == "keys" and args.keys_command == "init":
        tuf = _tuf(args)
        repo = init_repository(tuf, _repo(args))
        print(f"offline keys (keep off the network): {tuf.offline}")
        print(f"online keys (copy to the hub's updates.keys_dir): {tuf.online}")
        print(f"repository: {repo.path}")
        print(f"trusted root for SD-card bundles: {tuf.trusted_root}")
        return 0
    if action == "build":
        spec = ReleaseInput(
            version=args.release_version,
            agent_wheel=args.wheel,
            wheelhouse=args.wheelhouse,
            model=args.model,
            min_from=args.min_from,
            platforms=tuple(args.platform or ["aarch64"]),
        )
        repo = _existing(args)
        report = add_release(repo, _tuf(args), spec)
        print(f"release {report.version}: targets version {report.targets_version}, "
              f"{len(report.added)} targets added, {len(report.reused)} already in the repository")  # fmt: skip
        if report.sizes:
            print("\n".join(size_table(report)))
        return 0
    if action == "rotate-key":
        rotated = rotate_key(_existing(args), _tuf(args), args.role)
        print(f"{rotated.role}: new key {rotated.new_keyid[:16]}… in {rotated.key_file}")
        print(f"root version {rotated.root_version} (devices fetch it at their next update check)")
        for path in rotated.retired:
            print(f"old key kept in {path}")
        if rotated.role in ("snapshot", "timestamp"):
            print(f"copy {rotated.key_file} to the hub's updates.keys_dir before the hub next signs")
        return 0
    if action == "floor":
        floor = None if args.clear else args.floor_version
        version = set_floor(_existing(args), _tuf(args), floor)
        print(f"floor {floor or 'cleared'}: targets version {version}; devices refuse releases below it")
        return 0
    if action == "list":
        repo = _existing(args)
        found = releases(repo)
        if not found:
            print("no releases")
            return 0
        head = f"{'version':<12} {'min from':<10} {'released (UTC)':<20} {'agent':>12} {'model':>12}"
        print(f"{head}  deltas  wheels per platform")
        for r in found:
            plats = ", ".join(f"{p}: {r.wheels[p]} ({r.wheel_bytes[p]:,} B)" for p in sorted(r.wheels))
            when = r.released.strftime("%Y-%m-%d %H:%M")
            row = f"{r.version:<12} {r.min_from:<10} {when:<20} {r.agent_bytes:>12,} {r.model_bytes:>12,}"
            print(f"{row}  {r.deltas:>6}  {plats}")
        print(f"\nfloor (xl-provision release floor): {current_floor(repo) or 'none'}")
        return 0
    parser.parse_args(["release", "--help"])
    return 2
