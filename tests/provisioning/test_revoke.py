"""Revocation against a real Mosquitto: CRL, registry, the broker's model, the session."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from protocol.topics import Channel, cmd_topic, event_topic, uplink_filter
from provisioning import broker_config, broker_control, commands, dynsec
from provisioning.cli import main
from provisioning.pki import cert_pem, key_pem, new_key, write_private, write_public
from tests.support.broker import run_broker
from tests.support.mqtt_clients import Client, can_connect, connect
from tests.support.provisioned_county import County, build_county

WEEK = 7 * 24 * 3600


def _look(c: County, tmp: Path, cn: str) -> Client:
    """Connect, resuming any session, with a fresh certificate in ``cn``'s name (a
    serial the CRL does not list), to see what the broker still keeps for ``cn``."""
    key = new_key()
    cert = c.state.load_ca().issue(key.public_key(), cn, unit="test", days=1)
    write_private(tmp / f"{cn}.key", key_pem(key))
    write_public(tmp / f"{cn}.crt", cert_pem(cert))
    client = connect(
        c.port, client_id=cn, session_expiry=60, ca=c.state.ca_cert, cert=tmp / f"{cn}.crt", key=tmp / f"{cn}.key"
    )
    assert client.connected.is_set(), client.refused
    return client


def test_revoke_closes_the_thief_out_and_ends_its_session_within_5s(tmp_path: Path) -> None:
    c = build_county(tmp_path, households=(("HA", "g1"), ("HB", "g1"), ("HC", "g2")))
    live, parked, honest = c.devices["HC"], c.devices["HB"], c.devices["HA"]
    with run_broker(c.conf(), port=c.port):
        hub = connect(c.port, client_id="hub", **c.identity("hub"))
        assert hub.subscribe(uplink_filter(Channel.EVENT)) == 1
        # One thief stays connected; the other parks a session with queued commands.
        thief = connect(c.port, client_id=live.device_id, session_expiry=WEEK, **live.tls)
        assert thief.subscribe(cmd_topic(live.device_id)) == 1
        parker = connect(c.port, client_id=parked.device_id, session_expiry=WEEK, **parked.tls)
        assert parker.subscribe(cmd_topic(parked.device_id)) == 1
        parker.close()
        for i in range(3):
            hub.publish(cmd_topic(parked.device_id), b'{"v":1,"queued":%d}' % i)
        # An honest device publishes all through the revocations.
        stop = threading.Event()
        sent: list[int] = []
        dev = connect(c.port, client_id=honest.device_id, **honest.tls)

        def publish() -> None:
            while not stop.is_set():
                dev.publish(event_topic(honest.device_id), b'{"v":1,"n":%d}' % len(sent))
                sent.append(len(sent))
                time.sleep(0.02)

        pumping = threading.Thread(target=publish)
        pumping.start()
        started = time.monotonic()
        for victim in (live, parked):
            assert (
                commands.revoke(
                    c.state, c.engine, victim.device_id, reason="stolen", broker_dir=None, pid=None, restart=False
                )
                == 0
            )
        took = time.monotonic() - started
        assert thief.disconnected.wait(max(0.0, 5 - took)), "the live thief is still connected"
        assert took < 5, took
        time.sleep(0.5)
        stop.set()
        pumping.join()
        # Nothing of anyone else was lost meanwhile.
        deadline = time.monotonic() + 5
        while len(hub.topics()) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(hub.topics()) == len(sent) > 20
        # Neither certificate gets back in ...
        for victim in (live, parked):
            assert not can_connect(c.port, client_id=victim.device_id, **victim.tls)
        # ... and the broker keeps no session, subscription or queued message for either name.
        for victim in (live, parked):
            look = _look(c, tmp_path, victim.device_id)
            assert not look.session_present, f"{victim.device_id}'s session survived the revoke"
            time.sleep(0.5)
            assert look.topics() == [], look.topics()
            look.close()
        # The broker's model no longer names them; the honest device is untouched.
        with broker_control.control(
            broker_config.endpoint(c.state, c.broker_dir),
            c.state.client_cert("xl-admin"),
            c.state.client_key("xl-admin"),
            "xl-admin",
        ) as ctl:
            model = ctl.model()
        assert live.device_id not in model.clients and parked.device_id not in model.clients
        assert dynsec.device_role(live.device_id) not in model.roles
        assert honest.device_id in model.clients
        assert c.state.load_settings().pending_session_ends == []
        for client in (hub, thief, dev):
            client.close()
    c.engine.dispose()


def test_a_revoke_while_the_broker_is_down_ends_the_session_at_the_next_sync(tmp_path: Path) -> None:
    c = build_county(tmp_path)
    victim = c.devices["HC"]
    with run_broker(c.conf(), port=c.port) as broker:
        parker = connect(c.port, client_id=victim.device_id, session_expiry=WEEK, **victim.tls)
        assert parker.subscribe(cmd_topic(victim.device_id)) == 1
        parker.close()
        broker.stop()  # SIGTERM: the session is saved with the broker's persistence
        assert (
            commands.revoke(
                c.state, c.engine, victim.device_id, reason="lost", broker_dir=None, pid=None, restart=False
            )
            == 0
        )
        assert c.state.load_settings().pending_session_ends == [victim.device_id]
        model = dynsec.from_document(json.loads((c.broker_dir / "dynamic-security.json").read_text()))
        assert victim.device_id not in model.clients  # written to the file for the next start
        broker.start_again()
        assert (
            main(
                [
                    "broker-config",
                    "--state",
                    str(c.state.root),
                    "--out",
                    str(c.broker_dir),
                    "--port",
                    str(c.port),
                    "--bind",
                    "127.0.0.1",
                ]
            )
            == 0
        )
        assert c.state.load_settings().pending_session_ends == []
        look = _look(c, tmp_path, victim.device_id)
        assert not look.session_present
        look.close()
    c.engine.dispose()


def test_revoke_with_restart_starts_the_broker_again(tmp_path: Path) -> None:
    c = build_county(tmp_path)
    victim, other = c.devices["HB"], c.devices["HA"]
    new_pid = None
    try:
        with run_broker(c.conf(), port=c.port) as broker:
            old_pid = broker.process.pid
            commands.revoke(
                c.state, c.engine, victim.device_id, reason="lost", broker_dir=c.broker_dir, pid=None, restart=True
            )
            new_pid = broker_config.broker_pid(c.broker_dir)
            assert new_pid is not None and new_pid != old_pid
            assert broker.process.wait(5) is not None
            deadline = time.monotonic() + 5
            while not can_connect(c.port, client_id=other.device_id, **other.tls):
                assert time.monotonic() < deadline, "restarted broker does not accept a valid device"
                time.sleep(0.1)
            assert not can_connect(c.port, client_id=victim.device_id, **victim.tls)
    finally:
        if new_pid is not None:
            os.kill(new_pid, signal.SIGTERM)
    c.engine.dispose()


def test_revoke_unknown_device_is_a_clear_error(tmp_path: Path) -> None:
    c = build_county(tmp_path)
    try:
        commands.revoke(c.state, c.engine, "62062101011198999999", reason="x", broker_dir=None, pid=None, restart=False)
    except commands.UsageError as exc:
        assert "not registered" in str(exc)
    else:
        raise AssertionError("revoking an unknown device must fail")
    c.engine.dispose()
