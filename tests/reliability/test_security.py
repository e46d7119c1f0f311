"""Intrusion attempts the existing suites do not cover: wildcard snooping and forged
alerts at the broker, secrets in logs, key file modes, webhook replays.

(Impersonation, other groups' alerts, no/revoked/foreign certificates, session
takeover, console login/CSRF/SQL injection/hashing are proved in
tests/provisioning and tests/hub; see tests/reliability/README.md.)
"""

from __future__ import annotations

import base64
import json
import logging
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import func, select, update

from agent import outbox as ob
from agent.link import Link, LinkSettings
from agent.outbox import Outbox
from hub.config import parse_config
from hub.db.schema import households
from hub.db.schema_ops import events
from hub.forward import ManualClock
from hub.forward.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, webhook_body
from hub.service import Hub
from protocol.codec import Snapshot, encode, encode_snapshot
from protocol.messages import Event
from protocol.topics import (
    Channel,
    alert_topic,
    cmd_topic,
    event_topic,
    receipt_topic,
    shared,
    snap_topic,
    uplink_filter,
)
from provisioning.cli import main as provisioning_main
from sim.mock_viid import MockViid
from sim.mock_webhook import MockWebhook
from tests.support.broker import Broker, run_broker
from tests.support.forward_items import GATEWAY, JPEG, person
from tests.support.hub_db import make_fleet, not_armed_now
from tests.support.mqtt_clients import Client, connect
from tests.support.provisioned_county import County, build_county
from tests.support.reliability_rig import Rig, spawn_hub, stop_process
from tests.support.wait import wait_for

VIID_PASSWORD = "viid-Pa55word-that-must-not-leak"
WEBHOOK_SECRET = "webhook-secret-that-must-not-leak-0123456789"


# -- the broker: snooping with wildcards, forging alerts --------------------------------------------------


def _device(c: County, household: str) -> Client:
    d = c.devices[household]
    client = connect(c.port, client_id=d.device_id, **d.tls)
    assert client.connected.is_set(), client.refused
    return client


def _attacks(c: County, me: str, victim: str) -> list[str]:
    """Every subscription a stolen device might try that would read someone else's messages."""
    hub_group = parse_config({"database": {"url": "sqlite://"}, "mqtt": {"host": "x"}}).mqtt.share_group
    uplink = [uplink_filter(ch) for ch in (Channel.EVENT, Channel.SNAP, Channel.HEALTH, Channel.ACK, Channel.STATE)]
    filters = [
        "#",
        "+",
        "+/+/+/+",
        "xl/#",
        "xl/+/#",
        "xl/v1/#",
        uplink_filter(),
        *uplink,
        f"xl/v1/{victim}/#",
        event_topic(victim),
        cmd_topic(victim),
        f"xl/v1/{victim}/rcpt",
        "xl/v1/+/cmd",
        "xl/v1/grp/+/alert",
        "xl/v1/grp/#",
        alert_topic("g2"),
        f"xl/v1/{me}/#",
        f"xl/v1/{me}/+",
        "$SYS/#",
        "$SYS/broker/clients/+",
        "$CONTROL/#",
        "$CONTROL/dynamic-security/v1/response",
    ]
    for group in (hub_group, "xlhub", "hub", "snoop", "x"):
        filters += [shared(group, f) for f in (uplink_filter(), *uplink, event_topic(victim), cmd_topic(me))]
        filters.append(f"$share/{group}/#")
    return filters


def test_a_device_is_refused_every_subscription_but_its_own(county: tuple[County, Broker]) -> None:
    c, _ = county
    a, b = c.devices["HA"], c.devices["HB"]
    snoop = _device(c, "HA")
    refused = {f: snoop.subscribe(f) for f in _attacks(c, a.device_id, b.device_id)}
    assert {f: code for f, code in refused.items() if code != 0x87} == {}
    # The control: its own three are granted, so the refusals above are the broker's choice.
    for topic in (cmd_topic(a.device_id), receipt_topic(a.device_id), alert_topic(a.group)):
        assert snoop.subscribe(topic) == 1, topic
    hub = connect(c.port, client_id="hub", **c.identity("hub"))
    hub.subscribe(uplink_filter(Channel.EVENT))
    victim = _device(c, "HB")
    victim.publish(event_topic(b.device_id), b'{"v":1,"private":1}')
    hub.publish(cmd_topic(b.device_id), b'{"v":1,"id":"c-1","op":"arm"}')
    hub.publish(alert_topic("g2"), b'{"v":1,"other group":1}')
    assert hub.wait_topic(event_topic(b.device_id)), hub.topics()  # the control: it was published
    time.sleep(0.5)
    assert snoop.topics() == [], snoop.topics()
    for client in (snoop, hub, victim):
        client.close()


