"""Run INSIDE the emulated Pi userland by tests/pi/test_arm64_agent.py (not collected on the host:
the file name does not start with test_).

The agent's MQTT link and outbox on aarch64 against the host's Mosquitto with
the generated TLS and dynamic-security config, as a provisioned device, with
the county's hub identity on the other side. The host test passes the broker
port and copies the certificates in (``XL_LINK_*``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agent import outbox as ob
from agent.link import Link, LinkSettings
from agent.outbox import Outbox
from protocol.codec import decode_event, decode_state, encode
from protocol.messages import Command, Event
from protocol.topics import cmd_topic, event_topic, state_topic
from tests.support.tls import Hub

PORT = int(os.environ["XL_LINK_PORT"])
DEVICE = os.environ["XL_LINK_DEVICE"]
GROUP = os.environ["XL_LINK_GROUP"]
ROOT = Path(os.environ["XL_LINK_DIR"])
TLS = ROOT / "device"


def hub(topics: list[str]) -> Hub:
    p: Any = SimpleNamespace(ca=ROOT / "hub" / "ca", hub_cert=ROOT / "hub" / "cert", hub_key=ROOT / "hub" / "key")
    return Hub(p, SimpleNamespace(port=PORT), topics)  # type: ignore[arg-type]


def settings(**kw: Any) -> LinkSettings:
    base: dict[str, Any] = dict(
        device_id=DEVICE,
        group=GROUP,
        host="127.0.0.1",
        port=PORT,
        ca=TLS / "ca.crt",
        cert=TLS / "device.crt",
        key=TLS / "device.key",
        keepalive=10,
        max_inflight=5,
        backoff_base_s=0.1,
        backoff_cap_s=0.5,
        agent_version="0.1.0",
        boot=7,
        health_interval_s=60,
    )
    base.update(kw)
    return LinkSettings(**base)


def event_bytes(i: int) -> bytes:
    return encode(Event(event_id=(7 << 32) + i, kind="person", phase="start", time_ms=1_764_138_000_000 + i, score=90))


def ids(messages: list[tuple[str, bytes]]) -> list[int]:
    return [decode_event(p).event_id & 0xFFFFFFFF for t, p in messages if t == event_topic(DEVICE)]


def wait_empty(box: Outbox, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while box.depth and time.monotonic() < deadline:
        time.sleep(0.05)


def test_drains_in_order_says_online_and_forgets_on_receipt(tmp_path: Path) -> None:
    h = hub([event_topic(DEVICE), state_topic(DEVICE)])
    box = Outbox(tmp_path / "o.sqlite3")
    for i in range(30):
        box.put(event_topic(DEVICE), event_bytes(i), priority=ob.PERSON, kind="event")
    link = Link(settings(), box)
    link.start()
    try:
        h.wait(lambda m: len(set(ids(m))) >= 30, timeout=30)
        assert list(dict.fromkeys(ids(h.messages))) == list(range(30))
        states = [decode_state(p) for t, p in h.messages if t == state_topic(DEVICE)]
        assert states and states[-1].state == "online" and states[-1].boot == 7
        wait_empty(box)
        assert box.depth == 0  # the hub's receipts reached the device and it forgot them
    finally:
        link.stop()
        h.close()


def test_a_command_from_the_hub_reaches_the_device(tmp_path: Path) -> None:
    got: list[tuple[str, bytes]] = []
    link = Link(settings(), Outbox(tmp_path / "o.sqlite3"), on_message=lambda t, b: got.append((t, b)))
    link.start()
    h = hub([state_topic(DEVICE)])
    try:
        h.wait(lambda m: any(t == state_topic(DEVICE) and decode_state(p).state == "online" for t, p in m))
        payload = encode(Command(command_id="c-arm64", op="arm"))
        h.publish(cmd_topic(DEVICE), payload)
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got == [(cmd_topic(DEVICE), payload)]
    finally:
        link.stop()
        h.close()


CHILD = """
import sys, time
from pathlib import Path
from agent import outbox as ob
from agent.link import Link
from tests.pi.inside.link_host_broker import event_bytes, settings, DEVICE
from protocol.topics import event_topic
box = ob.Outbox(Path(sys.argv[1]))
link = Link(settings(), box)
for i in range(40):
    if i == 20:
        link.start()  # a backlog first, so the kill lands while it drains
    box.put(event_topic(DEVICE), event_bytes(100 + i), priority=ob.PERSON, kind="event")
    print(i, flush=True)  # committed: from here on it must arrive
while True:
    time.sleep(1)
"""


def test_kill_9_while_draining_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "o.sqlite3"
    h = hub([event_topic(DEVICE)])
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert child.stdout is not None
        committed = [int(child.stdout.readline()) for _ in range(40)]
        assert committed == list(range(40))
        os.kill(child.pid, signal.SIGKILL)  # as a power cut would
        child.wait(10)
        box = Outbox(db)
        link = Link(settings(), box)  # the agent's next start
        link.start()
        try:
            h.wait(lambda m: set(range(100, 140)) <= set(ids(m)), timeout=60)
            wait_empty(box)
            assert box.depth == 0
        finally:
            link.stop()
    finally:
        if child.poll() is None:
            child.kill()
        h.close()
