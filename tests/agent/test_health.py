"""Heartbeat contents from a fake /proc and /sys, degrading off a Pi, and the full-outbox drop count."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from agent import outbox as ob
from agent.clock import DeviceClock
from agent.health import HealthReporter, HealthSources
from agent.outbox import Outbox
from protocol.codec import decode_health, encode
from protocol.messages import Health

MEMINFO = "MemTotal:         927800 kB\nMemFree:          100000 kB\nMemAvailable:     626688 kB\n"
WIRELESS = (
    "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
    " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
    " wlan0: 0000   43.  -67.  -256        0      0      0      0      0        0\n"
)


def fake_pi(root: Path) -> Path:
    (root / "sys/class/thermal/thermal_zone0").mkdir(parents=True)
    (root / "sys/class/thermal/thermal_zone0/temp").write_text("51234\n")
    (root / "proc/net").mkdir(parents=True)
    (root / "proc/loadavg").write_text("0.42 0.30 0.20 1/123 4567\n")
    (root / "proc/meminfo").write_text(MEMINFO)
    (root / "proc/net/wireless").write_text(WIRELESS)
    vcgencmd = root / "vcgencmd"
    vcgencmd.write_text("#!/bin/sh\necho throttled=0x50005\n")
    os.chmod(vcgencmd, 0o755)
    return vcgencmd


def test_health_from_a_pi_and_drops_reported(tmp_path: Path) -> None:
    vcgencmd = fake_pi(tmp_path / "root")
    box = Outbox(tmp_path / "o.sqlite3", max_rows=10)
    for _ in range(15):
        box.put("t", b"m", priority=ob.MOTION, kind="motion")
    sent: list[Health] = []
    reporter = HealthReporter(
        HealthSources(
            outbox=box,
            clock=DeviceClock(probe=lambda: "synced"),
            state_dir=tmp_path,
            boot=3,
            interval_s=60,
            armed=lambda: True,
            root=tmp_path / "root",
            vcgencmd=str(vcgencmd),
        ),
        publish=lambda h: sent.append(h) or True,
    )
    health = reporter.tick()
    assert health is not None and sent == [health]
    assert health.cpu_temp_c == 51.234 and health.throttled == 0x50005 and health.load1 == 0.42
    assert (health.mem_avail_mb, health.mem_total_mb) == (612, 906)
    assert health.rssi_dbm == -67 and health.clock == "synced" and health.armed is True
    assert health.outbox_depth == 10 and health.outbox_dropped == 5  # the full outbox's drops
    assert health.disk_free_mb is not None and health.camera == "off" and health.boot == 3
    assert decode_health(encode(health)).outbox_dropped == 5  # fits the wire contract
    assert reporter.tick() is None  # nothing changed, interval not up


def test_health_off_a_pi_degrades_to_none(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    reporter = HealthReporter(
        HealthSources(
            outbox=box,
            clock=DeviceClock(probe=lambda: "unknown"),
            state_dir=tmp_path / "nowhere",
            boot=1,
            interval_s=60,
            root=tmp_path / "empty",
            vcgencmd=None,
        ),
        publish=lambda h: True,
    )
    health = reporter.build()
    assert health.cpu_temp_c is None and health.throttled is None and health.load1 is None
    assert health.rssi_dbm is None and health.disk_free_mb is None and health.clock == "unknown"
    encode(health)


def armed_reporter(
    tmp_path: Path, interval_s: int, armed: list[bool], publish: Callable[[Health], bool], pi: bool = False
) -> tuple[HealthReporter, Outbox]:
    """A reporter whose arming the test flips, on a fake Pi (``pi``) or on nothing."""
    vcgencmd = fake_pi(tmp_path / "root") if pi else None
    box = Outbox(tmp_path / "o.sqlite3")
    sources = HealthSources(
        outbox=box,
        clock=DeviceClock(probe=lambda: "synced"),
        state_dir=tmp_path,
        boot=1,
        interval_s=interval_s,
        armed=lambda: armed[0],
        root=tmp_path / "root" if pi else tmp_path,
        vcgencmd=str(vcgencmd) if vcgencmd else None,
    )
    return HealthReporter(sources, publish=publish), box


def test_significant_change_is_sent_early(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import agent.health as health_mod

    monkeypatch.setattr(health_mod, "MIN_GAP_S", 0.0)
    sent: list[Health] = []
    armed = [False]
    reporter, box = armed_reporter(tmp_path, 3600, armed, lambda h: sent.append(h) or True)
    reporter.tick()
    assert reporter.tick() is None
    armed[0] = True
    assert reporter.tick() is not None and sent[-1].armed is True
    box.error = "outbox write failed: disk full"
    assert reporter.tick() is not None and sent[-1].error == "outbox write failed: disk full"


def test_clock_unsynced_flag(tmp_path: Path) -> None:
    assert DeviceClock(probe=lambda: "unsynced").unsynced
    assert not DeviceClock(probe=lambda: "unknown").unsynced
    # A wall clock in 1970 (no RTC, before NTP) is unsynced whatever the service says.
    assert DeviceClock(probe=lambda: "synced", wall_ms=lambda: 1000).state == "unsynced"
    flag = tmp_path / "synchronized"
    from agent.clock import probe_sync

    assert probe_sync(flag, timedatectl=None) == "unknown"
    flag.touch()
    assert probe_sync(flag, timedatectl=None) == "synced"


def test_between_full_reports_only_what_changed_is_sent(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import agent.health as health_mod

    monkeypatch.setattr(health_mod, "MIN_GAP_S", 0.0)
    sent: list[bytes] = []
    armed = [False]
    reporter, box = armed_reporter(tmp_path, 1800, armed, lambda h: sent.append(encode(h)) or True, pi=True)
    full = reporter.tick()
    assert full is not None and not full.delta and full.cpu_temp_c is not None and full.interval_s == 1800
    armed[0] = True
    delta = reporter.tick()
    assert delta is not None and delta.delta
    # Only the change (the readings of a fake Pi do not move); the wire form is a few dozen bytes.
    assert decode_health(sent[-1]).armed is True and decode_health(sent[-1]).cpu_temp_c is None
    assert set(json.loads(sent[-1])) - {"disk"} == {"v", "t", "d", "arm"}  # the free space of a real disk may move
    assert len(sent[-1]) < len(sent[0]) / 4
    box.error = "outbox write failed: disk full"
    assert reporter.tick() is not None and decode_health(sent[-1]).error == "outbox write failed: disk full"
    assert decode_health(sent[-1]).delta
    # A key that went away cannot be said as a change: clearing the error makes a full report.
    box.error = None
    cleared = reporter.tick()
    assert cleared is not None and not cleared.delta and cleared.error is None and cleared.cpu_temp_c is not None
    assert reporter.deltas == 2 and reporter.sent == 4
    # Nothing changed: nothing sent until the full report is due.
    assert reporter.tick() is None
    reporter._last_full -= 1800
    again = reporter.tick()
    assert again is not None and not again.delta


def test_a_config_push_and_a_profile_switch_are_sent_as_deltas(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import agent.health as health_mod

    class Pipeline:
        profile: str | None = "day"
        stats = None

    class Capture:
        state, error, fps = "ok", None, 10.0
        pipeline = Pipeline()

    monkeypatch.setattr(health_mod, "MIN_GAP_S", 0.0)
    sent: list[bytes] = []
    rev = [0]
    reporter, _ = armed_reporter(tmp_path, 1800, [False], lambda h: sent.append(encode(h)) or True, pi=True)
    reporter.s.capture, reporter.s.config_rev = Capture(), lambda: rev[0]
    full = reporter.tick()
    assert full is not None and full.profile == "day" and full.config_rev is None  # 0: the file's own
    assert reporter.tick() is None
    rev[0] = 4
    assert reporter.tick() is not None
    assert set(json.loads(sent[-1])) - {"disk"} == {"v", "t", "d", "cfg"} and decode_health(sent[-1]).config_rev == 4
    Capture.pipeline.profile = "night"  # the IR light came on
    assert reporter.tick() is not None and decode_health(sent[-1]).profile == "night"
    assert decode_health(sent[-1]).delta
