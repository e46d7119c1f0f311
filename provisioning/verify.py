"""``xl-provision verify DEVICE``: the commissioning check at the door.

Connects to the broker with the read-only ``commission`` identity (not the
hub's own certificate: with ``use_username_as_clientid`` a second connection
as ``hub`` would take over the running hub's session) and waits until

* the retained ``state`` says online,
* a ``health`` message shows the camera working (cam ok or fps > 0) and the
  clock synced,
* an ``event`` arrives (the installer walks past the camera),

then prints one PASS/FAIL line per check with the reason.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol.codec import decode_event, decode_health, decode_state
from protocol.errors import ProtocolError
from protocol.ids import parse_device_id
from protocol.topics import event_topic, health_topic, state_topic

COMMISSION_CN = "commission"


@dataclass
class Check:
    name: str
    ok: bool = False
    reason: str = "nothing received yet"


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        return [f"{'PASS' if c.ok else 'FAIL'} {c.name}: {c.reason}" for c in self.checks]


class _Watcher:
    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.connected = Check("broker", reason="not connected")
        self.state = Check("online", reason="no retained state: the device has never connected")
        self.health = Check("health", reason="no health message yet")
        self.event = Check("event", reason="no event yet: walk past the camera")
        self.done = threading.Event()
        self.lock = threading.Lock()

    def checks(self) -> list[Check]:
        return [self.connected, self.state, self.health, self.event]

    def on_message(self, topic: str, payload: bytes) -> None:
        with self.lock:
            try:
                if topic == state_topic(self.device_id):
                    st = decode_state(payload)
                    self.state.ok = st.state == "online"
                    self.state.reason = f"state {st.state}" + (
                        f", agent {st.agent_version}" if st.agent_version else ""
                    )
                elif topic == health_topic(self.device_id):
                    self._judge_health(payload)
                elif topic == event_topic(self.device_id):
                    ev = decode_event(payload)
                    self.event.ok = True
                    self.event.reason = f"{ev.kind} {ev.phase} score {ev.score}"
            except ProtocolError as exc:
                target = {state_topic(self.device_id): self.state, health_topic(self.device_id): self.health}.get(
                    topic, self.event
                )
                target.ok = False
                target.reason = f"undecodable message ({exc.reason}): {exc.detail}"
            if all(c.ok for c in self.checks()):
                self.done.set()

    def _judge_health(self, payload: bytes) -> None:
        h = decode_health(payload)
        problems = []
        camera_ok = h.camera == "ok" or (h.camera_fps is not None and h.camera_fps > 0)
        if not camera_ok:
            problems.append(f"camera {h.camera or 'unknown'} at {h.camera_fps or 0:g} fps")
        if h.clock != "synced":
            problems.append(f"clock {h.clock or 'unknown'} (check NTP / network)")
        if h.error:
            problems.append(f"agent error: {h.error}")
        self.health.ok = not problems
        if problems:
            self.health.reason = "; ".join(problems)
        else:
            self.health.reason = f"camera {h.camera or 'ok'} {h.camera_fps or 0:g} fps, clock synced"


def verify(
    device_id: str,
    host: str,
    port: int,
    *,
    ca: str,
    cert: str,
    key: str,
    timeout: float = 180.0,
    client_id: str = COMMISSION_CN,
) -> Verdict:
    parse_device_id(device_id)
    w = _Watcher(device_id)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.load_cert_chain(cert, key)
    client.tls_set_context(ctx)

    def on_connect(c, _u, _f, reason, _p):  # type: ignore[no-untyped-def]
        if reason.is_failure:
            w.connected.reason = f"broker refused the connection: {reason}"
            w.done.set()
            return
        w.connected.ok, w.connected.reason = True, f"connected to {host}:{port} as {client_id}"
        c.subscribe([(state_topic(device_id), 1), (health_topic(device_id), 1), (event_topic(device_id), 1)])

    client.on_connect = on_connect
    client.on_message = lambda _c, _u, msg: w.on_message(msg.topic, bytes(msg.payload))
    try:
        client.connect(host, port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        w.connected.reason = f"cannot reach {host}:{port}: {exc}"
        return Verdict(w.checks())
    client.loop_start()
    try:
        w.done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    checks = w.checks()
    if not w.done.is_set():
        for c in checks:
            if not c.ok:
                c.reason += f" (gave up after {timeout:g}s)"
    return Verdict(checks)
