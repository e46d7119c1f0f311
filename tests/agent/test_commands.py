"""Hub commands: every one answered with an ack through the outbox, bad ones with an error ack."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from agent.clock import DeviceClock
from agent.commands import CommandPorts, Commands
from agent.outbox import Outbox
from agent.outbox_writer import OutboxWriter
from agent.schedule import Arming, in_hours
from protocol.codec import decode_ack, encode
from protocol.messages import Command

DEVICE = "62062101011198000123"
NOON = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def rig(tmp_path: Path, ports: CommandPorts | None = None) -> tuple[Commands, Outbox, Arming]:
    box = Outbox(tmp_path / "o.sqlite3")
    arming = Arming(tmp_path / "arming.json", "21:00", "06:00", now=lambda: NOON)
    cmds = Commands(OutboxWriter(DEVICE, box, 1, DeviceClock(probe=lambda: "synced")), arming, ports or CommandPorts())
    return cmds, box, arming


def test_arm_disarm_schedule_persist(tmp_path: Path) -> None:
    cmds, box, arming = rig(tmp_path)
    assert not arming.armed  # noon is outside 21:00-06:00
    ack = cmds.handle(encode(Command(command_id="c-1", op="arm")))
    assert ack.ok and arming.armed
    reread = Arming(tmp_path / "arming.json", "21:00", "06:00", now=lambda: NOON)
    assert reread.armed  # survives a restart
    cmds.handle(encode(Command(command_id="c-2", op="disarm")))
    assert not arming.armed
    cmds.handle(encode(Command(command_id="c-3", op="schedule", args={"from": "11:00", "to": "13:00"})))
    assert arming.armed and arming.manual is None
    acks = [decode_ack(m.payload) for m in box.pending(10)]
    assert [(a.of, a.ref_id, a.ok) for a in acks] == [
        ("cmd", "c-1", True),
        ("cmd", "c-2", True),
        ("cmd", "c-3", True),
    ]


def test_invalid_commands_get_error_acks(tmp_path: Path) -> None:
    cmds, box, _ = rig(tmp_path)
    bad = [
        b'{"v":1,"id":"c-7f3b","op":"reboot"}',
        b'{"v":1,"id":"c-9","op":"schedule","a":{"from":"25:00","to":"06:00"}}',
        b'{"v":1,"id":"c-10","op":"arm","a":{"force":1}}',
        b'{"v":9,"id":"c-11","op":"arm"}',
        b"not json at all",
    ]
    acks = [cmds.handle(p) for p in bad]
    assert [a.ok for a in acks] == [False] * 5
    assert [a.ref_id for a in acks] == ["c-7f3b", "c-9", "c-10", "c-11", "unknown"]
    assert acks[0].error == "unknown op 'reboot'"
    assert all(a.error for a in acks)
    stored = [decode_ack(m.payload) for m in box.pending(10)]  # they decode on the hub side too
    assert [a.ref_id for a in stored] == ["c-7f3b", "c-9", "c-10", "c-11", "unknown"]
    assert cmds.rejected == 5


def test_ports_answer_and_their_failures_become_error_acks(tmp_path: Path) -> None:
    seen: list[object] = []

    def boom() -> str | None:
        raise RuntimeError("camera gone")

    ports = CommandPorts(
        identify=lambda s: seen.append(("identify", s)),
        snapshot=lambda w: seen.append(("snapshot", w)),
        restart=boom,
    )
    cmds, _, _ = rig(tmp_path, ports)
    assert cmds.handle(encode(Command(command_id="i", op="identify", args={"s": 20}))).ok
    assert cmds.handle(encode(Command(command_id="s", op="snapshot", args={"w": 320}))).ok
    failed = cmds.handle(encode(Command(command_id="r", op="restart")))
    assert not failed.ok and failed.error is not None and "camera gone" in failed.error
    reload = cmds.handle(encode(Command(command_id="l", op="reload")))
    assert not reload.ok and reload.error == "not available on this device"
    assert seen == [("identify", 20), ("snapshot", 320)]


def test_armed_hours_span_midnight() -> None:
    at = lambda h, m: dt.datetime(2026, 1, 1, h, m)  # noqa: E731
    assert in_hours(at(23, 0), "21:30", "06:30") and in_hours(at(2, 0), "21:30", "06:30")
    assert not in_hours(at(12, 0), "21:30", "06:30") and not in_hours(at(6, 30), "21:30", "06:30")
    assert in_hours(at(12, 0), "08:00", "18:00") and not in_hours(at(18, 0), "08:00", "18:00")


def test_clip_and_clips_reach_their_ports(tmp_path: Path) -> None:
    seen: list[object] = []

    def clip(event_id: int) -> str | None:
        seen.append(event_id)
        return "no clip for event 7" if event_id == 7 else None

    def clips(auto: list[str], daily: int) -> None:
        seen.append((auto, daily))

    ports = CommandPorts(clip=clip, clips=clips)
    cmds, _, _ = rig(tmp_path, ports)
    assert cmds.handle(encode(Command(command_id="c-1", op="clip", args={"id": 12884901929}))).ok
    ack = cmds.handle(encode(Command(command_id="c-2", op="clip", args={"id": 7})))
    assert not ack.ok and ack.error == "no clip for event 7"
    assert cmds.handle(encode(Command(command_id="c-3", op="clips", args={"auto": ["panic"], "daily": 5}))).ok
    assert seen == [12884901929, 7, (["panic"], 5)]
    bare, _, _ = rig(tmp_path / "bare")  # a device without the recorder says so
    ack = bare.handle(encode(Command(command_id="c-4", op="clip", args={"id": 1})))
    assert not ack.ok and ack.error == "not available on this device"


def test_a_command_past_its_expiry_is_refused_only_by_a_synced_clock(tmp_path: Path) -> None:
    """Bulk jobs (issue 21) set ``x``: a device back after it must not carry out a stale arm."""
    now = 1_764_138_000_000
    box = Outbox(tmp_path / "o.sqlite3")
    arming = Arming(tmp_path / "arming.json", "21:00", "06:00", now=lambda: NOON)
    synced = DeviceClock(probe=lambda: "synced", wall_ms=lambda: now)
    cmds = Commands(OutboxWriter(DEVICE, box, 1, synced), arming, CommandPorts())
    late = cmds.handle(encode(Command(command_id="c-1", op="arm", expires_ms=now - 90_000)))
    assert not late.ok and late.error == "expired 90 s ago" and not arming.armed
    in_time = cmds.handle(encode(Command(command_id="c-2", op="arm", expires_ms=now + 1000)))
    assert in_time.ok and arming.armed
    # Without NTP the device cannot tell how late it is: it acts, as a device from before x does.
    unsynced = DeviceClock(probe=lambda: "unsynced", wall_ms=lambda: now)
    cmds = Commands(OutboxWriter(DEVICE, box, 1, unsynced), arming, CommandPorts())
    assert cmds.handle(encode(Command(command_id="c-3", op="disarm", expires_ms=now - 90_000))).ok
    assert not arming.armed
