"""The crash-loop guard: run by systemd before every start of the agent.

Installed as ``/opt/xueliang/guard.py`` and run as
``ExecStartPre=/usr/bin/python3 /opt/xueliang/guard.py`` (docs/ota.md section 3).
It must work when the release it guards is broken, so it is ONE file using the
standard library only: no import of the agent, of the release's venv, of
anything pip installed. For the same reason it holds the crash-safe primitives
the agent's own updater uses (``agent.update.state`` and ``switch`` import them
from here): one implementation of the on-disk format and of the atomic writes,
so the guard and the agent can never disagree about either.

What it does at each start, under a lock on the state directory:
- During a trial (a new release switched to, not yet committed), it counts the
  start. Past ``max_attempts`` starts, or past the trial's deadline, it switches
  ``current`` back to the previous good release and records why. A crash loop
  and a watchdog timeout both look like this: systemd restarts the agent after
  either, and ``$SERVICE_RESULT``/``$EXIT_STATUS`` are only given to ExecStop*
  and ExecStopPost, so the count is the evidence.
- Always, it makes the ``current`` link agree with state.json, which is written
  before the link at every step, so a kill at any point leaves a state the guard
  can finish (tests/agent/test_update_crash.py kills at every step).
- If state.json is unreadable, the link is the truth, and the state is rebuilt
  from it: a damaged file must never stop the agent from starting.

It never fails the start: any error is printed (the journal has it) and it
exits 0, so the agent starts on whatever ``current`` is.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
DEFAULT_ROOT = Path("/opt/xueliang")
DEFAULT_STATE_DIR = Path("/var/lib/xueliang/update")
KEEP_GOOD = 2  # the issue: keep the last two good releases
REASON_MAX = 160  # the health key ``ue`` (docs/ota.md section 2)
UPDATE_STATES = ("idle", "wait", "dl", "inst", "trial", "ok", "fail", "rb")
_VERSION_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z.!+_-]{0,63}")

# -- crash points --------------------------------------------------------
# The crash tests set XL_UPDATE_CRASH_AT=K: the K-th crash point this process
# reaches sends it SIGKILL, as a power cut would stop it. Unset, it costs one
# environment lookup.
_crash_count = 0


def crashpoint(name: str) -> None:
    global _crash_count
    at = os.environ.get("XL_UPDATE_CRASH_AT")
    if not at:
        return
    _crash_count += 1
    if _crash_count == int(at):
        sys.stderr.write(f"crashpoint {_crash_count}: {name}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


# -- paths ---------------------------------------------------------------


@dataclass(frozen=True)
class Paths:
    """docs/ota.md section 3 under a root; tests use temporary directories."""

    root: Path = DEFAULT_ROOT
    state_dir: Path = DEFAULT_STATE_DIR

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def guard(self) -> Path:
        return self.root / "guard.py"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "lock"

    def release(self, version: str) -> Path:
        if not _VERSION_NAME.fullmatch(version):
            raise ValueError(f"not a release directory name: {version[:40]!r}")
        return self.releases / version

    def installed(self, version: str | None) -> bool:
        """A release dir appears only by renaming a complete build (agent.update.install), but a
        damaged card can still lose files: the entry point and manifest must be there."""
        if not version or not _VERSION_NAME.fullmatch(version):
            return False
        rel = self.releases / version
        return (rel / "venv" / "bin" / "xl-agent").is_file() and (rel / "manifest.json").is_file()

    def installed_releases(self) -> list[str]:
        try:
            names = [p.name for p in self.releases.iterdir() if not p.name.startswith(".")]
        except OSError:
            return []
        return [n for n in names if self.installed(n)]

    def link_target(self) -> str | None:
        """The version ``current`` names (``releases/<v>``), or None if it is missing or odd."""
        try:
            target = os.readlink(self.current)
        except OSError:
            return None
        parent, _, name = target.rstrip("/").rpartition("/")
        if parent not in ("releases", str(self.releases)) or not _VERSION_NAME.fullmatch(name):
            return None
        return name


# -- state ---------------------------------------------------------------


@dataclass
class Trial:
    version: str
    previous: str | None
    started_ms: int
    deadline_ms: int
    max_attempts: int
    attempts: int = 0


@dataclass
class State:
    """state.json. ``current`` is what the link should name, during a trial too."""

    current: str | None = None
    good: list[str] = field(default_factory=list)  # newest first, at most KEEP_GOOD
    trial: Trial | None = None
    failed: dict[str, str] = field(default_factory=dict)  # version -> why
    us: str = "idle"  # the health keys us/ue/uv (docs/ota.md section 2)
    ue: str | None = None
    uv: str | None = None

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {"format": FORMAT, **dataclasses.asdict(self)}
        return (json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


def state_from_doc(doc: Any) -> State:
    """ValueError on anything but a state.json this code wrote."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not a format 1 state.json")

    def text(v: Any, what: str, optional: bool = True) -> Any:
        if (v is None and optional) or isinstance(v, str):
            return v
        raise ValueError(f"{what}: not a string")

    def count(v: Any, what: str) -> int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        raise ValueError(f"{what}: not an integer")

    trial = None
    t = doc.get("trial")
    if t is not None:
        if not isinstance(t, dict):
            raise ValueError("trial: not an object")
        trial = Trial(
            version=text(t.get("version"), "trial.version", optional=False),
            previous=text(t.get("previous"), "trial.previous"),
            started_ms=count(t.get("started_ms"), "trial.started_ms"),
            deadline_ms=count(t.get("deadline_ms"), "trial.deadline_ms"),
            max_attempts=count(t.get("max_attempts"), "trial.max_attempts"),
            attempts=count(t.get("attempts", 0), "trial.attempts"),
        )
    good = doc.get("good", [])
    failed = doc.get("failed", {})
    if not (isinstance(good, list) and all(isinstance(v, str) for v in good)):
        raise ValueError("good: not a list of versions")
    if not (isinstance(failed, dict) and all(isinstance(v, str) for v in failed.values())):
        raise ValueError("failed: not an object of reasons")
    us = doc.get("us", "idle")
    if us not in UPDATE_STATES:
        raise ValueError(f"us: not one of {UPDATE_STATES}")
    return State(
        current=text(doc.get("current"), "current"),
        good=list(good),
        trial=trial,
        failed=dict(failed),
        us=us,
        ue=text(doc.get("ue"), "ue"),
        uv=text(doc.get("uv"), "uv"),
    )


