"""The generated Mosquitto config, run on a real Mosquitto: TLS, identities, ACL."""

from __future__ import annotations

import time
from pathlib import Path

from protocol.topics import Channel, alert_topic, cmd_topic, event_topic, shared, uplink_filter
from provisioning import commands
from provisioning.pki import CA, cert_pem, key_pem, new_key, write_private, write_public
from tests.support.broker import Broker
from tests.support.mqtt_clients import can_connect, connect
from tests.support.provisioned_county import County


def test_device_connects_with_its_certificate(county: tuple[County, Broker]) -> None:
    c, broker = county
    opened = [line for line in broker.log().splitlines() if "listen socket on port" in line]
    assert opened and all(f"port {c.port}." in line for line in opened), opened  # no stray 1883 listener
    a = c.devices["HA"]
    client = connect(c.port, client_id=a.device_id, **a.tls)
    assert client.connected.is_set(), client.refused
    client.close()


def test_hub_sees_own_topic_but_not_a_forged_one(county: tuple[County, Broker]) -> None:
    c, _ = county
    a, b = c.devices["HA"], c.devices["HB"]
    if "hub-2" not in c.state.load_settings().clients:
        commands.add_client(c.state, c.engine, "hub-2", "hub", None)  # a second worker, added to the running broker
    hub = connect(c.port, client_id="hub", **c.identity("hub"))
    hub_shared = connect(c.port, client_id="hub-2", **c.identity("hub-2"))
    assert hub.connected.is_set() and hub_shared.connected.is_set(), (hub.refused, hub_shared.refused)
    assert hub.subscribe(uplink_filter(Channel.EVENT)) == 1
    assert hub_shared.subscribe(shared("hubworkers", uplink_filter(Channel.EVENT))) == 1
    dev_a = connect(c.port, client_id=a.device_id, **a.tls)
    dev_a.publish(event_topic(b.device_id), b'{"v":1,"forged":1}')  # A pretends to be B
    dev_a.publish(event_topic(a.device_id), b'{"v":1}')
    # The legitimate message proves the subscriptions work, so the absence of the forged one means something.
    assert hub.wait_topic(event_topic(a.device_id)), hub.topics()
    assert hub_shared.wait_topic(event_topic(a.device_id)), hub_shared.topics()
    time.sleep(0.3)
    assert event_topic(b.device_id) not in hub.topics()
    assert event_topic(b.device_id) not in hub_shared.topics()
    for client in (hub, hub_shared, dev_a):
        client.close()


def test_only_hub_identities_may_join_a_share_group(county: tuple[County, Broker]) -> None:
    c, _ = county
    monitor = connect(c.port, client_id="commission", **c.identity("commission"))
    hub = connect(c.port, client_id="hub", **c.identity("hub"))
    for ch in (Channel.EVENT, Channel.SNAP, Channel.HEALTH, Channel.ACK):
        assert monitor.subscribe(shared("xlhub", uplink_filter(ch))) == 0x87, ch
        assert monitor.subscribe(uplink_filter(ch)) == 1, ch  # the control: it may read uplink unshared
        assert hub.subscribe(shared("xlhub", uplink_filter(ch))) == 1, ch
    # Neither may read what the hub sends devices, nor the broker's control topic.
    for topic in (uplink_filter(Channel.CMD), "#", "xl/v1/#", "$CONTROL/dynamic-security/v1/response"):
        assert monitor.subscribe(topic) == 0x87, topic
        assert hub.subscribe(topic) == 0x87, topic
    for client in (monitor, hub):
        client.close()


def test_device_reads_only_its_own_group_alerts_and_cmd(county: tuple[County, Broker]) -> None:
    c, _ = county
    a, b, cc = c.devices["HA"], c.devices["HB"], c.devices["HC"]
    assert a.group == "g1" and cc.group == "g2"
    dev_c = connect(c.port, client_id=cc.device_id, **cc.tls)
    refused = {alert_topic("g1"), cmd_topic(a.device_id)}
    for topic in (alert_topic("g1"), alert_topic("g2"), cmd_topic(a.device_id), cmd_topic(cc.device_id)):
        assert dev_c.subscribe(topic) == (0x87 if topic in refused else 1), topic
    hub = connect(c.port, client_id="hub", **c.identity("hub"))
    for topic in (alert_topic("g1"), cmd_topic(a.device_id), alert_topic("g2"), cmd_topic(cc.device_id)):
        hub.publish(topic, b'{"v":1}')
    assert dev_c.wait_topic(alert_topic("g2")) and dev_c.wait_topic(cmd_topic(cc.device_id)), dev_c.topics()
    time.sleep(0.3)
    assert alert_topic("g1") not in dev_c.topics()
    assert cmd_topic(a.device_id) not in dev_c.topics()
    # A device cannot raise a group alert itself, nor command another device.
    dev_b = connect(c.port, client_id=b.device_id, **b.tls)
    dev_b.publish(alert_topic("g2"), b'{"v":1,"fake":1}')
    dev_b.publish(cmd_topic(cc.device_id), b'{"v":1,"fake":1}')
    time.sleep(0.5)
    assert dev_c.topics().count(alert_topic("g2")) == 1
    assert dev_c.topics().count(cmd_topic(cc.device_id)) == 1
    for client in (dev_c, hub, dev_b):
        client.close()


def test_no_certificate_plain_or_foreign_ca_cannot_connect(county: tuple[County, Broker], tmp_path: Path) -> None:
    c, _ = county
    a = c.devices["HA"]
    assert not can_connect(c.port, ca=a.tls["ca"], cert=None, key=None, client_id=a.device_id)
    assert not can_connect(c.port, ca=a.tls["ca"], cert=None, key=None, client_id=a.device_id, tls=False)
    foreign = CA.create("Some Other County CA")
    key = new_key()
    cert = foreign.issue(key.public_key(), a.device_id, unit="Household camera", days=30)
    write_private(tmp_path / "f.key", key_pem(key))
    write_public(tmp_path / "f.crt", cert_pem(cert))
    assert not can_connect(
        c.port, ca=a.tls["ca"], cert=tmp_path / "f.crt", key=tmp_path / "f.key", client_id=a.device_id
    )
    # The control: the genuine certificate does connect on this broker.
    assert can_connect(c.port, client_id=a.device_id, **a.tls)


def test_one_certificate_cannot_take_over_another_devices_session(county: tuple[County, Broker]) -> None:
    c, _ = county
    a, b = c.devices["HA"], c.devices["HB"]
    dev_b = connect(c.port, client_id=b.device_id, **b.tls)
    assert dev_b.connected.is_set()
    intruder = connect(c.port, client_id=b.device_id, **a.tls)  # A's cert, B's client id
    assert intruder.connected.is_set()
    time.sleep(0.5)
    assert not dev_b.disconnected.is_set(), "A's certificate kicked B off"
    intruder.close()
    # The control: B's own certificate with B's id does replace the session, so the check above can fail.
    second_b = connect(c.port, client_id=b.device_id, **b.tls)
    assert dev_b.disconnected.wait(3)
    second_b.close()
    dev_b.close()
