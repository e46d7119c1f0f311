"""agent.update.runner: the ``update`` command in the running agent. It waits
for a window, runs the real ``xl-agent update apply`` child against a real TUF
repository on an mTLS server, turns progress.json into health (sent at once
when ``us`` changes), and switches only when nothing forbids a restart."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from agent.clock import DeviceClock
from agent.commands import CommandPorts, Commands
from agent.config import load
from agent.health import MIN_GAP_S, HealthReporter, HealthSources
from agent.outbox import Outbox
from agent.outbox_writer import OutboxWriter
from agent.schedule import Arming
from agent.update.layout import Layout
from agent.update.progress import Progress, read_progress, write_progress
from agent.update.runner import UpdateRunner, wait_for
from protocol.codec import decode_health, encode
from protocol.messages import Health
from tests.support.tls import DEVICE, GROUP, Pki, make_pki
from tests.support.tuf_repo import TufRepo
from tests.support.update_server import UpdateServer

NEW = "0.3.0"
WHEEL = f"agent/{NEW}/xueliang_edge-{NEW}-py3-none-any.whl"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Rig:
    config: Path
    layout: Layout
    repo: TufRepo
    server: UpdateServer
    wheel: bytes
    armed: list[bool]
    blocker: list[str | None]
    restarts: list[int]

    def runner(self, **kw: object) -> UpdateRunner:
        cfg = load(self.config)
        return UpdateRunner(
            cfg.update,
            self.config,
            armed=lambda: self.armed[0],
            blocker=lambda: self.blocker[0],
            restart=lambda: self.restarts.append(1),
            running="0.2.0",
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def rig(tmp_path: Path, pki: Pki) -> Iterator[Rig]:
    repo = TufRepo(tmp_path / "repo")
    wheel = b"PK" + bytes(range(256)) * 400
    repo.add_release(NEW, {WHEEL: wheel, f"agent/{NEW}/person_ssdlite_uint8.tflite": b"TFL3" * 5000})
    repo.publish()
    server = UpdateServer(repo.dir, pki).start()
    config = tmp_path / "agent.yaml"
    doc = {
        "device": {"id": DEVICE, "group": GROUP, "household": "HH1"},
        "broker": {"url": "mqtts://localhost:8883", "ca": str(pki.ca), "cert": str(pki.cert), "key": str(pki.key)},
        "state_dir": str(tmp_path / "state"),
        "update": {"url": server.url, "root": str(tmp_path / "opt"), "state_dir": str(tmp_path / "upd")},
    }
    config.write_text(yaml.safe_dump(doc))
    layout = Layout.from_config(load(config).update)
    layout.tuf_dir.mkdir(parents=True)
    (layout.tuf_dir / "root.json").write_bytes(repo.root_bytes)
    yield Rig(config, layout, repo, server, wheel, [False], [None], [])
    server.close()


def test_bad_requests_are_refused_in_the_ack(rig: Rig, tmp_path: Path) -> None:
    runner = rig.runner()
    assert runner.handle("not-a-version") is not None
    bare = load(rig.config).update.__class__()  # no url
    assert UpdateRunner(bare, rig.config, lambda: False, lambda: None, lambda: None).handle(NEW) == (
        "updates are not configured (update.url)"
    )
    assert not rig.layout.progress_file.exists()


def test_the_command_is_acked_and_waits_out_armed_hours(rig: Rig, tmp_path: Path) -> None:
    spawned: list[list[str]] = []
    runner = rig.runner(spawn=lambda argv: spawned.append(argv) or subprocess.Popen([sys.executable, "-c", ""]))
    box = Outbox(tmp_path / "o.sqlite3", max_rows=100)
    writer = OutboxWriter(DEVICE, box, 1, DeviceClock(probe=lambda: "synced"))
    commands = Commands(writer, Arming(tmp_path / "arming.json", "21:00", "06:00"), CommandPorts(update=runner.handle))
    rig.armed[0] = True
    ack = commands.handle(b'{"v":1,"id":"c-9","op":"update","a":{"ver":"0.3.0","ro":"r-7"}}')
    assert ack.ok and ack.ref_id == "c-9"
    for _ in range(3):
        runner.tick()
    assert spawned == []
    assert runner.health() == Progress(uv=NEW, us="wait", ro="r-7")
    rig.armed[0] = False
    runner.tick()
    assert spawned and spawned[0][-4:] == ["--version", NEW, "--rollout", "r-7"]


def test_force_ignores_armed_hours(rig: Rig) -> None:
    spawned: list[list[str]] = []
    runner = rig.runner(spawn=lambda argv: spawned.append(argv) or subprocess.Popen([sys.executable, "-c", ""]))
    rig.armed[0] = True
    assert runner.handle(NEW, None, dg=False, force=True) is None
    runner.tick()
    assert spawned and "--force" in spawned[0]


def test_the_real_child_reports_a_tampered_target_in_health(rig: Rig) -> None:
    served = f"/tuf/targets/agent/{NEW}/{hashlib.sha256(rig.wheel).hexdigest()}.{Path(WHEEL).name}"
    rig.server.overrides[served] = rig.wheel[::-1]
    runner = rig.runner(python=sys.executable)
    assert runner.handle(NEW, "r-7") is None
    assert wait_for(runner, lambda: runner.child is None and runner.request is None, timeout=60)
    health = runner.health()
    assert health is not None and health.us == "fail" and health.ro == "r-7"
    assert health.ue is not None and health.ue.startswith(f"tuf: {WHEEL} does not match its signed length and hashes")
    assert runner.installed is None and rig.restarts == []


def test_the_real_child_downloads_and_verifies_then_reports_why_install_failed(rig: Rig) -> None:
    """The wheel is not a real wheel, so agent.update.install refuses it: the child got
    that far (every file downloaded and verified), and its reason reaches health."""
    runner = rig.runner(python=sys.executable)
    assert runner.handle(NEW) is None
    assert wait_for(runner, lambda: runner.child is None and runner.request is None, timeout=120)
    health = runner.health()
    assert health is not None and health.us == "fail", health
    assert health.ue is not None and health.ue.startswith("install"), health.ue
    manifest = rig.repo.targets.signed.targets[f"agent/{NEW}/manifest.json"].length
    assert health.ub == len(rig.wheel) + 20_000 + manifest  # every byte of the release, once


def fake_installed(layout: Layout, version: str) -> None:
    """What agent.update.install leaves (its own tests build real venvs)."""
    rel = layout.releases / version
    (rel / "venv" / "bin").mkdir(parents=True)
    (rel / "venv" / "bin" / "xl-agent").write_text("#!/bin/sh\n")
    (rel / "manifest.json").write_text("{}")


def test_the_switch_waits_for_a_safe_moment_then_restarts(rig: Rig, tmp_path: Path) -> None:
    fake_installed(rig.layout, "0.2.0")
    rig.layout.current.symlink_to("releases/0.2.0")
    fake_installed(rig.layout, NEW)
    progress = rig.layout.progress_file
    # A stand-in child that has installed the release (the real one is tested above and in test_update_tuf).
    child = (
        "from pathlib import Path; from agent.update.progress import Progress, write_progress; "
        f"write_progress(Path({str(progress)!r}), Progress(uv={NEW!r}, us='inst'))"
    )
    runner = rig.runner(spawn=lambda argv: subprocess.Popen([sys.executable, "-c", child], cwd=REPO))
    assert runner.handle(NEW) is None
    assert wait_for(runner, lambda: runner.installed is not None, timeout=30)
    rig.blocker[0] = "a 十户联防 alert is sounding"
    for _ in range(3):
        runner.tick()
    assert rig.restarts == [] and rig.layout.link_target() == "0.2.0"
    rig.blocker[0] = None
    runner.tick()
    assert rig.restarts == [1] and rig.layout.link_target() == NEW
    health = runner.health()
    assert health is not None and (health.uv, health.us) == (NEW, "trial")  # from state.json now
    assert runner.handle("0.4.0") == "restarting on a new release"


def test_health_carries_the_update_keys_and_is_sent_when_the_state_changes(rig: Rig, tmp_path: Path) -> None:
    runner = rig.runner()
    sent: list[Health] = []
    reporter = HealthReporter(
        HealthSources(
            outbox=Outbox(tmp_path / "o.sqlite3", max_rows=100),
            clock=DeviceClock(probe=lambda: "synced"),
            state_dir=tmp_path,
            boot=1,
            interval_s=3600,
            update=runner.health,
            vcgencmd=None,
        ),
        publish=lambda h: sent.append(h) or True,
    )
    assert reporter.tick() is not None  # the first heartbeat
    assert sent[-1].update_state is None
    write_progress(rig.layout.progress_file, Progress(uv=NEW, us="dl", ub=12345, ro="r-7"))
    reporter._last_sent -= MIN_GAP_S  # the flood guard's gap, without sleeping it
    h = reporter.tick()
    assert h is not None and (h.update_version, h.update_state, h.update_bytes, h.update_rollout) == (
        NEW, "dl", 12345, "r-7",
    )  # fmt: skip
    assert decode_health(encode(h)) == h
    write_progress(rig.layout.progress_file, Progress(uv=NEW, us="dl", ub=99999, ro="r-7"))
    reporter._last_sent -= MIN_GAP_S
    assert reporter.tick() is None  # bytes alone are not a state change: the next heartbeat has them
    wire = json.loads(encode(reporter.build()))
    assert wire["ub"] == 99999


def test_a_damaged_progress_file_is_no_update_state(rig: Rig) -> None:
    rig.layout.progress_file.parent.mkdir(parents=True, exist_ok=True)
    rig.layout.progress_file.write_text('{"uv":"0.3.0; rm","us":"dl"}')
    assert read_progress(rig.layout.progress_file) is None  # the hub would reject the heartbeat
    assert rig.runner().health() is None


def test_the_child_installs_as_a_device_does_unless_a_development_site_is_named() -> None:
    """XL_UPDATE_DEV_SITE (tests/e2e/test_ota_rollout.py): the release venv is this interpreter's,
    with the agent wheel alone over that site's packages; unset, the device's defaults."""
    from agent.update.apply_cli import DEV_SITE_ENV, install_options
    from agent.update.install import InstallOptions

    assert install_options({}) == InstallOptions()
    assert install_options({DEV_SITE_ENV: ""}) == InstallOptions()
    dev = install_options({DEV_SITE_ENV: "/srv/site-packages"})
    assert (dev.python, dev.no_deps, dev.extra_paths) == (sys.executable, True, (Path("/srv/site-packages"),))