def read_state(paths: Paths) -> tuple[State, str | None]:
    """(state, None) from state.json; or (state rebuilt from the link, why) when the file is
    missing or damaged. Never raises: the device must start whatever the file holds."""
    try:
        return state_from_doc(json.loads(paths.state_file.read_bytes())), None
    except FileNotFoundError:
        why = "no state.json"
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        why = f"state.json unreadable ({type(exc).__name__}: {str(exc)[:80]})"
    linked = paths.link_target()
    good = [linked] if linked is not None and paths.installed(linked) else []
    return State(current=linked, good=good), why


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Readers see the old bytes or the new, never a mix, even across a power cut: write a
    temporary file, fsync it, rename it over, fsync the directory (the rename is only durable
    once the directory is)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        crashpoint(f"write {path.name}: temp created")
        os.write(fd, data[: len(data) // 2])
        crashpoint(f"write {path.name}: half written")
        os.write(fd, data[len(data) // 2 :])
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()  # a full card: give back what the half-written temp took
        raise
    finally:
        os.close(fd)
    crashpoint(f"write {path.name}: temp synced")
    os.replace(tmp, path)
    crashpoint(f"write {path.name}: renamed")
    fsync_dir(path.parent)


def write_state(paths: Paths, state: State) -> None:
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(paths.state_file, state.to_json())


def switch_link(paths: Paths, version: str) -> None:
    """Point ``current`` at releases/<version> atomically: a new link under a temporary name,
    then rename(2) over the old one, so ``current`` always names one release or the other."""
    paths.release(version)  # refuses a name that is not a plain version
    tmp = paths.root / f".current.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # left by an earlier process with our pid, killed at this point
    os.symlink(f"releases/{version}", tmp)
    crashpoint(f"link {version}: temp link made")
    fsync_dir(paths.root)
    crashpoint(f"link {version}: temp link synced")
    os.replace(tmp, paths.current)
    crashpoint(f"link {version}: renamed")
    fsync_dir(paths.root)
    crashpoint(f"link {version}: synced")


@contextlib.contextmanager
def locked(paths: Paths) -> Iterator[None]:
    """One writer of state.json at a time (the guard, the agent's gate, the updater). flock:
    the kernel drops it when its holder dies, so a killed writer never leaves it held."""
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- transitions the guard needs (the others are in agent.update.switch) -


def fallback_release(paths: Paths, state: State, avoid: str | None) -> str | None:
    """Where to go back to: the previous good release, else any good one, else any installed."""
    candidates = [state.trial.previous if state.trial else None, *state.good]
    for version in candidates:
        if version != avoid and paths.installed(version):
            return version
    others = [v for v in paths.installed_releases() if v != avoid and v not in state.failed]
    # Newest directory first: without the agent's version parser, its mtime is the best guess.
    others.sort(key=lambda v: (paths.releases / v).stat().st_mtime, reverse=True)
    return others[0] if others else None


def rollback(paths: Paths, state: State, reason: str) -> State:
    """Go back from the release on trial (or the current one) to a good one; call under ``locked``."""
    bad = state.trial.version if state.trial else state.current
    target = fallback_release(paths, state, avoid=bad)
    reason = reason[:REASON_MAX]
    if bad:
        state.failed[bad] = reason
    state.trial = None
    state.us, state.ue, state.uv = "rb", reason, bad
    if target is None:  # nothing to go back to: the failed release is still better than no agent
        state.ue = f"{reason}; no good release to roll back to"[:REASON_MAX]
        write_state(paths, state)
        return state
    state.current = target
    state.good = [v for v in state.good if v != bad]
    # State before link: killed in between, the next start finds a state that names the old
    # release and a link that does not, and the guard finishes the switch (reconcile).
    try:
        write_state(paths, state)
    except OSError:
        # A full card (ENOSPC): switch all the same, or the failed release starts again and
        # again. A link is an inode with no data block, so it usually still fits. The next
        # start finds the old state (trial on, link elsewhere) and records it as not switched.
        switch_link(paths, target)
        raise
    crashpoint("rollback: state written")
    switch_link(paths, target)
    return state


def reconcile(paths: Paths, state: State) -> str | None:
    """Make ``current`` name state.current (or, failing that, a release that is installed)."""
    linked = paths.link_target()
    want = state.current if paths.installed(state.current) else None
    if want is None:
        want = linked if paths.installed(linked) else fallback_release(paths, state, avoid=None)
        if want is None:
            return "no release installed"
        state.current = want
        write_state(paths, state)
    if linked != want:
        switch_link(paths, want)
        return f"current -> {want}"
    return None


def on_start(paths: Paths, now_ms: int) -> list[str]:
    """The guard's work for one start of the agent; returns what it did, for the journal."""
    done: list[str] = []
    with locked(paths):
        state, rebuilt = read_state(paths)
        if rebuilt and (state.current or paths.state_file.exists()):
            done.append(f"{rebuilt}: rebuilt from the current link ({state.current})")
            write_state(paths, state)
        trial = state.trial
        if trial is not None and paths.link_target() != trial.version:
            # The switch to the trial never reached the disk: the old release still runs.
            state.current, state.trial = trial.previous, None
            state.us, state.ue, state.uv = "fail", f"interrupted before the switch to {trial.version}", trial.version
            write_state(paths, state)
            done.append(state.ue)
        elif trial is not None:
            trial.attempts += 1
            why = None
            if not paths.installed(trial.version):
                why = f"release {trial.version} is not installed completely"
            elif trial.attempts > trial.max_attempts:
                why = f"crash loop: {trial.attempts - 1} starts without a commit (max {trial.max_attempts})"
            elif now_ms > trial.deadline_ms:
                why = f"not committed by its deadline ({(now_ms - trial.started_ms) // 1000} s after the switch)"
            if why is None:
                try:
                    write_state(paths, state)
                    done.append(f"trial of {trial.version}: start {trial.attempts} of {trial.max_attempts}")
                except OSError as exc:  # uncounted, a crash loop would never end: not run
                    why = f"the trial's starts cannot be counted: state.json: {exc.strerror or exc}"
            if why is not None:
                state = rollback(paths, state, why)
                done.append(f"rolled back {trial.version} -> {state.current}: {why}")
        fixed = reconcile(paths, state)
        if fixed:
            done.append(fixed)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Xueliang crash-loop guard (ExecStartPre of xueliang-agent)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"default {DEFAULT_ROOT}")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help=f"default {DEFAULT_STATE_DIR}")
    args = parser.parse_args(argv)
    try:
        for line in on_start(Paths(args.root, args.state_dir), int(time.time() * 1000)):
            print(f"xl-guard: {line}", file=sys.stderr)
    except Exception as exc:  # never keep the agent from starting
        print(f"xl-guard: ERROR {type(exc).__name__}: {exc}; starting on the current release", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