def test_a_stolen_certificate_cannot_take_a_share_of_the_hubs_messages(tmp_path: Path) -> None:
    """The attack: a device joins the hub's share group, takes its turn in the round
    robin, and the broker drops each message whose turn it was (PUBACK success to the
    publisher). Against a real `xl-hub run`, with the attacker trying all the time."""
    c = build_county(tmp_path)
    thief_dev, victim = c.devices["HA"], c.devices["HB"]
    config = tmp_path / "hub.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": c.state.default_db_url()},
                "mqtt": {
                    "host": "127.0.0.1",
                    "port": c.port,
                    "client_id": "hub",
                    "tls": {k: str(v) for k, v in c.identity("hub").items()},
                },
                "ingest": {"batch_ms": 5},
                "metrics": {"enabled": False},
                "log_level": "INFO",
            }
        )
    )
    stored = lambda: _stored_events(c, victim.device_id)  # noqa: E731
    with run_broker(c.conf(), port=c.port):
        hub = spawn_hub(config, tmp_path / "hub.log")
        try:
            sender = _device(c, "HB")
            deadline = time.monotonic() + 30
            while stored() == 0:  # until the hub has subscribed (a publish before that reaches nobody)
                assert time.monotonic() < deadline, (tmp_path / "hub.log").read_text()[-2000:]
                sender.publish(event_topic(victim.device_id), encode(_event(0)))
                time.sleep(0.3)
            attacks = _attacks(c, thief_dev.device_id, victim.device_id)
            stop = threading.Event()
            granted: list[str] = []

            def attack() -> None:
                while not stop.is_set():  # connected, then parked with its session, then back
                    thief = connect(
                        c.port, client_id=thief_dev.device_id, session_expiry=7 * 24 * 3600, **thief_dev.tls
                    )
                    granted.extend(f for f in attacks if thief.subscribe(f) != 0x87)
                    thief.close()

            attacker = threading.Thread(target=attack)
            attacker.start()
            for i in range(1, 41):
                sender.publish(event_topic(victim.device_id), encode(_event(i)))
                time.sleep(0.02)
            wait_for(lambda: stored() == 41, 20, "all 40 events stored")
            stop.set()
            attacker.join(30)
            assert granted == []
            time.sleep(0.5)
            assert stored() == 41
            sender.close()
        finally:
            stop_process(hub)
    c.engine.dispose()


def _event(seq: int) -> Event:
    return Event(event_id=(1 << 32) + seq, kind="motion", phase="start", time_ms=int(time.time() * 1000), score=60)


def _stored_events(c: County, device_id: str) -> int:
    with c.engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(events).where(events.c.device_id == device_id)).scalar_one()
        )


def test_a_device_cannot_raise_an_alert_even_in_its_own_group(county: tuple[County, Broker]) -> None:
    c, _ = county
    a, b = c.devices["HA"], c.devices["HB"]
    assert a.group == b.group == "g1"
    neighbour = _device(c, "HB")
    neighbour.subscribe(alert_topic("g1"))
    liar = _device(c, "HA")
    fake = b'{"v":1,"id":"a-fake","ph":"raise","k":"panic","o":"' + b.device_id.encode() + b'","hh":"HB","t":1}'
    liar.publish(alert_topic("g1"), fake)
    liar.publish(cmd_topic(b.device_id), b'{"v":1,"id":"c-x","op":"disarm"}')  # nor disarm a neighbour
    hub = connect(c.port, client_id="hub", **c.identity("hub"))
    hub.publish(alert_topic("g1"), b'{"v":1,"real":1}')
    assert neighbour.wait_topic(alert_topic("g1"))  # the control: the hub's alert arrives
    time.sleep(0.5)
    with neighbour.lock:
        payloads = [p for t, p in neighbour.messages]
    assert payloads == [b'{"v":1,"real":1}'], payloads
    for client in (neighbour, liar, hub):
        client.close()


# -- key files are 0600 ---------------------------------------------------------------------------------


