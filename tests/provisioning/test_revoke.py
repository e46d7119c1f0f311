"""Revocation against a real Mosquitto: CRL, registry, ACL and broker reload."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from hub.registry import Registry
from protocol.topics import event_topic, uplink_filter
from provisioning import broker_config, commands
from provisioning.pki import load_cert, serial_hex
from tests.provisioning.county import build_county
from tests.provisioning.mqtt_clients import can_connect, connect
from tests.support.broker import run_broker


def test_revoke_shuts_the_device_out_after_reload(tmp_path: Path) -> None:
    c = build_county(tmp_path)
    victim, other = c.devices["HC"], c.devices["HA"]
    serial = serial_hex(load_cert(victim.tls["cert"]))
    with run_broker(c.conf(), port=c.port):
        assert can_connect(c.port, client_id=victim.device_id, **victim.tls)
        hub = connect(c.port, client_id="hub", **c.identity("hub"))
        hub.subscribe(uplink_filter())
        stolen = connect(c.port, client_id=victim.device_id, **victim.tls)  # connected before the revoke
        assert stolen.connected.is_set()

        assert (
            commands.revoke(
                c.state, c.engine, victim.device_id, reason="stolen", broker_dir=None, pid=None, restart=False
            )
            == 0
        )

        assert int(serial, 16) in {s for s, *_ in c.state.revoked()}
        record = Registry(c.engine).get_device(victim.device_id)
        assert record is not None and record.status == "revoked"
        acl = (c.broker_dir / "acl").read_text()
        assert f"user {victim.device_id}" not in acl and f"user {other.device_id}" in acl
        time.sleep(0.5)  # let the SIGHUP land
        # The open session lost every right with the ACL reload ...
        stolen.publish(event_topic(victim.device_id), b'{"v":1}')
        dev_a = connect(c.port, client_id=other.device_id, **other.tls)
        dev_a.publish(event_topic(other.device_id), b'{"v":1}')
        assert hub.wait_topic(event_topic(other.device_id))
        time.sleep(0.3)
        assert event_topic(victim.device_id) not in hub.topics()
        # ... and a new connection fails the TLS handshake (2.0.11 reloads the CRL on SIGHUP).
        assert not can_connect(c.port, client_id=victim.device_id, **victim.tls)
        assert can_connect(c.port, client_id=other.device_id, **other.tls)
        for client in (hub, stolen, dev_a):
            client.close()
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
