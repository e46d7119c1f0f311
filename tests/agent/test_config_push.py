"""The ``config`` command on the device: validated by the file's schema, applied, kept across restarts,
refused with the key at fault, and a damaged kept push never stops a start (agent.config_push)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.clock import DeviceClock
from agent.commands import CommandPorts, Commands
from agent.config import parse
from agent.config_push import PENDING_FILE, STATE_FILE, ConfigPusher
from agent.config_vision import VisionConfig
from agent.outbox import Outbox
from agent.outbox_writer import OutboxWriter
from agent.schedule import Arming
from protocol.codec import encode
from protocol.messages import Ack, Command

DEVICE = "62062101011198000123"
MASK = [[0.0, 0.0], [0.3, 0.0], [0.3, 0.2], [0.0, 0.2]]
FILE_VISION = {"sensitivity": "high", "masks": [[[0.5, 0.5], [0.9, 0.5], [0.9, 0.9]]], "detect": {"detect_fps": 2}}


class Applied:
    def __init__(self) -> None:
        self.configs: list[VisionConfig] = []

    def __call__(self, config: VisionConfig) -> None:
        self.configs.append(config)


def pusher(tmp_path: Path, applied: Applied | None = None) -> ConfigPusher:
    return ConfigPusher(dict(FILE_VISION), tmp_path, applied or Applied())


def commands(tmp_path: Path, p: ConfigPusher) -> tuple[Commands, Outbox]:
    box = Outbox(tmp_path / "o.sqlite3")
    arming = Arming(tmp_path / "arming.json", "21:00", "06:00")
    writer = OutboxWriter(DEVICE, box, 1, DeviceClock(probe=lambda: "synced"))
    cmds = Commands(writer, arming, CommandPorts(config=p.submit))
    p.reply = cmds.reply
    p.start()
    return cmds, box


def push(p: ConfigPusher, cmds: Commands, rev: int, vision: dict[str, Any]) -> Ack:
    """A push as the MQTT thread gets it: no ack there (ACK_LATER), the worker's once it is done."""
    acks: list[Ack] = []
    p.reply = lambda cid, error: acks.append(cmds.reply(cid, error))
    payload = encode(Command(command_id=f"c-{rev}", op="config", args={"rev": rev, "vision": vision}))
    assert cmds.handle(payload) is None
    p.wait_idle()
    (ack,) = acks
    assert ack.ref_id == f"c-{rev}"
    return ack


def test_a_push_replaces_only_its_keys_is_applied_and_kept(tmp_path: Path) -> None:
    applied = Applied()
    p = pusher(tmp_path, applied)
    cmds, _ = commands(tmp_path, p)
    ack = push(p, cmds, 3, {"masks": [MASK]})
    assert ack.ok and ack.error is None
    (config,) = applied.configs
    # The pushed masks are added to the installer's, never put in their place.
    assert [list(map(list, m)) for m in config.motion.masks] == [*FILE_VISION["masks"], MASK]
    assert config.sensitivity == "high" and config.detect.detect_fps == 2  # the file's other keys stay
    assert p.rev == 3
    kept = json.loads((tmp_path / STATE_FILE).read_text())
    assert kept == {"rev": 3, "vision": {"masks": [MASK]}}
    # The next start (a reboot, a reload) comes up with the push over the file.
    again = pusher(tmp_path)
    restored = again.restore()
    assert restored is not None and again.rev == 3
    assert [list(map(list, m)) for m in restored.motion.masks] == [*FILE_VISION["masks"], MASK]


@pytest.mark.parametrize(
    ("vision", "fragment"),
    [
        ({"masks": [[[0.0, 0.0], [1.5, 0.0], [0.3, 0.2]]]}, "vision.masks"),
        ({"masks": [[[0.0, 0.0], [0.3, 0.0]]]}, "vision.masks"),
        ({"sensitivity": "low"}, "vision.sensitivity: cannot be set by a config push"),
        ({"detect": {"score_threshold": 0.1}}, "vision.detect: cannot be set by a config push"),
    ],
)
def test_a_bad_push_is_refused_naming_the_key_and_the_old_config_stays(
    tmp_path: Path, vision: dict[str, Any], fragment: str
) -> None:
    applied = Applied()
    p = pusher(tmp_path, applied)
    cmds, _ = commands(tmp_path, p)
    assert push(p, cmds, 1, {"masks": [MASK]}).ok
    before = (tmp_path / STATE_FILE).read_bytes()
    ack = push(p, cmds, 2, vision)
    assert not ack.ok and ack.error is not None and fragment in ack.error, ack.error
    assert len(applied.configs) == 1 and p.rev == 1 and p.refused == 1
    assert (tmp_path / STATE_FILE).read_bytes() == before


