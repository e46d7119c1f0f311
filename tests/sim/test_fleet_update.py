"""xl-sim devices answer ``update`` as docs/ota.md section 2 says a real agent does,
through a real Mosquitto, every message read back with the protocol package's decoders."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol import Command, encode, parse_topic
from protocol.codec import decode_ack, decode_health, decode_state
from protocol.topics import cmd_topic
from sim.fleet import FAIL_REASON, RB_REASON, Fleet, Identity, Traffic, UpdateBehaviour
from tests.support.broker import run_broker
from tests.support.wait import wait_for

PLAIN = "listener {port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\n"
# With fail_fraction 0.5 and rollback_share 0.5 these ids' fates (a hash of the id) are ok, fail and rb.
OK, FAIL, RB = "62062101011198000000", "62062101011198000002", "62062101011198000003"
OLD, NEW = "0.9.0", "0.9.1"


@dataclass
class Seen:
    acks: list[tuple[str, bool]] = field(default_factory=list)
    us: list[tuple[str, str]] = field(default_factory=list)  # (us, ver), consecutive repeats dropped
    ub: list[int] = field(default_factory=list)  # while us == dl
    ue: str | None = None
    ro: set[str | None] = field(default_factory=set)
    states: list[tuple[str, str | None]] = field(default_factory=list)  # (state, ver)


def test_simulated_devices_ack_update_and_report_dl_inst_trial_ok_or_fail_or_rb() -> None:
    seen = {d: Seen() for d in (OK, FAIL, RB)}
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        topic = parse_topic(msg.topic)
        s = seen.get(topic.device or "")
        if s is None:
            return
        with lock:
            if topic.channel.value == "ack":
                ack = decode_ack(msg.payload)
                s.acks.append((ack.ref_id, ack.ok))
            elif topic.channel.value == "health":
                h = decode_health(msg.payload)
                if h.update_state is None:
                    return
                step = (h.update_state, h.agent_version or "")
                if not s.us or s.us[-1] != step:
                    s.us.append(step)
                if h.update_state == "dl" and h.update_bytes is not None:
                    s.ub.append(h.update_bytes)
                s.ue = h.update_error or s.ue
                s.ro.add(h.update_rollout)
            elif topic.channel.value == "state":
                st = decode_state(msg.payload)
                s.states.append((st.state, st.agent_version))

    behaviour = UpdateBehaviour(
        from_version=OLD,
        size_bytes=40_000,
        bandwidth_bytes_per_s=50_000.0,  # 0.8 s of download: several dl reports with a growing ub
        progress_s=0.2,
        install_s=0.2,
        restart_s=0.5,
        restart_jitter_s=0.1,
        commit_s=0.6,
        fail_fraction=0.5,
        rollback_share=0.5,
    )
    with run_broker(PLAIN) as broker:
        hub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub", protocol=mqtt.MQTTv5)
        hub.on_message = on_message
        hub.connect("127.0.0.1", broker.port)
        hub.subscribe("xl/v1/+/+", qos=1)
        hub.loop_start()
        time.sleep(0.3)
        fleet = Fleet(
            [Identity(d) for d in seen], "127.0.0.1", broker.port, None, Traffic(heartbeat_s=600), updates=behaviour
        )
        report_box = []
        runner = threading.Thread(target=lambda: report_box.append(fleet.run(8)), daemon=True)
        runner.start()
        wait_for(lambda: all(("online", OLD) in s.states for s in seen.values()), 10, "devices online")
        time.sleep(0.3)  # their cmd subscriptions went out before the online state; let them settle
        for d in seen:
            cmd = Command(command_id=f"c-{d[-2:]}", op="update", args={"ver": NEW, "ro": "7"})
            hub.publish(cmd_topic(d), encode(cmd), qos=1)
        time.sleep(0.3)
        # A resend while the device works on it is acked and changes nothing.
        hub.publish(cmd_topic(OK), encode(Command(command_id="c-again", op="update", args={"ver": NEW})), qos=1)
        runner.join(15)
        hub.loop_stop()
        hub.disconnect()
    (report,) = report_box

    ok, fail, rb = seen[OK], seen[FAIL], seen[RB]
    assert ok.acks == [("c-00", True), ("c-again", True)]
    assert fail.acks == [("c-02", True)] and rb.acks == [("c-03", True)]
    assert ok.us == [("dl", OLD), ("inst", OLD), ("trial", NEW), ("ok", NEW)]
    assert fail.us == [("dl", OLD), ("fail", OLD)] and fail.ue == FAIL_REASON
    assert rb.us == [("dl", OLD), ("inst", OLD), ("trial", NEW), ("rb", OLD)] and rb.ue == RB_REASON
    # The first report comes as the download starts: 0 bytes, or a few if the clock moved (50 kB/s).
    assert len(ok.ub) >= 3 and ok.ub == sorted(ok.ub) and ok.ub[0] < 1_000 and ok.ub[-1] < 40_000
    assert ok.ro == {"7"}
    # The restart as the hub sees it: retained offline, then online again with the new ver.
    assert ok.states == [("online", OLD), ("offline", None), ("online", NEW)]
    assert fail.states == [("online", OLD)]
    assert rb.states == [("online", OLD), ("offline", None), ("online", NEW), ("offline", None), ("online", OLD)]
    assert report.update_outcomes == {"ok": 1, "fail": 1, "rb": 1}
    assert report.restarts == 3 and report.update_bytes == 3 * 40_000
    assert report.commands["update"] == 4
