"""The crash-loop guard and the switch: real releases, the guard run as systemd runs it.

The crash loop uses real venvs made offline (``pip install --no-index``) from this
repository's wheel. For speed the wheel goes in with ``--no-deps`` into a venv
made with ``--system-site-packages`` from this test venv's interpreter, and the
dependencies come from this venv's site-packages through a .pth file
(InstallOptions.extra_paths). The other cases use releases that only look
installed (tests.support.update_release.fake_release): there the state machine is under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from agent.update import switch
from agent.update.guard import Trial, read_state, write_state
from agent.update.install import InstallOptions, install_release, staged
from agent.update.layout import Layout
from agent.update.state import State, load
from tests.support.update_release import build_wheel, fake_release, install_guard, run_guard, stage, state_doc

OPTS = InstallOptions(python=sys.executable, no_deps=True, extra_paths=(Path(sysconfig.get_paths()["purelib"]),))


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    lay = Layout(tmp_path / "opt", tmp_path / "var" / "update")
    install_guard(lay)
    return lay


def first_boot(layout: Layout, version: str) -> None:
    """What first-boot.sh leaves: a release and the link, no state.json yet."""
    os.symlink(f"releases/{version}", layout.current)


def install(layout: Layout, tmp: Path, version: str, broken: bool = False) -> None:
    wheel = build_wheel(version, tmp / "build", broken=broken)
    manifest, files = staged(stage(tmp / f"staging-{version}", version, wheel), version)
    install_release(layout, manifest, files, OPTS)


@pytest.mark.slow
def test_a_release_that_crashes_at_every_start_is_rolled_back_by_the_guard(layout: Layout, tmp_path: Path) -> None:
    install(layout, tmp_path, "0.3.0")
    first_boot(layout, "0.3.0")
    assert run_guard(layout).returncode == 0
    assert state_doc(layout)["good"] == ["0.3.0"]  # rebuilt from the link at the first start

    install(layout, tmp_path, "0.4.0", broken=True)
    switch.start_trial(layout, "0.4.0", commit_within_s=600, max_attempts=3)
    starts: list[tuple[str, int]] = []
    for _ in range(10):  # systemd: ExecStartPre, ExecStart, Restart=always
        guard = run_guard(layout)
        assert guard.returncode == 0, guard.stderr
        agent = subprocess.run(
            [str(layout.current / "venv" / "bin" / "xl-agent"), "--version"], capture_output=True, text=True, cwd="/"
        )
        starts.append((os.readlink(layout.current), agent.returncode))
        if agent.returncode == 0:
            break
    assert starts == [("releases/0.4.0", 1)] * 3 + [("releases/0.3.0", 0)]
    assert "xl-agent 0.3.0" in agent.stdout
    doc = state_doc(layout)
    assert doc["current"] == "0.3.0" and doc["good"] == ["0.3.0"] and doc["trial"] is None
    assert doc["us"] == "rb" and doc["uv"] == "0.4.0"
    assert doc["failed"] == {"0.4.0": "crash loop: 3 starts without a commit (max 3)"}
    assert "rolled back 0.4.0 -> 0.3.0" in guard.stderr


def test_a_trial_past_its_deadline_is_rolled_back_at_the_next_start(layout: Layout) -> None:
    for v in ("0.3.0", "0.4.0"):
        fake_release(layout, v)
    first_boot(layout, "0.3.0")
    run_guard(layout)
    switch.start_trial(layout, "0.4.0", commit_within_s=60, max_attempts=3)
    state = load(layout)
    assert state.trial is not None
    state.trial.deadline_ms = int(time.time() * 1000) - 1  # as if the device had been off for a week
    write_state(layout, state)
    out = run_guard(layout)
    assert os.readlink(layout.current) == "releases/0.3.0", out.stderr
    assert state_doc(layout)["failed"]["0.4.0"].startswith("not committed by its deadline")  # type: ignore[index]


@pytest.mark.parametrize(
    "damage", [b"", b"{", b'{"format": 1, "current": "0.4.0", "good": "0.4.0"}', b"\xff\xfe", b'{"format": 2}']
)
def test_a_damaged_state_file_never_keeps_the_agent_from_starting(layout: Layout, damage: bytes) -> None:
    fake_release(layout, "0.3.0")
    first_boot(layout, "0.3.0")
    layout.state_dir.mkdir(parents=True)
    layout.state_file.write_bytes(damage)
    out = run_guard(layout)
    assert out.returncode == 0 and "rebuilt from the current link (0.3.0)" in out.stderr
    assert state_doc(layout)["current"] == "0.3.0" and state_doc(layout)["good"] == ["0.3.0"]
    assert os.readlink(layout.current) == "releases/0.3.0"


def test_the_link_is_repaired_to_what_the_state_says(layout: Layout) -> None:
    for v in ("0.3.0", "0.4.0"):
        fake_release(layout, v)
    write_state(layout, State(current="0.4.0", good=["0.4.0", "0.3.0"]))
    run_guard(layout)  # no link at all
    assert os.readlink(layout.current) == "releases/0.4.0"
    os.unlink(layout.current)
    os.symlink("releases/0.9.9", layout.current)  # a release that is not there
    run_guard(layout)
    assert os.readlink(layout.current) == "releases/0.4.0"


def test_a_trial_whose_switch_never_reached_the_disk_is_abandoned(layout: Layout) -> None:
    for v in ("0.3.0", "0.4.0"):
        fake_release(layout, v)
    first_boot(layout, "0.3.0")
    now = int(time.time() * 1000)
    trial = Trial("0.4.0", "0.3.0", now, now + 600_000, 3)
    write_state(layout, State(current="0.4.0", good=["0.3.0"], trial=trial, us="trial"))
    out = run_guard(layout)
    doc = state_doc(layout)
    assert doc["trial"] is None and doc["current"] == "0.3.0" and doc["us"] == "fail", out.stderr
    assert doc["ue"] == "interrupted before the switch to 0.4.0" and "0.4.0" not in doc["failed"]  # type: ignore[operator]


def test_the_guard_exits_0_whatever_happens(layout: Layout, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = subprocess.run(
        [sys.executable, "-I", str(layout.guard), "--root", str(layout.root), "--state-dir", str(blocker / "update")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "xl-guard: ERROR" in proc.stderr
    assert "starting on the current release" in proc.stderr


def test_commit_keeps_the_last_two_good_releases_and_installs_its_guard(layout: Layout, tmp_path: Path) -> None:
    for v in ("0.2.0", "0.3.0", "0.4.0", "0.5.0"):
        fake_release(layout, v)
    write_state(layout, State(current="0.3.0", good=["0.3.0", "0.2.0"]))
    first_boot(layout, "0.3.0")
    source = tmp_path / "new-guard.py"
    source.write_text("# the new release's guard\n")
    switch.start_trial(layout, "0.4.0", commit_within_s=600, max_attempts=3)
    state = switch.commit(layout, "0.4.0", guard_source=source)
    assert state.good == ["0.4.0", "0.3.0"] and state.us == "ok"
    # 0.2.0 pruned (not good any more); 0.5.0 was never good nor current
    assert sorted(p.name for p in layout.releases.iterdir()) == ["0.3.0", "0.4.0"]
    assert layout.guard.read_text() == "# the new release's guard\n"
    assert switch.commit(layout, "0.4.0").good == ["0.4.0", "0.3.0"]  # idempotent


def test_switch_refuses_what_it_cannot_do(layout: Layout) -> None:
    fake_release(layout, "0.3.0")
    first_boot(layout, "0.3.0")
    run_guard(layout)
    with pytest.raises(switch.SwitchError, match=r"0\.4\.0 is not installed"):
        switch.start_trial(layout, "0.4.0", 600, 3)
    with pytest.raises(switch.SwitchError, match=r"0\.3\.0 is running already"):
        switch.start_trial(layout, "0.3.0", 600, 3)
    with pytest.raises(switch.SwitchError, match="the release on trial is none"):
        switch.commit(layout, "0.4.0")
    with pytest.raises(switch.SwitchError, match="no release on trial"):
        switch.rollback(layout, "why")
    with pytest.raises(ValueError, match="not a release directory name"):
        layout.release("../etc")


def test_read_state_without_anything_is_empty(tmp_path: Path) -> None:
    state, why = read_state(Layout(tmp_path / "opt", tmp_path / "upd"))
    assert state == State() and why == "no state.json"
    assert not (tmp_path / "upd").exists()  # reading creates nothing (a developer's machine)


def test_state_round_trips_through_its_file(layout: Layout) -> None:
    state = State("0.4.0", ["0.3.0"], Trial("0.4.0", "0.3.0", 1, 2, 3, 1), {"0.2.0": "why 张"}, "trial", None, "0.4.0")
    write_state(layout, state)
    assert load(layout) == state
    assert json.loads(layout.state_file.read_text())["format"] == 1
    assert not list(layout.state_dir.glob(".*.tmp"))