def test_no_push_takes_away_the_installers_masks(tmp_path: Path) -> None:
    """The console cannot see the masks drawn at the house: an empty mask list pushed from a
    fresh editor must not uncover what they hide."""
    applied = Applied()
    p = pusher(tmp_path, applied)
    cmds, _ = commands(tmp_path, p)
    assert push(p, cmds, 1, {"masks": [], "zones": [{"name": "gate", "polygon": MASK}]}).ok
    assert [list(map(list, m)) for m in applied.configs[-1].motion.masks] == FILE_VISION["masks"]
    assert [z.name for z in applied.configs[-1].zones] == ["gate"]


def test_an_empty_push_restores_the_files_own_section(tmp_path: Path) -> None:
    applied = Applied()
    p = pusher(tmp_path, applied)
    cmds, _ = commands(tmp_path, p)
    assert push(p, cmds, 1, {"masks": [MASK]}).ok
    assert push(p, cmds, 2, {}).ok
    assert [list(map(list, m)) for m in applied.configs[-1].motion.masks] == FILE_VISION["masks"]


@pytest.mark.parametrize(
    "content",
    [
        b'{"rev": 4, "vision": {"masks": [[[0, 0], [1',  # torn (written by something other than write_atomic)
        b"\x00\x00\x00",
        b'{"rev": "4", "vision": {}}',
        b'{"rev": 4, "vision": {"masks": [[[0, 0], [2, 0], [0, 1]]]}}',  # no longer fits the schema
        b'{"rev": 4, "vision": {"sensitivity": "low"}}',
    ],
)
def test_a_damaged_or_stale_kept_push_is_set_aside_and_the_start_goes_on(tmp_path: Path, content: bytes) -> None:
    (tmp_path / STATE_FILE).write_bytes(content)
    p = pusher(tmp_path)
    assert p.restore() is None and p.rev == 0
    assert not (tmp_path / STATE_FILE).exists()
    assert (tmp_path / (STATE_FILE + ".bad")).read_bytes() == content  # kept for a look, not lost


def test_the_file_section_is_kept_as_written_by_the_one_read_of_the_config_file() -> None:
    example = yaml.safe_load((Path(__file__).resolve().parents[2] / "agent/examples/agent.yaml").read_text())
    example["vision"] = {"sensitivity": "low", "masks": []}
    assert parse(example).vision_doc == {"sensitivity": "low", "masks": []}
    del example["vision"]
    assert parse(example).vision_doc == {}


def test_the_mqtt_thread_never_waits_for_the_validation(tmp_path: Path) -> None:
    """Validation takes a child process (seconds on a Pi Zero); the MQTT thread, which also carries
    the panic button's alert, only writes the push down and returns."""
    import time

    p = pusher(tmp_path)
    cmds, _ = commands(tmp_path, p)
    payload = encode(Command(command_id="c-1", op="config", args={"rev": 1, "vision": {"masks": [MASK]}}))
    t = time.monotonic()
    assert cmds.handle(payload) is None
    returned = time.monotonic() - t
    p.wait_idle()
    validated = time.monotonic() - t
    assert returned < validated / 5, (returned, validated)
    assert p.rev == 1 and not (tmp_path / PENDING_FILE).exists()


def test_a_push_received_before_a_kill_is_carried_out_and_answered_at_the_next_start(tmp_path: Path) -> None:
    """The broker had the PUBACK, so it never sends the command again: the pending file is what is left."""
    p = pusher(tmp_path)
    cmds, box = commands(tmp_path, p)
    p.stop()  # no worker: the process is killed before it validates
    cmds.handle(encode(Command(command_id="c-7", op="config", args={"rev": 7, "vision": {"masks": [MASK]}})))
    cmds.handle(encode(Command(command_id="c-8", op="config", args={"rev": 8, "vision": {"sensitivity": "low"}})))
    assert [i["id"] for i in json.loads((tmp_path / PENDING_FILE).read_text())] == ["c-7", "c-8"]
    applied = Applied()
    again = pusher(tmp_path, applied)
    answers: list[tuple[str, str | None]] = []
    again.reply = lambda cid, error: answers.append((cid, error))
    again.start()
    again.wait_idle()
    again.stop()
    assert answers[0] == ("c-7", None) and answers[1][0] == "c-8"
    assert answers[1][1] is not None and "cannot be set by a config push" in answers[1][1]
    assert again.rev == 7 and len(applied.configs) == 1
    assert not (tmp_path / PENDING_FILE).exists()
    box.close()


def test_an_unreadable_pending_file_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / PENDING_FILE).write_bytes(b'[{"id": 3')
    p = pusher(tmp_path)
    p.start()
    p.wait_idle()
    p.stop()
    assert not (tmp_path / PENDING_FILE).exists() and (tmp_path / (PENDING_FILE + ".bad")).exists()
