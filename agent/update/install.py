"""Install a verified release side by side: ``releases/<version>/`` (docs/ota.md section 3).

Input: the release manifest and its targets, already checked against the TUF
metadata (``agent.update.tuf_client`` downloads them into ``dl/`` under their
target paths; ``staged()`` reads such a folder). Output::

    releases/<v>/files/<target basename>   every target, kept as the base for the next delta
    releases/<v>/model/<model basename>
    releases/<v>/venv/                      python3 -m venv --system-site-packages, pip --no-index
    releases/<v>/manifest.json

Everything is built in ``releases/.<v>.partial/`` and renamed into place when
complete, so a kill at any point leaves nothing that looks installed (the guard
and the switch only believe ``releases/<v>/`` with a manifest and an
``xl-agent``). Running it again resumes: files already copied and intact are
kept, a venv whose build did not finish is made again (a half-run pip leaves
no record of what it did), and an installed release is returned as it is.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.update.guard import crashpoint, fsync_dir
from agent.update.layout import Layout
from agent.update.manifest import Manifest, ManifestError, parse_manifest
from agent.watchdog import child_env

VENV_DONE = ".venv-complete"
MB = 1024 * 1024
# An unpacked venv is larger than its wheels (numpy: 16 MB wheel, ~60 MB installed) plus pip
# itself (~15 MB from ensurepip): 4x the wheels and a fixed part, measured on this repo's agent
# venv (test_update_install.py prints the ratio), with room to spare.
VENV_FACTOR = 4
VENV_BASE_BYTES = 32 * MB
PIP_TIMEOUT_S = 1800  # pip under load on a Pi 3 with numpy: minutes, not hours


class InstallError(Exception):
    """The release cannot be installed; ``str()`` is the reason for health ``ue``."""


@dataclass(frozen=True)
class InstallOptions:
    python: str = "/usr/bin/python3"  # the venv's base: the system python, with apt's picamera2
    machine: str = field(default_factory=platform.machine)
    reserve_bytes: int = 64 * MB  # left free afterwards: the outbox and the journal share the card
    # Tests and development only: install the agent wheel alone, and see another environment's
    # packages through a .pth file (a venv made from a venv does not see its parent's packages).
    no_deps: bool = False
    extra_paths: tuple[Path, ...] = ()


def staged(staging: Path, version: str) -> tuple[Path, dict[str, Path]]:
    """(manifest file, target path -> file) for a folder holding targets under their target paths."""
    manifest_file = staging / "agent" / version / "manifest.json"
    try:
        manifest = parse_manifest(manifest_file.read_bytes())
    except FileNotFoundError:
        raise InstallError(f"no manifest for {version} in {staging} (expected agent/{version}/manifest.json)") from None
    except ManifestError as exc:
        raise InstallError(str(exc)) from None
    paths = set(manifest.targets_for(platform.machine()))
    for wheels in manifest.platforms.values():
        paths.update(wheels)
    return manifest_file, {p: staging / p for p in sorted(paths) if (staging / p).is_file()}


def install_release(layout: Layout, manifest_file: Path, files: Mapping[str, Path], opts: InstallOptions) -> Path:
    """Install (or finish installing) the release; returns ``releases/<version>``."""
    data = manifest_file.read_bytes()
    try:
        manifest = parse_manifest(data)
    except ManifestError as exc:
        raise InstallError(str(exc)) from None
    final = layout.release(manifest.version)
    if layout.installed(manifest.version):
        return final
    needed = _needed_targets(manifest, files, opts)
    if final.exists():  # a release dir with no manifest or no entry point: the card lost files
        _remove(final, layout.trash(manifest.version))
    partial = layout.partial(manifest.version)
    _check_space(layout, partial, needed, opts)
    (partial / "files").mkdir(parents=True, exist_ok=True)
    for target, src in needed.items():
        _copy_kept(src, partial / "files" / Path(target).name)
        crashpoint(f"install: copied {target}")
    if manifest.model:
        (partial / "model").mkdir(exist_ok=True)
        name = Path(manifest.model).name
        _copy_kept(partial / "files" / name, partial / "model" / name)
    if not (partial / VENV_DONE).exists():
        _build_venv(partial, final, manifest, opts)
    _write_synced(partial / "manifest.json", data)
    _fsync_tree(partial)
    crashpoint("install: partial complete")
    os.rename(partial, final)
    crashpoint("install: renamed")
    fsync_dir(layout.releases)
    return final


def _needed_targets(manifest: Manifest, files: Mapping[str, Path], opts: InstallOptions) -> dict[str, Path]:
    if not opts.no_deps and opts.machine not in manifest.platforms:
        known = ", ".join(sorted(manifest.platforms)) or "none"
        raise InstallError(f"release {manifest.version} has no wheels for {opts.machine} (it has: {known})")
    wanted = [manifest.agent, *([manifest.model] if manifest.model else [])]
    if not opts.no_deps:
        wanted += manifest.platforms[opts.machine]
    else:
        # Not installed, but kept in files/ as a device keeps them: the next release copies its
        # unchanged dependency wheels from there instead of downloading them again.
        wanted += [p for p in manifest.platforms.get(opts.machine, []) if p in files and Path(files[p]).is_file()]
    missing = [p for p in wanted if p not in files or not Path(files[p]).is_file()]
    if missing:
        raise InstallError(f"release {manifest.version}: missing {', '.join(missing[:3])}")
    names: dict[str, str] = {}
    for p in wanted:
        other = names.setdefault(Path(p).name, p)
        if other != p:  # files/ is flat: pip's --find-links reads one folder
            raise InstallError(f"release {manifest.version}: {other} and {p} have the same file name")
    return {p: Path(files[p]) for p in dict.fromkeys(wanted)}


def _check_space(layout: Layout, partial: Path, needed: Mapping[str, Path], opts: InstallOptions) -> None:
    sizes = {p: src.stat().st_size for p, src in needed.items()}
    copy = sum(size for p, size in sizes.items() if not _same_file(needed[p], partial / "files" / Path(p).name))
    wheels = sum(size for p, size in sizes.items() if p.endswith(".whl"))
    venv = 0 if (partial / VENV_DONE).exists() else VENV_FACTOR * wheels + VENV_BASE_BYTES
    need = copy + venv + opts.reserve_bytes
    layout.releases.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(layout.releases).free
    if free < need:
        raise InstallError(
            f"not enough free space in {layout.releases}: the install needs {need // MB} MB "
            f"({copy // MB} MB of files, about {venv // MB} MB of venv, {opts.reserve_bytes // MB} MB kept free), "
            f"{free // MB} MB free"
        )


def _build_venv(partial: Path, final: Path, manifest: Manifest, opts: InstallOptions) -> None:
    venv = partial / "venv"
    if venv.exists():
        shutil.rmtree(venv)  # a build killed half-way: pip's state is unknown, start over
    _run([opts.python, "-m", "venv", "--system-site-packages", str(venv)], "python3 -m venv")
    crashpoint("install: venv made")
    if opts.extra_paths:
        site = _site_packages(venv)
        (site / "xl-extra-paths.pth").write_text("".join(f"{p}\n" for p in opts.extra_paths), encoding="utf-8")
    files = partial / "files"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index", "--find-links", str(files)]
    pip += ["--no-cache-dir", "--disable-pip-version-check", "--no-input"]
    if opts.no_deps:
        pip += ["--no-deps", str(files / Path(manifest.agent).name)]
    else:
        pip.append(manifest.requirement)
    _run(pip, "pip install")
    crashpoint("install: pip done")
    # -I: the agent the venv holds, never one in the current directory or on PYTHONPATH.
    out = _run([str(venv / "bin" / "python"), "-I", "-c", "import agent; print(agent.__version__)"], "the new agent")
    if out.strip() != manifest.version:
        raise InstallError(f"release {manifest.version}: its agent says it is {out.strip()[:40]!r}")
    _relocate(venv, final / "venv")
    _fsync_tree(venv)
    _write_synced(partial / VENV_DONE, b"")


def _relocate(venv: Path, final: Path) -> None:
    """A venv is not relocatable: pip writes the venv's absolute path into every script's
    ``#!`` line (and venv into the activate scripts). Built in .partial, those would name a
    folder that is gone after the rename, so they are rewritten to the final path now."""
    old, new = str(venv).encode(), str(final).encode()
    for path in (venv / "bin").iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old in data:
            mode = path.stat().st_mode
            path.write_bytes(data.replace(old, new))
            path.chmod(mode)
    cfg = venv / "pyvenv.cfg"
    cfg.write_bytes(cfg.read_bytes().replace(old, new))


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise InstallError(f"{venv}: no site-packages")
    return found[0]


def _run(cmd: list[str], what: str) -> str:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, env=child_env(), check=False, cwd="/"
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{what}: {exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise InstallError(f"{what} failed ({proc.returncode}): {last[0][:120]}")
    return proc.stdout


def _same_file(src: Path, dest: Path) -> bool:
    try:
        if dest.stat().st_size != src.stat().st_size:
            return False
    except FileNotFoundError:
        return False
    return _sha256(dest) == _sha256(src)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy_kept(src: Path, dest: Path) -> None:
    """Copy unless an intact copy is there already (a resumed install)."""
    if _same_file(src, dest):
        return
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_tree(top: Path) -> None:
    """Data and directory entries on the card before the rename that makes them an install:
    otherwise a power cut could leave an "installed" release of empty files. One sync(2)
    rather than an fsync per file: a venv is thousands of files, and each fsync on an SD
    card costs milliseconds."""
    os.sync()
    fsync_dir(top)


def _remove(path: Path, trash: Path) -> None:
    if trash.exists():
        shutil.rmtree(trash)
    os.rename(path, trash)
    fsync_dir(path.parent)
    shutil.rmtree(trash)