def test_private_key_files_are_owner_only(county: tuple[County, Broker]) -> None:
    c, _ = county
    keys = [
        c.state.ca_key,
        c.state.server_key,
        c.state.client_key("hub"),
        c.broker_dir / "server.key",
        *(d.tls["key"] for d in c.devices.values()),
    ]
    for key in keys:
        assert key.exists(), key
        mode = stat.S_IMODE(key.stat().st_mode)
        assert mode == 0o600, f"{key} is {oct(mode)}"
        assert b"PRIVATE KEY" in key.read_bytes()
    for bundle in (d.bundle for d in c.devices.values()):  # nothing else in a bundle carries a key
        for path in bundle.rglob("*"):
            if path.is_file() and path not in {d.tls["key"] for d in c.devices.values()}:
                assert b"PRIVATE KEY" not in path.read_bytes(), path


# -- secrets never logged -----------------------------------------------------------------------------------


def _secrets_in(text: str, secrets: list[str]) -> list[str]:
    return [s[:12] + "…" for s in secrets if s and s in text]


def _key_material(paths: list[Path]) -> list[str]:
    """A distinctive slice of each private key's base64 body: a leak of the PEM shows it."""
    out = []
    for path in paths:
        body = "".join(line for line in path.read_text().splitlines() if not line.startswith("-----"))
        out.append(body[20:60])
    return out


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("", "hub", "xl", "agent", "provisioning", "httpx", "httpcore", "paho"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog


def test_hub_with_forwarder_logs_no_secret(
    rig: Rig, debug_logs: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with rig.engine.begin() as conn:  # its person event must not alert, whatever the hour (one body each)
        conn.execute(update(households).values(**not_armed_now()))
    secret_file = rig.tmp / "webhook.secret"
    secret_file.write_text(WEBHOOK_SECRET + "\n")
    secret_file.chmod(0o600)
    viid = MockViid(GATEWAY, VIID_PASSWORD)
    hook = MockWebhook(WEBHOOK_SECRET.encode())
    viid.start()
    hook_url = hook.start()
    cfg = parse_config(
        {
            "database": {"url": rig.db_url},
            "mqtt": {"host": "127.0.0.1", "port": rig.broker.port, "client_id": "hub-secrets", "tls": rig.hub_tls()},
            "ingest": {"batch_ms": 10},
            "metrics": {"enabled": False},
            "log_level": "DEBUG",
            "forward": {
                "retry_base_s": 0.2,
                "retry_cap_s": 0.5,
                "viid": {
                    "base_url": f"http://127.0.0.1:{viid.port}",
                    "gateway_id": GATEWAY,
                    "password": VIID_PASSWORD,
                    "keepalive_s": 1,
                },
                "webhook": {"url": hook_url, "secret_file": str(secret_file)},
            },
        }
    )
    hub = Hub.from_config(cfg)
    dev = rig.devices[0]
    cert, key = rig.pki.devices[dev]
    box = Outbox(rig.tmp / "ob.sqlite3")
    link = Link(
        LinkSettings(
            dev,
            rig.group_of(dev),
            "127.0.0.1",
            rig.broker.port,
            rig.pki.base.ca,
            cert,
            key,
            backoff_base_s=0.1,
            backoff_cap_s=0.5,
        ),
        box,
    )
    hub.start()
    try:
        now = int(time.time() * 1000)
        ev = Event(
            event_id=(1 << 32) + 1,
            kind="person",
            phase="start",
            time_ms=now,
            score=90,
            bbox=(100, 100, 400, 900),
            count=1,
            has_snapshot=True,
        )
        box.put(event_topic(dev), encode(ev), priority=ob.PERSON, kind="event")
        box.put(
            snap_topic(dev),
            encode_snapshot(Snapshot(ev.event_id, "start", now, 640, 480, JPEG)),
            priority=ob.PERSON_SNAP,
            kind="snap",
        )
        link.start()
        wait_for(lambda: len(viid.persons) == 1 and len(hook.bodies) == 1, 20, "forwarded to both sinks")
        viid.go_down("503")  # failure paths log too: they must not log the credentials either
        hook.mode = "503"
        box.put(
            event_topic(dev),
            encode(Event(event_id=(1 << 32) + 2, kind="person", phase="start", time_ms=now, score=90)),
            priority=ob.PERSON,
            kind="event",
        )
        wait_for(
            lambda: any("failed" in r.getMessage() for r in debug_logs.records if r.name.startswith("hub.fo")),
            20,
            "a logged delivery failure",
        )
    finally:
        link.stop()
        hub.stop()
        viid.stop()
        hook.stop()
        box.close()
    text = "\n".join(r.getMessage() for r in debug_logs.records) + "\n" + "\n".join(map(str, capfd.readouterr()))
    assert len(debug_logs.records) > 20, "DEBUG logging must actually have been captured"
    secrets = [
        VIID_PASSWORD,
        WEBHOOK_SECRET,
        base64.b64encode(f"{GATEWAY}:{VIID_PASSWORD}".encode()).decode(),
        *_key_material([rig.pki.base.hub_key, key]),
    ]
    assert _secrets_in(text, secrets) == []
    assert "PRIVATE KEY" not in text


def test_provisioning_batch_and_agent_log_no_key(
    tmp_path: Path, debug_logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert provisioning_main(["ca", "init", "--state", str(state), "--broker-host", "hub.minqin.local"]) == 0
    csv_path = tmp_path / "county.csv"
    csv_path.write_text(
        "township,village,household,group,lat,lon,name\n"
        "01,和平村,HH1,g1,38.6,103.1,张家\n01,和平村,HH2,g1,38.6,103.1,李家\n"
        "99,和平村,HH3,g1,38.6,103.1,坏行\n",
        encoding="utf-8",
    )
    provisioning_main(["batch", str(csv_path), "--state", str(state)])
    out, err = capsys.readouterr()
    keys = sorted(state.rglob("*.key"))
    assert len(keys) >= 5, keys  # CA, server, hub client, two devices

    # The agent: a link that fails (wrong CA) and one that works, at DEBUG.
    bundle = next(p for p in (state / "bundles").iterdir() if p.is_dir())
    tls = bundle / "tls"
    engine_url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    from hub.db import make_engine

    make_fleet(make_engine(engine_url), groups=1, per_group=1)
    with run_broker() as broker:
        box = Outbox(tmp_path / "ob.sqlite3")
        link = Link(
            LinkSettings(
                bundle.name,
                "g1",
                "127.0.0.1",
                broker.port,
                tls / "ca.crt",
                tls / "device.crt",
                tls / "device.key",
                backoff_base_s=0.1,
                backoff_cap_s=0.2,
            ),
            box,
        )
        link.start()
        wait_for(lambda: link.attempts >= 2, 10, "failing TLS handshakes against a plain broker")
        link.stop()
        box.close()
    text = "\n".join([out, err, *(r.getMessage() for r in debug_logs.records)])
    assert "PRIVATE KEY" not in text
    assert _secrets_in(text, _key_material(keys)) == []


# -- the webhook: a captured request replayed later -----------------------------------------------------------


def test_webhook_receiver_refuses_a_replayed_request_and_dedups_a_quick_one() -> None:
    clock = ManualClock(1_767_225_600_000)
    secret = b"replay-test-secret-of-32-bytes!!"
    hook = MockWebhook(secret, max_skew_s=300, now_s=lambda: clock.now_ms() / 1000)
    url = hook.start()
    try:
        item = person(1)
        body = json.dumps(webhook_body(item, True)).encode()
        ts = str(clock.now_ms() // 1000)
        captured = {
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(secret, ts, body),
            IDEMPOTENCY_HEADER: item.key,
            "Content-Type": "application/json",
        }
        assert httpx.post(url, content=body, headers=captured).status_code == 200
        assert httpx.post(url, content=body, headers=captured).status_code == 200  # within the window: deduped
        assert hook.duplicates == 1 and len(hook.bodies) == 1

        clock.advance(600)  # the attacker replays the captured request ten minutes later
        assert httpx.post(url, content=body, headers=captured).status_code == 401
        fresh = {**captured, TIMESTAMP_HEADER: str(clock.now_ms() // 1000)}  # new timestamp, old signature
        assert httpx.post(url, content=body, headers=fresh).status_code == 401
        forged = {**fresh, IDEMPOTENCY_HEADER: "other"}
        assert httpx.post(url, content=body.replace(b"87", b"99"), headers=forged).status_code == 401
        assert hook.bad_signatures == 3 and len(hook.bodies) == 1
    finally:
        hook.stop()
