"""Operators' commands: ``xl-hub run`` as a real process, listings, /metrics and commands."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from hub.alerts.engine import AlertEngine
from hub.cli import main
from hub.cli_output import print_rows
from hub.commands import CommandError, send_command
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.core.inbound import Inbound
from hub.db import make_engine
from hub.db.schema_ops import commands, events
from hub.ingest.batch import BatchProcessor
from hub.service import Hub
from protocol.codec import decode_command, encode
from protocol.messages import Ack, Event, Health
from protocol.topics import ack_topic, cmd_topic, event_topic, health_topic
from sim.ports import free_port
from tests.support.broker import run_broker
from tests.support.events import event_payload
from tests.support.hub_config import hub_config
from tests.support.hub_db import make_fleet, not_armed_now
from tests.support.mqtt_clients import Peer
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]


def now_ms() -> int:
    return int(time.time() * 1000)


def test_run_ingests_serves_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = make_engine(url)
    dev = make_fleet(engine, groups=1, per_group=2, **not_armed_now())["g000"][0]
    metrics_port = free_port()
    with run_broker() as broker:
        config = tmp_path / "hub.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "database": {"url": url},
                    "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": "hub-cli"},
                    "metrics": {"port": metrics_port},
                    "health": {"check_interval_s": 0.5},
                }
            )
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "--config", str(config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            agent = Peer(broker.port, dev)
            # published before the hub subscribed? the persistent session only exists once it has,
            # so wait for the metrics endpoint (served just before ingest starts) first
            wait_for(lambda: _get(metrics_port) is not None, what="/metrics up")
            time.sleep(0.5)
            agent.publish(
                event_topic(dev),
                encode(Event(event_id=1, kind="person", phase="start", time_ms=now_ms() - 100, score=70)),
            )
            agent.publish(health_topic(dev), encode(Health(time_ms=now_ms(), disk_free_mb=10)), qos=0)
            agent.publish(event_topic(dev), b"garbage")

            def scraped() -> bool:
                text = _get(metrics_port) or ""
                return (
                    'xl_hub_messages_total{kind="event"} 1.0' in text
                    and 'xl_hub_rejected_total{reason="not_json"} 1.0' in text
                    and "xl_hub_open_alarms 1.0" in text
                )

            wait_for(scraped, timeout=15, what="metrics reflecting ingest")
            text = _get(metrics_port) or ""
            assert 'xl_hub_devices{state="online"} 1.0' in text
            assert "xl_hub_ingest_lag_seconds_count 1.0" in text
            assert "xl_hub_forward_queue_depth 1.0" in text  # the in-memory sink holds the event
            agent.close()
            proc.send_signal(signal.SIGTERM)
            out = proc.communicate(timeout=15)[0].decode()
            assert proc.returncode == 0, out
            assert "hub stopped" in out
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 1
    engine.dispose()


def _get(port: int) -> str | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
    except httpx.HTTPError:
        return None


def test_listings_as_table_and_json(db_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=1, per_group=2)
    sink = MemoryForwardSink()
    d = Directory(engine)
    proc = BatchProcessor(engine, d, AlertEngine(d, AlertConfig(), sink), sink, HealthConfig())
    dev = fleet["g000"][0]
    proc.process(
        [
            Inbound(event_topic(dev), event_payload(5, "panic"), 1, 1, now_ms()),
            Inbound(event_topic(dev), b"[]", 2, 1, now_ms()),
        ]
    )

    assert main(["events", "--db", db_url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["device"], r["event_id"], r["kind"]) for r in rows] == [(dev, 5, "panic")]
    assert main(["alerts", "--db", db_url, "--open"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["raised", "alert", "kind"] and "panic" in table[1]
    assert main(["devices", "--db", db_url, "--json"]) == 0
    devices = json.loads(capsys.readouterr().out)
    assert {r["device"] for r in devices} == set(fleet["g000"])
    assert [r["online"] for r in devices] == [True, False]
    assert main(["rejections", "--db", db_url, "--json"]) == 0
    assert [(r["reason"], r["count"]) for r in json.loads(capsys.readouterr().out)] == [("not_object", 1)]
    assert main(["alarms", "--db", db_url]) == 0
    assert capsys.readouterr().out == "(none)\n"
    engine.dispose()


def test_alarms_lists_the_broker_alarm(db_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    from protocol.messages import State
    from protocol.topics import state_topic

    engine = make_engine(db_url)
    devs = make_fleet(engine, groups=1, per_group=3)["g000"]
    sink = MemoryForwardSink()
    d = Directory(engine)
    proc = BatchProcessor(engine, d, AlertEngine(d, AlertConfig(), sink), sink, HealthConfig(broker_min_devices=3))
    t = now_ms()
    proc.process([Inbound(state_topic(x), encode(State(state="online")), 1, 1, t) for x in devs])
    proc.process([Inbound(state_topic(x), encode(State(state="offline")), 1, 1, t + 1000) for x in devs])
    assert main(["alarms", "--db", db_url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["device"], r["kind"]) for r in rows] == [("broker", "broker_disconnect")]
    assert rows[0]["detail"].startswith("3 of 3 devices went offline within 10 s")
    engine.dispose()


def test_db_upgrade_and_unready_schema(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    assert main(["events", "--db", url]) == 1
    assert "xl-hub db upgrade" in capsys.readouterr().err
    assert main(["db", "upgrade", "--db", url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("applied ") and "hub_0001, hub_0002" in out
    assert main(["db", "status", "--db", url]) == 0
    assert capsys.readouterr().out.rstrip().endswith("at every head")
    assert main(["db", "upgrade", "--db", url]) == 0
    assert "already up to date" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("database: {url: 'sqlite://'}\nmqtt: {port: nope}\n")
    assert main(["devices", "--config", str(bad)]) == 2
    assert "mqtt.port: found 'nope', expected an integer 1..65535" in capsys.readouterr().err


def test_print_rows_aligns_columns() -> None:
    out = io.StringIO()
    print_rows([{"a": "x", "long_name": True}, {"a": "yyyy", "long_name": None}], False, out)
    assert out.getvalue().splitlines() == ["a     long_name", "x     yes", "yyyy  -"]


def test_command_round_trip(db_url: str) -> None:
    engine = make_engine(db_url)
    dev = make_fleet(engine, groups=1, per_group=1)["g000"][0]
    with run_broker() as broker:
        hub = Hub(hub_config(db_url, broker.port), engine=engine)
        hub.start()
        agent = Peer(broker.port, dev)
        try:
            assert hub.worker.subscribed.wait(10)
            agent.subscribe(cmd_topic(dev))
            cid = send_command(engine, hub.worker.transport, dev, "schedule", {"from": "21:30", "to": "05:30"})
            cmd = decode_command(agent.get(5)[1])
            assert (cmd.command_id, cmd.op, cmd.args) == (cid, "schedule", {"from": "21:30", "to": "05:30"})
            agent.publish(ack_topic(dev), encode(Ack(of="cmd", ref_id=cid, ok=False, time_ms=now_ms(), error="busy")))

            def acked() -> bool:
                with engine.connect() as conn:
                    row = conn.execute(select(commands).where(commands.c.id == cid)).one()
                return row.ack_ms is not None

            wait_for(acked, what="command result stored")
            with engine.connect() as conn:
                row = conn.execute(select(commands).where(commands.c.id == cid)).one()
            assert (row.ok, row.error, row.op) == (False, "busy", "schedule")
            with pytest.raises(CommandError, match="not registered"):
                send_command(engine, hub.worker.transport, "62062101011198999999", "arm")
        finally:
            agent.close()
            hub.stop()
    engine.dispose()
