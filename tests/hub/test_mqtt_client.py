"""The hub over MQTT (hub/mqtt/client.py and the ingest behind it), through a real Mosquitto into real databases: shared
subscriptions, persistent sessions, presence from retained state and wills, acknowledgement after commit."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from hub.db import make_engine
from hub.db.schema import devices
from hub.db.schema_ops import events, rejections
from hub.service import Hub
from protocol.codec import encode
from protocol.messages import State
from protocol.topics import event_topic, state_topic
from tests.support.broker import run_broker
from tests.support.events import motion_payload
from tests.support.hub_config import hub_config, with_client_id
from tests.support.hub_db import count_rows, device, make_fleet
from tests.support.mqtt_clients import Peer
from tests.support.wait import wait_for


def test_ingest_dedups_rejects_and_acks(db_url: str) -> None:
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=1, per_group=2)
    dev, other = fleet["g000"]
    with run_broker() as broker:
        hub = Hub(hub_config(db_url, broker.port), engine=engine)
        hub.start()
        try:
            assert hub.worker.subscribed.wait(10)
            agent = Peer(broker.port, dev)
            for i in range(20):
                agent.publish(event_topic(dev), motion_payload(i))
            for i in range(20):  # an outbox replay after a lost PUBACK
                agent.publish(event_topic(dev), motion_payload(i))
            agent.publish(event_topic(other), b"not json")
            agent.publish(event_topic(device(7, 7)), motion_payload(99))  # a topic naming an unregistered device
            agent.publish(event_topic(other), motion_payload(99))  # a topic naming another (registered) device
            wait_for(lambda: count_rows(engine) == 21 and count_rows(engine, rejections) == 2, what="ingest")
            with engine.connect() as conn:
                reasons = dict(conn.execute(select(rejections.c.reason, rejections.c.count)).all())
                by_device = dict(
                    conn.execute(select(events.c.device_id, func.count()).group_by(events.c.device_id)).all()
                )
            assert reasons == {"not_json": 1, "unknown_device": 1}
            # Ingest cannot tell who published on ``other``'s topic: only the broker ACL
            # (username = device ID) can, and the hub test broker is anonymous.
            assert by_device == {dev: 20, other: 1}
            assert hub.metrics.rejected.labels("unknown_device")._value.get() == 1
            agent.close()
        finally:
            hub.stop()
    engine.dispose()


def test_two_workers_share_the_load_exactly_once(db_url: str) -> None:
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=2, per_group=5)
    devs = [d for ds in fleet.values() for d in ds]
    with run_broker() as broker:
        cfg = hub_config(db_url, broker.port)
        hubs = [Hub(with_client_id(cfg, f"hub-w{i}"), engine=make_engine(db_url)) for i in range(2)]
        for h in hubs:
            h.start()
        try:
            for h in hubs:
                assert h.worker.subscribed.wait(10)
            agents = [Peer(broker.port, d) for d in devs]
            sent = 0
            for i in range(40):
                for d, agent in zip(devs, agents, strict=True):
                    agent.client.publish(event_topic(d), motion_payload(i), qos=1)
                    sent += 1
            wait_for(lambda: count_rows(engine) == sent, timeout=20, what=f"{sent} events stored")
            time.sleep(0.3)  # nothing more may arrive
            assert count_rows(engine) == sent == 400
            shares = [h.metrics.messages.labels("event")._value.get() for h in hubs]
            assert sum(shares) == sent and min(shares) > 0, shares
            for a in agents:
                a.close()
        finally:
            for h in hubs:
                h.stop()
                h.engine.dispose()
    engine.dispose()


def test_messages_sent_while_hub_is_down_arrive_after_restart(db_url: str) -> None:
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=1, per_group=2)
    dev = fleet["g000"][0]
    with run_broker() as broker:
        cfg = with_client_id(hub_config(db_url, broker.port), "hub-persistent")
        hub = Hub(cfg, engine=engine)
        hub.start()
        assert hub.worker.subscribed.wait(10)
        agent = Peer(broker.port, dev)
        agent.publish(event_topic(dev), motion_payload(1))
        wait_for(lambda: count_rows(engine) == 1, what="first event")
        hub.stop()  # the broker keeps the session (clean_start=False, session expiry)

        for i in range(2, 32):
            agent.publish(event_topic(dev), motion_payload(i))
        time.sleep(0.2)
        assert count_rows(engine) == 1

        hub = Hub(cfg, engine=engine)
        hub.start()
        try:
            wait_for(lambda: count_rows(engine) == 31, what="events queued while down")
        finally:
            agent.close()
            hub.stop()
    engine.dispose()


def test_presence_from_retained_state_and_will(db_url: str) -> None:
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=1, per_group=2)
    a, b = fleet["g000"]
    with run_broker() as broker:
        # Retained before the hub starts: Mosquitto withholds retained messages from
        # shared subscriptions, so this tests the unshared state subscription.
        pre = Peer(broker.port, a)
        pre.publish(state_topic(a), encode(State("online", interval_s=60)), retain=True)
        hub = Hub(hub_config(db_url, broker.port), engine=engine)
        hub.start()
        try:

            def online(dev: str) -> bool:
                with engine.connect() as conn:
                    return bool(conn.execute(select(devices.c.online).where(devices.c.id == dev)).scalar())

            wait_for(lambda: online(a), what="retained online state")
            dying = Peer(broker.port, b, will=(state_topic(b), b'{"v":1,"st":"offline"}'))
            dying.publish(state_topic(b), encode(State("online", interval_s=60)), retain=True)
            wait_for(lambda: online(b), what="b online")
            dying.client._sock_close()  # a power cut: no DISCONNECT, so the broker sends the will
            dying.client.loop_stop()
            wait_for(lambda: not online(b), timeout=15, what="will → offline")
            pre.close()
        finally:
            hub.stop()
    engine.dispose()


def test_unacknowledged_batch_is_redelivered_after_a_crash(db_url: str) -> None:
    engine = make_engine(db_url)
    dev = make_fleet(engine, groups=1, per_group=1)["g000"][0]
    with run_broker() as broker:
        cfg = with_client_id(hub_config(db_url, broker.port), "hub-crashy")
        hub = Hub(cfg, engine=engine)

        def database_down(batch):  # type: ignore[no-untyped-def]
            raise RuntimeError("database unreachable")

        hub.worker.processor.process = database_down  # type: ignore[method-assign]
        hub.start()
        assert hub.worker.subscribed.wait(10)
        agent = Peer(broker.port, dev)
        for i in range(10):
            agent.publish(event_topic(dev), motion_payload(i))
        wait_for(lambda: hub.metrics.db_errors._value.get() >= 1, what="a failed commit")
        # Crash: the MQTT transport is killed with ten messages received and none acknowledged.
        hub.worker.kill()
        hub.watcher.stop()
        assert count_rows(engine) == 0

        hub = Hub(cfg, engine=engine)
        hub.start()
        try:
            wait_for(lambda: count_rows(engine) == 10, what="redelivered events")
        finally:
            agent.close()
            hub.stop()
    engine.dispose()


def test_a_retired_workers_session_takes_a_share_until_forgotten(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = make_engine(url)
    dev = make_fleet(engine, groups=1, per_group=1)["g000"][0]
    with run_broker() as broker:
        base = hub_config(url, broker.port)
        retired = Hub(with_client_id(base, "hub-retired"), engine=make_engine(url))
        retired.start()
        assert retired.worker.subscribed.wait(10)
        retired.stop()
        live = Hub(with_client_id(base, "hub-live"), engine=engine)
        live.start()
        try:
            assert live.worker.subscribed.wait(10)
            agent = Peer(broker.port, dev)
            for i in range(10):
                agent.publish(event_topic(dev), motion_payload(i))
            time.sleep(1.0)
            assert count_rows(engine) < 10  # the broker queued a share for the dead session

            from hub.mqtt.client import forget_session

            forget_session(with_client_id(base, "hub-retired").mqtt)
            for i in range(10, 20):
                agent.publish(event_topic(dev), motion_payload(i))
            wait_for(lambda: count_rows(engine) >= 10, what="post-retirement events")
            time.sleep(0.5)
            with engine.connect() as conn:
                ids = set(conn.execute(select(events.c.event_id).where(events.c.event_id >= 10)).scalars())
            assert ids == set(range(10, 20))

            # The clean way: a worker leaving for good ends its session as it stops.
            leaving = Hub(with_client_id(base, "hub-leaving"), engine=make_engine(url))
            leaving.start()
            assert leaving.worker.subscribed.wait(10)
            leaving.stop(retire=True)
            leaving.engine.dispose()
            for i in range(20, 30):
                agent.publish(event_topic(dev), motion_payload(i))
            wait_for(lambda: _ids_from(engine, 20) == set(range(20, 30)), what="all events after retirement")
            agent.close()
        finally:
            live.stop()
            retired.engine.dispose()
    engine.dispose()


def _ids_from(engine, start: int) -> set[int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return set(conn.execute(select(events.c.event_id).where(events.c.event_id >= start)).scalars())
