"""first-boot.sh on a fresh bundle in the emulated Pi userland, then the unit's own command.

The card is written by ``xl-provision sd-card`` onto a small image laid out like
Raspberry Pi OS's (tests/support/sd_image.py), with the aarch64 wheels from
tools/pi-wheels.sh so nothing comes from PyPI; its boot partition becomes
/boot/firmware in a fresh overlay of the cached Debian arm64 root filesystem,
and firstrun.sh runs there as root, as the kernel command line's systemd.run
would run it. systemd is not PID 1 in a chroot, so ``systemctl`` only does its
offline work (enable); the unit is checked with ``systemd-analyze verify``,
and its ExecStart is run as its user with a notify socket, to see READY=1 and
the watchdog pings systemd would get; then the whole userland boots with systemd as
PID 1 (``systemd-nspawn --boot``) and the enabled unit is watched under systemd.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from protocol.codec import decode_state
from protocol.topics import state_topic
from provisioning.cli import main as xl_provision
from tests.pi.chroot import CPUINFO, REPO, Chroot
from tests.pi.conftest import TIMINGS, clip_frames
from tests.support.broker import Broker, run_broker
from tests.support.provisioned_county import County, build_county
from tests.support.sd_image import CMDLINE, CONFIG_TXT, fat_extract, make_image
from tests.support.tls import Hub

# Emulation is ~300x slower than this machine for inference, and the first run builds the root filesystem.
pytestmark = pytest.mark.timeout(1800)

BOOT = "/boot/firmware"


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[County, Broker]]:
    c = build_county(tmp_path_factory.mktemp("county-fb"), households=(("HF", "g7"),))
    with run_broker(c.conf(), port=c.port) as broker:
        yield c, broker
    c.engine.dispose()


@pytest.fixture(scope="module")
def booted(
    arm64_rootfs: Path, project_tree: Path, county: tuple[County, Broker], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Chroot, County, str]:
    """A fresh userland after its first boot from a card written by ``xl-provision sd-card``
    for device HF: (chroot, county, what first boot printed)."""
    c, _ = county
    work = tmp_path_factory.mktemp("pi-first-boot")
    wheels = work / "wheels"
    subprocess.run(
        ["bash", str(REPO / "tools" / "pi-wheels.sh"), str(wheels)],
        check=True,
        capture_output=True,
        timeout=600,
        env={**os.environ, "XL_PI_SRC": str(project_tree)},
    )
    image = make_image(work / "raspios.img")
    device = c.devices["HF"].device_id
    assert (
        xl_provision(["sd-card", device, "--state", str(c.state.root), "--image", str(image), "--wheels", str(wheels)])
        == 0
    )
    pi = Chroot(arm64_rootfs, work / "root")
    fat_extract(image, pi.upper / BOOT.lstrip("/"))  # what the Pi mounts at /boot/firmware
    # What the kernel command line's systemd.run does at first boot (then systemd reboots).
    run = pi.run(f"bash {BOOT}/firstrun.sh", timeout=1800)
    TIMINGS["first boot (firstrun.sh)"] = run.seconds
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return pi, c, run.stdout + run.stderr


def _owner(pi: Chroot, inside: str) -> str:
    return pi.run(f"stat -c '%U:%G %a' {shlex.quote(inside)}").check().stdout.strip()


def test_first_boot_installs_the_bundle_and_the_unit(booted: tuple[Chroot, County, str]) -> None:
    pi, c, output = booted
    bundle = c.devices["HF"].bundle
    assert "first-boot: done" in output
    # firstrun.sh removed itself and its hook, so the next boot is an ordinary one.
    assert not pi.read(f"{BOOT}/firstrun.sh").exists()
    assert pi.read(f"{BOOT}/cmdline.txt").read_text() == CMDLINE
    # Debian's archive has no python3-picamera2: the script says so and carries on.
    assert "python3-picamera2 is not in this system's apt sources" in output
    assert _owner(pi, "/etc/xueliang/tls/device.key") == "xueliang:xueliang 600"
    assert _owner(pi, "/etc/xueliang/agent.yaml") == "root:xueliang 640"
    assert _owner(pi, "/var/lib/xueliang") == "xueliang:xueliang 750"
    groups = pi.run("id -nG xueliang").check().stdout.split()
    assert {"video", "gpio"} <= set(groups)
    installed = {
        "/etc/systemd/system/xueliang-agent.service": "system/xueliang-agent.service",
        "/etc/systemd/system.conf.d/xueliang-watchdog.conf": "system/watchdog.conf",
        "/etc/systemd/journald.conf.d/xueliang.conf": "system/journald.conf",
        "/etc/systemd/timesyncd.conf.d/xueliang.conf": "system/timesyncd.conf",
        "/etc/xueliang/agent.yaml": "agent.yaml",
    }
    for inside, rel in installed.items():
        assert pi.read(inside).read_bytes() == (bundle / rel).read_bytes(), inside
    wants = pi.read("/etc/systemd/system/multi-user.target.wants/xueliang-agent.service")
    assert wants.is_symlink() and os.readlink(wants) == "/etc/systemd/system/xueliang-agent.service"
    config_txt = pi.read(f"{BOOT}/config.txt").read_text()
    assert config_txt.startswith(CONFIG_TXT) and config_txt.count("# --- xueliang begin") == 1
    assert "dtparam=watchdog=on" in config_txt
    # The key does not stay on the FAT partition, which has no permissions.
    assert not pi.read(f"{BOOT}/xueliang/tls/device.key").exists()
    assert pi.read("/var/lib/xueliang/.first-boot-done").exists()
    # The first release is laid out as every update is (docs/ota.md section 3).
    link = os.readlink(pi.read("/opt/xueliang/current"))
    assert link.startswith("releases/") and not list(pi.read("/opt/xueliang/releases").glob(".*"))
    release = f"/opt/xueliang/{link}"
    assert stat.S_ISREG(pi.read(f"{release}/venv/bin/xl-agent").lstat().st_mode)
    assert pi.read(f"{release}/venv/bin/xl-agent").read_text().startswith(f"#!{release}/venv/bin/python")
    assert json.loads(pi.read(f"{release}/manifest.json").read_text())["version"] == link.removeprefix("releases/")
    assert list(pi.read(f"{release}/files").glob("xueliang_edge-*.whl"))  # the base of the first delta
    assert _owner(pi, "/opt/xueliang/guard.py") == "xueliang:xueliang 644"
    assert _owner(pi, "/opt/xueliang/releases") == "xueliang:xueliang 755"
    assert _owner(pi, "/var/lib/xueliang/update") == "xueliang:xueliang 750"
    # The venv sees the system's packages, where apt's picamera2 lives on Pi OS.
    cfg = pi.read(f"{release}/venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg


def test_systemd_analyze_verify_passes(booted: tuple[Chroot, County, str]) -> None:
    pi, _, _ = booted
    run = pi.run("systemd-analyze verify /etc/systemd/system/xueliang-agent.service")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "xueliang" not in run.stdout + run.stderr  # no complaint about our unit
    # The drop-ins parse too: systemd-analyze cat-config prints them merged.
    cat = pi.run("systemd-analyze cat-config systemd/system.conf").check()
    assert "RuntimeWatchdogSec=" in cat.stdout


def test_a_second_run_changes_nothing(booted: tuple[Chroot, County, str]) -> None:
    pi, _, _ = booted
    run = pi.run(f"sh {BOOT}/xueliang/first-boot.sh").check()
    assert "already done" in run.stdout


def _unit_value(unit: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "="))


@pytest.fixture(scope="module")
def pointed(booted: tuple[Chroot, County, str]) -> tuple[Chroot, County]:
    """The installed config pointed at the host's test broker and the camera port's fake (no
    libcamera here: 40 s of OpenCV's pedestrian clip as an image folder, looped at camera.fps);
    everything else is what first boot installed."""
    pi, c, _ = booted
    path = pi.upper / "etc/xueliang/agent.yaml"
    text = pi.read("/etc/xueliang/agent.yaml").read_text()
    url = next(line for line in text.splitlines() if line.strip().startswith("url:"))
    pi.put("/opt/xl-camera", clip_frames(REPO / "var" / "clips" / "vtest.avi", pi.work / "camera", limit=400))
    path.write_text(text.replace(url, f'  url: "mqtts://localhost:{c.port}"') + "\ncamera:\n  source: /opt/xl-camera\n")
    return pi, c


def test_the_units_command_as_its_user_reaches_ready_and_pings_the_watchdog(pointed: tuple[Chroot, County]) -> None:
    """What systemd would see, without systemd: the unit's ExecStart as User=, with NOTIFY_SOCKET
    and WATCHDOG_USEC set as systemd sets them. The notify socket is an abstract unix socket,
    which the chroot shares with the host (same network namespace)."""
    pi, _c = pointed
    unit = pi.read("/etc/systemd/system/xueliang-agent.service").read_text()
    exec_start, user = _unit_value(unit, "ExecStart"), _unit_value(unit, "User")
    # ExecStartPre, the guard, as the same user: it writes state.json from the current link.
    guard = _unit_value(unit, "ExecStartPre").lstrip("-")
    pi.run(f"cd /var/lib/xueliang && runuser -u {user} -- {guard}").check()
    state = json.loads(pi.read("/var/lib/xueliang/update/state.json").read_text())
    assert state["good"] == [state["current"]] and state["trial"] is None
    assert int(_unit_value(unit, "WatchdogSec")) == 60
    # systemd passes WatchdogSec as WATCHDOG_USEC; 10 s here instead of the unit's 60 keeps
    # the test short (the agent pings at half of whatever it is given).
    watchdog_s = 10
    name = f"xl-notify-{uuid.uuid4().hex[:8]}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(1.0)
    env = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": str(watchdog_s * 1_000_000)}
    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    log = pi.work / "agent.log"
    proc = pi.popen(f"cd /var/lib/xueliang && exec runuser -u {user} -- env {envs} {exec_start}", log=log)
    got: list[tuple[float, str]] = []
    start = time.monotonic()
    try:
        deadline = start + 600
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                got.append((time.monotonic() - start, sock.recv(4096).decode()))
            except TimeoutError:
                continue
            if sum("WATCHDOG=1" in m for _, m in got) >= 3:
                break
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        sock.close()
    messages = [m for _, m in got]
    assert proc.returncode is not None
    assert any("READY=1" in m for m in messages), (messages, log.read_text()[-3000:])
    ready_at = next(t for t, m in got if "READY=1" in m)
    TIMINGS["unit command to READY=1"] = ready_at
    pings = [t for t, m in got if "WATCHDOG=1" in m and t >= ready_at]
    assert len(pings) >= 3, (messages, log.read_text()[-3000:])
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) < watchdog_s  # a later ping and systemd would have killed and restarted it


def _show(pi: Chroot, nspawn: subprocess.Popen[bytes]) -> dict[str, str]:
    run = pi.in_container(
        nspawn,
        "systemctl show xueliang-agent -p ActiveState,SubState,NRestarts,MainPID,WatchdogTimestampMonotonic,StatusText",
    )
    return dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)


def test_systemd_in_the_container_starts_the_agent_and_its_watchdog_keeps_it(pointed: tuple[Chroot, County]) -> None:
    """The card's userland booted with systemd as PID 1 (systemd-nspawn --boot): the enabled
    unit becomes active, which for Type=notify means READY=1 arrived, then outlives WatchdogSec
    with the watchdog being reset and no restart, and the device says online to the county broker."""
    pi, c = pointed
    dev = c.devices["HF"]
    # Emulation only, not the product: the service's own mount namespace gets the Pi 4's
    # /proc/cpuinfo (qemu-user shows the host's, and LiteRT then segfaults: seen here as
    # status=11/SEGV and Restart=always climbing to its start limit).
    shutil.copy(CPUINFO, pi.upper / "etc/xl-cpuinfo")
    dropin = pi.upper / "etc/systemd/system/xueliang-agent.service.d/qemu-cpuinfo.conf"
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nBindReadOnlyPaths=/etc/xl-cpuinfo:/proc/cpuinfo\n")
    hub_id = c.identity("hub")
    p: Any = SimpleNamespace(ca=hub_id["ca"], hub_cert=hub_id["cert"], hub_key=hub_id["key"])
    hub = Hub(p, SimpleNamespace(port=c.port), [state_topic(dev.device_id)])  # type: ignore[arg-type]
    log = pi.work / "nspawn.log"
    nspawn = pi.boot(log)
    start = time.monotonic()
    try:
        state: dict[str, str] = {}
        while time.monotonic() - start < 600 and nspawn.poll() is None:
            state = _show(pi, nspawn)
            if state.get("ActiveState") == "active":
                break
            time.sleep(2)
        assert state.get("ActiveState") == "active", (state, log.read_bytes()[-3000:])
        TIMINGS["nspawn boot to unit active"] = time.monotonic() - start
        main_pid, resets = state["MainPID"], {state["WatchdogTimestampMonotonic"]}
        watch_until = time.monotonic() + 75  # beyond WatchdogSec=60: a missed ping would restart it
        while time.monotonic() < watch_until:
            time.sleep(5)
            state = _show(pi, nspawn)
            assert state["ActiveState"] == "active" and state["NRestarts"] == "0", state
            assert state["MainPID"] == main_pid, state
            resets.add(state["WatchdogTimestampMonotonic"])
        assert len(resets) >= 3, resets  # WATCHDOG=1 every 30 s, accepted from the main process
        hub.wait(lambda m: any(decode_state(pl).state == "online" for _, pl in m), timeout=60)
        journal = pi.in_container(nspawn, "journalctl -u xueliang-agent --no-pager").stdout
        assert "Watchdog timeout" not in journal and "notification message from PID" not in journal, journal
        assert "running as " + dev.device_id in journal
    finally:
        hub.close()
        pi.shut_down(nspawn)
