"""``xl-hub config push|history`` against a real Mosquitto (issue 20)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.cli import main
from hub.commands import PahoPublisher, record_result, send_command
from hub.config import MqttConfig
from hub.configs.service import ConfigPushes, send_queued
from hub.db import make_engine
from hub.db.schema import villages
from hub.mqtt.client import make_client
from protocol.codec import decode
from protocol.messages import Ack, Command
from protocol.topics import cmd_topic
from tests.support.broker import run_broker
from tests.support.hub_db import make_fleet
from tests.support.mqtt_clients import Peer
from tests.support.wait import wait_for

VISION_YAML = """\
vision:
  zones:
    - name: 院门
      polygon: [[0.4, 0.5], [0.6, 0.5], [0.6, 1.0], [0.4, 1.0]]
  required_zones: [院门]
"""


def test_push_a_device_and_a_village_then_read_the_history(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(sqlite_url)
    devs = make_fleet(engine, groups=1, per_group=2)["g000"]
    with engine.connect() as conn:
        village = conn.execute(select(villages.c.id)).scalar_one()
    doc = tmp_path / "vision.yaml"
    doc.write_text(VISION_YAML, encoding="utf-8")
    gate = {"name": "院门", "polygon": [[0.4, 0.5], [0.6, 0.5], [0.6, 1.0], [0.4, 1.0]]}
    with run_broker() as broker:
        hub = make_client(MqttConfig(host="127.0.0.1", port=broker.port), "hub-t")
        hub.connect("127.0.0.1", broker.port)
        hub.loop_start()
        device = Peer(broker.port)
        device.subscribe(cmd_topic(devs[0]))
        publisher = PahoPublisher(hub)

        def send(device_id: str, op: str, args: dict[str, object]) -> str:
            return send_command(engine, publisher, device_id, op, args)

        try:
            wait_for(hub.is_connected, 5, "the hub's connection")
            # The command only writes the push: it never connects as the hub.
            assert main(["config", "push", devs[0], "--file", str(doc), "--db", sqlite_url, "--by", "alice"]) == 0
            assert f"{devs[0]}  rev 1  queued" in capsys.readouterr().out
            assert [r["status"] for r in ConfigPushes(engine, None).history(devs[0])] == ["queued"]
            time.sleep(0.5)
            assert device.received.empty()
            # The running hub's pass sends it, once, however often it runs.
            (sent,) = send_queued(engine, send)
            assert sent.rev == 1 and sent.error is None and send_queued(engine, send) == []
            cmd = decode("cmd", device.get()[1])
            assert isinstance(cmd, Command) and cmd.op == "config" and cmd.command_id == sent.command_id
            assert cmd.args == {"rev": 1, "vision": {"zones": [gate], "required_zones": ["院门"]}}

            args = ["config", "push", "--village", str(village), "--file", str(doc), "--template", "gate"]
            assert main([*args, "--db", sqlite_url]) == 0
            out = capsys.readouterr().out
            assert f"{devs[0]}  rev 2  queued" in out and f"{devs[1]}  rev 1  queued" in out
            assert [r.device_id for r in send_queued(engine, send)] == sorted(devs)
            assert decode("cmd", device.get()[1]).args["rev"] == 2  # type: ignore[union-attr]
        finally:
            device.close()
            hub.disconnect()
            hub.loop_stop()

        # The device applies rev 1 and has not answered rev 2; the table leaves the documents out.
        with engine.begin() as conn:
            ack = Ack(of="cmd", ref_id=cmd.command_id, ok=True, time_ms=1)
            record_result(conn, devs[0], ack, 1_700_000_000_000)
        assert main(["config", "history", devs[0], "--db", sqlite_url]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == [
            "rev", "created_ms", "created_by", "template", "command_id", "status", "reason", "acked_ms",
        ]  # fmt: skip
        assert lines[1].split()[0::5] == ["2", "sent"] and lines[1].split()[3] == "gate"
        assert lines[2].split()[5] == "applied" and lines[2].split()[-1] == "1700000000000"
        assert main(["config", "history", devs[0], "--db", sqlite_url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[1]["doc"]["required_zones"] == ["院门"]

        # A bad document is refused naming the key; nothing is written.
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"zones": [{"name": "x", "polygon": [[0, 0], [1, 1]]}]}))
        assert main(["config", "push", devs[1], "--file", str(bad), "--db", sqlite_url]) == 1
        assert "vision.zones[0].polygon" in capsys.readouterr().err
        assert len(ConfigPushes(engine, None).history(devs[1])) == 1
    engine.dispose()


def test_a_push_claimed_by_a_hub_that_died_shows_interrupted(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    (dev, *_) = make_fleet(engine, groups=1, per_group=1)["g000"]
    result = ConfigPushes(engine, None, queue=True).push(dev, {"masks": []}, "alice")
    assert result.error is None and result.command_id is None

    def dies(device_id: str, op: str, args: dict[str, object]) -> str:
        raise KeyboardInterrupt  # the process stops between the claim and the publish

    with pytest.raises(KeyboardInterrupt):
        send_queued(engine, dies)
    (row,) = ConfigPushes(engine, None).history(dev)
    assert row["status"] == "unsent" and "interrupted" in row["reason"]
    assert send_queued(engine, dies) == []  # never sent twice by a later pass
    engine.dispose()
