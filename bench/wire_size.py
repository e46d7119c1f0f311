"""Bytes on the wire per message: MQTT 5 PUBLISH packets including the topic.

Each size is computed from the MQTT 5 packet layout and then *measured*: a
paho client publishes through a byte-counting TCP relay to a private Mosquitto,
and the bytes the relay forwards for that one PUBLISH are counted. The two
must agree, or the benchmark says so.

Reference: Frigate's `frigate/events` message exactly as its MQTT
documentation shows it.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from _common import merge_results, print_table
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.frigate_event import FRIGATE_TOPIC, frigate_event_payload
from protocol import Event, Health, Snapshot, encode, encode_snapshot, make_event_id
from protocol.receipts import receipts_for
from protocol.sizing import publish_packet_size
from protocol.topics import event_topic, health_topic, receipt_topic, snap_topic
from tests.support.broker import run_broker

DEVICE = "62062101011198000123"
FRIGATE_DOCUMENTED_BYTES = 2000  # the figure commonly quoted for Frigate's event message


class CountingRelay:
    """A TCP relay on loopback that counts client→broker bytes."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up_bytes = 0
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        client, _ = self._server.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        while data := src.recv(65536):
            if count:
                self.up_bytes += len(data)
            dst.sendall(data)


def measure(port: int, messages: list[tuple[str, bytes, int]]) -> list[int]:
    relay = CountingRelay(port)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="wire-size", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", relay.port, keepalive=60)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    sizes = []
    for topic, payload, qos in messages:
        time.sleep(0.1)  # let CONNECT / the previous packet drain through the relay
        before = relay.up_bytes
        info = client.publish(topic, payload, qos=qos, properties=Properties(PacketTypes.PUBLISH))
        info.wait_for_publish(5)
        time.sleep(0.1)
        sizes.append(relay.up_bytes - before)  # PUBACK is inbound, so not counted
    client.loop_stop()
    client.disconnect()
    return sizes


def typical_messages() -> dict[str, tuple[str, bytes, int]]:
    # As the agent sends it: with its outbox number "q", here a year of kept messages.
    event = Event(
        event_id=make_event_id(3, 41),
        kind="person",
        phase="start",
        time_ms=1764138000123,
        score=87,
        bbox=(112, 204, 331, 912),
        count=1,
        has_snapshot=True,
        seq=36_500,
    )
    health = Health(
        time_ms=1764138060000,
        uptime_s=86400,
        agent_version="0.1.0",
        boot=3,
        interval_s=60,
        cpu_temp_c=51.2,
        throttled=0,
        load1=0.42,
        mem_avail_mb=612,
        mem_total_mb=906,
        disk_free_mb=11234,
        camera="ok",
        camera_fps=10.0,
        motion_fps=10.0,
        inference_ms_p50=38.5,
        outbox_depth=0,
        outbox_dropped=0,
        armed=True,
        rssi_dbm=-67,
        clock="synced",
    )
    header_only = encode_snapshot(
        Snapshot(
            event_id=make_event_id(3, 41),
            phase="start",
            time_ms=1764138000123,
            width=320,
            height=180,
            jpeg=b"\xff\xd8\xff\xd9",
        )
    )[:-4]
    return {
        "event": (event_topic(DEVICE), encode(event), 1),
        "event_without_q": (event_topic(DEVICE), encode(dataclasses.replace(event, seq=None)), 1),
        # The hub's answer to a batch: one range of this device's numbers.
        "receipt": (receipt_topic(DEVICE), encode(receipts_for(range(36_481, 36_501))[0]), 1),
        "health": (health_topic(DEVICE), encode(health), 0),
        "snapshot_header": (snap_topic(DEVICE), header_only, 1),
        "frigate": (FRIGATE_TOPIC, frigate_event_payload(), 0),
    }


def run() -> dict[str, Any]:
    msgs = typical_messages()
    computed = {k: publish_packet_size(t, p, q) for k, (t, p, q) in msgs.items()}
    with run_broker() as broker:
        measured_list = measure(broker.port, list(msgs.values()))
    measured = dict(zip(msgs, measured_list, strict=True))
    for key in msgs:
        if key != "snapshot_header" and measured[key] != computed[key]:
            print(f"warning: {key}: measured {measured[key]} B but the packet layout says {computed[key]} B")
    figures = {
        "event_wire_bytes": measured["event"],
        "event_payload_bytes": len(msgs["event"][1]),
        "event_without_q_wire_bytes": measured["event_without_q"],
        "receipt_wire_bytes": measured["receipt"],
        "health_wire_bytes": measured["health"],
        "snapshot_header_wire_bytes": computed["snapshot_header"],
        "frigate_event_bytes": measured["frigate"],
        "event_ratio_vs_frigate_doc_example": round(measured["frigate"] / measured["event"], 1),
        "event_ratio_vs_frigate_2000": round(FRIGATE_DOCUMENTED_BYTES / measured["event"], 1),
    }
    merge_results(figures)
    print_table(
        "Bytes on the wire (MQTT 5 PUBLISH incl. topic; measured through a counting relay)",
        [
            ("event_wire_bytes", figures["event_wire_bytes"], "typical person start event (target <= 160)"),
            ("event_payload_bytes", figures["event_payload_bytes"], "its JSON payload alone"),
            (
                "event_without_q_wire_bytes",
                figures["event_without_q_wire_bytes"],
                "the same event without its outbox number (an old agent)",
            ),
            ("receipt_wire_bytes", figures["receipt_wire_bytes"], "the hub's receipt for a batch (downlink)"),
            ("health_wire_bytes", figures["health_wire_bytes"], "a full heartbeat"),
            (
                "snapshot_header_wire_bytes",
                figures["snapshot_header_wire_bytes"],
                "snapshot PUBLISH without the JPEG bytes",
            ),
            ("frigate_event_bytes", figures["frigate_event_bytes"], "Frigate's frigate/events, its documented example"),
            ("ratio vs documented example", figures["event_ratio_vs_frigate_doc_example"], "x smaller"),
            ("ratio vs ~2,000 B", figures["event_ratio_vs_frigate_2000"], "x smaller"),
        ],
    )
    return figures


if __name__ == "__main__":
    run()
