"""``xl-hub config push|history`` against a real Mosquitto (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.cli import main
from hub.commands import record_result
from hub.db import make_engine
from hub.db.schema import villages
from protocol.codec import decode
from protocol.messages import Ack, Command
from protocol.topics import cmd_topic
from tests.support.broker import run_broker
from tests.support.hub_db import make_fleet
from tests.support.mqtt_clients import Peer

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
    with run_broker() as broker:
        cfg = tmp_path / "hub.yaml"
        cfg.write_text(
            f"database: {{url: '{sqlite_url}'}}\nmqtt: {{host: 127.0.0.1, port: {broker.port}, client_id: hub-t}}\n"
            "metrics: {enabled: false}\n"
        )
        device = Peer(broker.port)
        device.subscribe(cmd_topic(devs[0]))
        try:
            assert main(["config", "push", devs[0], "--file", str(doc), "--config", str(cfg), "--by", "alice"]) == 0
            assert f"{devs[0]}  rev 1  sent" in capsys.readouterr().out
            cmd = decode("cmd", device.get()[1])
            assert isinstance(cmd, Command) and cmd.op == "config"
            gate = {"name": "院门", "polygon": [[0.4, 0.5], [0.6, 0.5], [0.6, 1.0], [0.4, 1.0]]}
            assert cmd.args == {"rev": 1, "vision": {"zones": [gate], "required_zones": ["院门"]}}

            args = ["config", "push", "--village", str(village), "--file", str(doc), "--template", "gate"]
            assert main([*args, "--config", str(cfg)]) == 0
            out = capsys.readouterr().out
            assert f"{devs[0]}  rev 2  sent" in out and f"{devs[1]}  rev 1  sent" in out
            assert decode("cmd", device.get()[1]).args["rev"] == 2  # type: ignore[union-attr]
        finally:
            device.close()

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

        # A bad document is refused naming the key; nothing is sent.
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"zones": [{"name": "x", "polygon": [[0, 0], [1, 1]]}]}))
        assert main(["config", "push", devs[1], "--file", str(bad), "--config", str(cfg)]) == 1
        assert "vision.zones[0].polygon" in capsys.readouterr().err
    assert main(["config", "push", devs[1], "--file", str(doc), "--db", sqlite_url]) == 2
    assert "needs --config" in capsys.readouterr().err
    engine.dispose()
