"""kill -9 at every step of an update: the device always comes back on a good release.

Each step of install, switch, commit and rollback passes crash points
(agent.update.guard.crashpoint); with ``XL_UPDATE_CRASH_AT=K`` the process
SIGKILLs itself at the K-th. Each case runs the step in a subprocess for
K = 1, 2, … until a run finishes without being killed, so every point is hit,
and after every kill runs the guard as systemd would at the next start, then
checks: ``current`` names an installed release, state.json parses and agrees
with it, and that release is either good or on a trial that has a good one to
fall back to. After a kill the step is run again to see it finish (resume).

The install case builds a real venv (``--no-deps`` into a ``--system-site-packages``
venv of this interpreter; see test_update_guard.py); the others use releases
that only look installed, since what they run does not matter there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from agent.update.guard import state_from_doc
from agent.update.layout import Layout
from agent.update.state import State, Trial, write_state
from tests.support.update_release import ROOT, build_wheel, fake_release, install_guard, run_guard, stage

DRIVER = """
import json, sys
from pathlib import Path
from agent.update import switch
from agent.update.install import InstallOptions, install_release, staged
from agent.update.layout import Layout

a = json.loads(sys.argv[1])
layout = Layout(Path(a["root"]), Path(a["state_dir"]))
if a["step"] == "install-and-switch":
    opts = InstallOptions(python=sys.executable, no_deps=True, extra_paths=(Path(a["site"]),))
    manifest, files = staged(Path(a["staging"]), "0.4.0")
    install_release(layout, manifest, files, opts)
    if switch.load(layout).current != "0.4.0":
        switch.start_trial(layout, "0.4.0", 600, 3)
elif a["step"] == "commit":
    switch.commit(layout, "0.4.0", Path(a["guard"]))
elif a["step"] == "rollback":
    if switch.load(layout).trial is not None:
        switch.rollback(layout, "health gate: no pipeline run within 600 s")
"""
MAX_POINTS = 60


def run_step(layout: Layout, step: str, crash_at: int | None, **extra: str) -> subprocess.CompletedProcess[str]:
    args = {"root": str(layout.root), "state_dir": str(layout.state_dir), "step": step, **extra}
    env = {**os.environ, "XL_UPDATE_CRASH_AT": str(crash_at or "")}
    return subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(args)], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
    )


def killed(proc: subprocess.CompletedProcess[str]) -> bool:
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"step failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.returncode == -signal.SIGKILL


def assert_on_a_good_release(layout: Layout) -> State:
    """The guard has run: what systemd starts next is a release that works or can fall back."""
    target = os.readlink(layout.current)
    assert target.startswith("releases/"), target
    version = target.removeprefix("releases/")
    assert layout.installed(version), f"current -> {target}, which is not installed"
    state = state_from_doc(json.loads(layout.state_file.read_bytes()))  # parses, no fallback needed
    assert state.current == version, (state, target)
    if state.trial is not None:
        assert state.trial.version == version and layout.installed(state.trial.previous), state
    else:
        assert version in state.good, state
    return state


def base(tmp: Path) -> Layout:
    """A device running 0.3.0, committed."""
    if tmp.exists():
        shutil.rmtree(tmp)
    layout = Layout(tmp / "opt", tmp / "upd")
    install_guard(layout)
    fake_release(layout, "0.3.0")
    os.symlink("releases/0.3.0", layout.current)
    write_state(layout, State(current="0.3.0", good=["0.3.0"], us="ok"))
    return layout


@pytest.mark.slow
def test_kill_at_every_step_of_install_and_switch(tmp_path: Path) -> None:
    wheel = build_wheel("0.4.0", tmp_path / "build")
    staging = stage(tmp_path / "staging", "0.4.0", wheel)
    extra = {"staging": str(staging), "site": sysconfig.get_paths()["purelib"]}
    outcomes = []
    for k in range(1, MAX_POINTS):
        layout = base(tmp_path / "dev")
        proc = run_step(layout, "install-and-switch", k, **extra)
        if not killed(proc):
            break
        point = proc.stderr.strip().splitlines()[-1]
        # Nothing half-built may look installed.
        assert layout.installed("0.4.0") or not (layout.releases / "0.4.0").exists(), point
        assert run_guard(layout).returncode == 0
        state = assert_on_a_good_release(layout)
        outcomes.append((point, state.current, state.us))
        # Resume: the same step again, uninterrupted, finishes the update.
        assert not killed(run_step(layout, "install-and-switch", None, **extra))
        run_guard(layout)
        assert assert_on_a_good_release(layout).current == "0.4.0"
    else:
        raise AssertionError("the step never finished")
    assert len(outcomes) >= 12, outcomes  # copies, venv, pip, rename, state write, link switch
    # Killed before the link switch, the device is on 0.3.0; after it, on 0.4.0 on trial.
    assert outcomes[0][1:] == ("0.3.0", "ok") and outcomes[-1][1:] == ("0.4.0", "trial"), outcomes
    print("\n".join(f"{p}: {v} {us}" for p, v, us in outcomes))


def trial_device(tmp: Path, attempts: int = 1) -> Layout:
    layout = base(tmp)
    fake_release(layout, "0.4.0")
    os.unlink(layout.current)
    os.symlink("releases/0.4.0", layout.current)
    trial = Trial("0.4.0", "0.3.0", 1, 10**15, 3, attempts)
    write_state(layout, State(current="0.4.0", good=["0.3.0"], trial=trial, us="trial", uv="0.4.0"))
    return layout


@pytest.mark.parametrize("step", ["commit", "rollback", "guard rollback"])
def test_kill_at_every_step_of_commit_and_rollback(tmp_path: Path, step: str) -> None:
    new_guard = tmp_path / "guard-0.4.0.py"
    shutil.copy(ROOT / "agent" / "update" / "guard.py", new_guard)
    points = 0
    for k in range(1, MAX_POINTS):
        # "guard rollback": the 4th start of a release that never committed (max_attempts 3).
        layout = trial_device(tmp_path / "dev", attempts=3 if step == "guard rollback" else 1)
        if step == "guard rollback":
            proc = run_guard(layout, {"XL_UPDATE_CRASH_AT": str(k)})
            done = proc.returncode != -signal.SIGKILL
        else:
            done = not killed(run_step(layout, step, k, guard=str(new_guard)))
        run_guard(layout)
        state = assert_on_a_good_release(layout)
        if step != "commit":
            # Killed before its state write, the rollback has not happened: the trial goes on (and
            # the guard's count or the gate's deadline ends it later); after, it is done.
            assert state.current == ("0.3.0" if state.trial is None else "0.4.0"), state
        if done:
            break
        points += 1
        if step != "guard rollback":
            assert not killed(run_step(layout, step, None, guard=str(new_guard)))  # resume
            run_guard(layout)
            state = assert_on_a_good_release(layout)
            assert state.current == ("0.4.0" if step == "commit" else "0.3.0") and state.trial is None, state
            if step == "commit":
                assert layout.guard.read_bytes() == new_guard.read_bytes()
    assert points >= 4, points
    if step == "commit":
        assert state.good == ["0.4.0", "0.3.0"] and layout.guard.read_bytes() == new_guard.read_bytes()
    else:
        assert state.current == "0.3.0" and "0.4.0" in state.failed and state.us == "rb"
