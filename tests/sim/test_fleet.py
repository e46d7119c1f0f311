from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol import decode, parse_topic
from sim.fleet import Fleet, Identity, Traffic
from tests.support.broker import run_broker

PLAIN = "listener {port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\n"


def test_fleet_sends_valid_protocol_and_every_qos1_message_is_acked() -> None:
    seen: dict[str, int] = {}
    offline: set[str] = set()
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        topic = parse_topic(msg.topic)
        message = decode(topic.channel, msg.payload)  # raises if the simulator breaks the contract
        with lock:
            seen[topic.channel.value] = seen.get(topic.channel.value, 0) + 1
            if getattr(message, "state", None) == "offline":
                offline.add(topic.device or "")

    with run_broker(PLAIN) as broker:
        watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher", protocol=mqtt.MQTTv5)
        watcher.on_message = on_message
        watcher.connect("127.0.0.1", broker.port)
        watcher.subscribe("xl/v1/+/+", qos=1)
        watcher.loop_start()
        time.sleep(0.3)
        idents = [Identity(f"62062101011198{i:06d}") for i in range(60)]
        traffic = Traffic(heartbeat_s=2, event_rate=10, panic_per_hour=1800, churn_per_min=0.5, offline_s=30)
        report = Fleet(idents, "127.0.0.1", broker.port, None, traffic, seed=7).run(6)
        time.sleep(1.0)
        watcher.loop_stop()
        watcher.disconnect()

    assert report.connected == 60 and report.connect_failures == 0
    qos1 = {k: v for k, v in report.sent.items() if k != "health"}
    assert qos1 and all(report.acked[k] == v for k, v in qos1.items()), (report.sent, report.acked)
    assert report.sent["person"] + report.sent["motion"] > 20
    assert seen["health"] >= 60 and seen["event"] >= report.sent["person"] + report.sent["motion"]
    # Silent drops make the broker publish the will: the hub would see these devices go offline.
    assert report.dropped_offline > 0 and len(offline) == report.dropped_offline
