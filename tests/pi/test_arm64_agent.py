"""The agent installed and running on the Pi's CPU: Debian bookworm arm64 under qemu-user-static.

Installed as the README tells a Pi user (the ``pi`` fixture), then:
``xl-agent check`` against a Mosquitto on the host running the broker config
``xl-provision`` generates; a real clip replayed with the real model through
LiteRT on aarch64, compared event for event with x86; and the agent's own
outbox, GPIO (MockFactory) and link tests run inside.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pi.chroot import REPO, Chroot
from tests.pi.conftest import TESTS, TIMINGS, VENV, clip_frames
from tests.support.broker import Broker, run_broker
from tests.support.provisioned_county import County, build_county

# Megamind.avi (OpenCV's sample, 270 frames, 36 detector runs on x86): at ~1.8 s per
# inference under emulation, vtest.avi's 197 runs would cost CI about 6 minutes.
CLIP = REPO / "var" / "clips" / os.environ.get("XL_PI_CLIP", "Megamind.avi")
PY = f"{VENV}/bin/python"
# Emulation is ~300x slower than this machine for inference, and the first run builds the root filesystem.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def host_county(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[County, Broker]]:
    """A provisioned county and its Mosquitto on the host, with the generated TLS and dynamic-security config."""
    c = build_county(tmp_path_factory.mktemp("county"))
    with run_broker(c.conf(), port=c.port) as broker:
        yield c, broker
    c.engine.dispose()


def install_bundle_config(pi: Chroot, c: County, household: str, camera: str | None) -> str:
    """The device's bundle as first-boot.sh lays it out (/etc/xueliang), pointed at the host's test broker."""
    dev = c.devices[household]
    for name in ("ca.crt", "device.crt", "device.key"):
        pi.put(f"/etc/xueliang/tls/{name}", dev.bundle / "tls" / name)
    text = (dev.bundle / "agent.yaml").read_text(encoding="utf-8")
    url_line = next(line for line in text.splitlines() if line.strip().startswith("url:"))
    text = text.replace(url_line, f'  url: "mqtts://localhost:{c.port}"')
    if camera is not None:
        text += f"\ncamera:\n  source: {camera}\n"
    path = f"/etc/xueliang/agent-{household}.yaml"
    target = pi.upper / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return path


def test_installed_for_aarch64_from_pypi_wheels(pi: Chroot) -> None:
    probe = (
        "import json, platform, numpy, ai_edge_litert, paho.mqtt, gpiozero, agent, "
        "importlib.metadata as m; "
        "print(json.dumps({'machine': platform.machine(), 'python': platform.python_version(), "
        "'numpy': numpy.__version__, 'litert': m.version('ai-edge-litert'), 'agent': agent.__file__}))"
    )
    run = pi.run(f"{PY} -c {shlex.quote(probe)}").check()
    facts = json.loads(run.stdout.strip().splitlines()[-1])
    assert facts["machine"] == "aarch64"
    assert facts["python"].startswith("3.11.")  # bookworm's python3, as on Pi OS Bookworm
    assert facts["numpy"] == "2.4.6" and facts["litert"] == "2.3.0"  # pinned by constraints.txt
    assert facts["agent"].startswith(f"{VENV}/lib/python3.11/site-packages/")  # the wheel, not a source tree
    wheel_tags = pi.run(f"cat {VENV}/lib/python3.11/site-packages/ai_edge_litert-*.dist-info/WHEEL").check()
    assert "aarch64" in wheel_tags.stdout


def test_xl_agent_check_on_aarch64(pi: Chroot, host_county: tuple[County, Broker], tmp_path: Path) -> None:
    c, _broker = host_county
    # The bundle's own config: the Pi camera. picamera2 comes from the Raspberry Pi archive,
    # which is not reachable here, so the camera line must FAIL and say what to install.
    real = install_bundle_config(pi, c, "HA", camera=None)
    run = pi.run(f"{VENV}/bin/xl-agent check --config {real}", timeout=600)
    lines = {line.split()[1]: line for line in run.stdout.splitlines() if len(line.split()) > 1}
    assert run.returncode == 1, run.stdout + run.stderr
    for part in ("config", "certificate", "model", "broker"):
        assert lines[part].startswith("PASS"), run.stdout
    assert lines["camera"].startswith("FAIL") and "python3-picamera2" in lines["camera"], run.stdout
    assert "ai-edge-litert" in lines["model"] and "CONNACK Success" in lines["broker"], run.stdout

    # The camera port's fake: an image folder (synthetic scenes need scikit-image, which a Pi
    # does not install). Everything passes.
    pi.put("/opt/xl-camera", clip_frames(CLIP, tmp_path / "camera", limit=20))
    fake = install_bundle_config(pi, c, "HB", camera="/opt/xl-camera")
    run = pi.run(f"{VENV}/bin/xl-agent check --config {fake}", timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASS overall" in run.stdout


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _replay_both(pi: Chroot, src: Path, source: Path, inside: str, out: Path, extra: list[str]) -> tuple[Any, ...]:
    """``xl-agent replay`` of the same source on x86 (this venv's packages, the Pi's source tree)
    and on aarch64: events and summaries."""
    host_events, host_summary = out / "x86.jsonl", out / "x86.json"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from agent.cli import main; sys.exit(main(sys.argv[1:]))",
            "replay",
            str(source),
            *extra,
            "--events-out",
            str(host_events),
            "--summary-json",
            str(host_summary),
        ],
        check=True,
        capture_output=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    pi.put(inside, source)
    run = pi.run(
        f"{VENV}/bin/xl-agent replay {inside} {' '.join(extra)} --events-out {inside}.jsonl "
        f"--summary-json {inside}.json",
        timeout=1800,
    ).check()
    TIMINGS[f"replay {Path(inside).name} (aarch64)"] = run.seconds
    arm_s = json.loads(pi.read(f"{inside}.json").read_text())
    x86_s = json.loads(host_summary.read_text())
    assert arm_s["runtime"] == x86_s["runtime"] == "ai-edge-litert"
    return _events(pi.read(f"{inside}.jsonl")), _events(host_events), arm_s, x86_s


COUNTS = ("frames", "motion_frames", "inference_runs", "relearn_runs", "person_events", "events")


def test_real_clip_replay_on_aarch64_matches_x86(pi: Chroot, project_tree: Path, tmp_path: Path) -> None:
    if not CLIP.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CLIP} missing: tools/fetch-test-clips.sh did not run or failed")
        pytest.skip(f"{CLIP} not fetched (run tools/fetch-test-clips.sh)")
    # The same pixels on both CPUs: every event, score and box is identical, so the
    # model and LiteRT's int8 kernels on aarch64 give what they give on x86.
    frames = clip_frames(CLIP, tmp_path / "frames")
    fps = ["--fps", "23.976"]
    arm, x86, arm_s, x86_s = _replay_both(pi, project_tree, frames, "/opt/xl-clips/frames", tmp_path, fps)
    assert arm and arm == x86
    assert {k: arm_s[k] for k in COUNTS} == {k: x86_s[k] for k in COUNTS}

    # The clip itself, decoded by each CPU's PyAV (agent.vision.video_file): bit-exact decoding
    # and colour conversion, so the pixels and with them every event, score and box are the
    # same. With FFmpeg's default fast paths (OpenCV's, and PyAV's before) they differed from
    # the second frame on, and once an update's person count with them.
    (tmp_path / "clip").mkdir()
    arm, x86, arm_s, x86_s = _replay_both(pi, project_tree, CLIP, f"/opt/xl-clips/{CLIP.name}", tmp_path / "clip", [])
    assert {k: arm_s[k] for k in COUNTS} == {k: x86_s[k] for k in COUNTS}
    assert arm and arm == x86


def test_agent_outbox_and_gpio_tests_pass_inside(pi: Chroot) -> None:
    files = ["test_outbox.py", "test_alerts.py", "test_watchdog.py", "test_bootcount.py", "test_commands.py"]
    args = " ".join(f"tests/agent/{f}" for f in files)
    run = pi.run(f"cd {TESTS} && {PY} -m pytest -q {args}", timeout=1800)
    TIMINGS["agent tests inside"] = run.seconds
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout and " skipped" not in run.stdout


def test_link_inside_against_host_mosquitto(pi: Chroot, host_county: tuple[County, Broker]) -> None:
    """The agent's MQTT link on aarch64 to the host's broker (generated TLS + dynamic-security config),
    as the real device of household HC, with the hub's identity reading on the other side."""
    c, _broker = host_county
    dev = c.devices["HC"]
    pi.put("/opt/xl-link/device", dev.bundle / "tls")
    for name, src in c.identity("hub").items():
        pi.put(f"/opt/xl-link/hub/{name}", src)
    env = {
        "XL_LINK_PORT": str(c.port),
        "XL_LINK_DEVICE": dev.device_id,
        "XL_LINK_GROUP": dev.group,
        "XL_LINK_DIR": "/opt/xl-link",
    }
    run = pi.run(f"cd {TESTS} && {PY} -m pytest -q tests/pi/inside/link_host_broker.py", env=env, timeout=900)
    TIMINGS["link tests inside"] = run.seconds
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout and " skipped" not in run.stdout
