"""Config pushes and the device config history (hub/configs, issue 20), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, select

from hub.commands import record_result, send_command
from hub.configs.service import ConfigPushes, PushResult, check_vision_doc, command_size
from hub.configs.tables import config_pushes
from hub.db import make_engine
from hub.db.schema import villages
from hub.registry import Registry
from protocol import limits
from protocol.codec import decode
from protocol.messages import Ack, Command
from protocol.topics import cmd_topic
from tests.support.hub_db import device, make_fleet

GATE = {"name": "gate", "polygon": [[0.4, 0.5], [0.6, 0.5], [0.6, 1.0], [0.4, 1.0]]}
ROAD = {"name": "road", "polygon": [[0.0, 0.3], [1.0, 0.3], [1.0, 0.5], [0.0, 0.5]], "loiter_s": 60}
VISION = {"zones": [GATE, ROAD], "required_zones": ["gate"]}


class FakeBroker:
    """A ``hub.commands.Publisher`` that keeps what it was given (thread-safe: pushes race in one test)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def publish(self, items: Sequence[tuple[str, bytes, int, Any]], timeout: float = 5.0) -> list[int]:
        with self.lock:
            self.sent.extend((topic, payload) for topic, payload, _qos, _track in items)
        return [mqtt.MQTT_ERR_SUCCESS for _ in items]

    def is_connected(self) -> bool:
        return True


@pytest.fixture
def fleet(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    devices = make_fleet(engine, groups=1, per_group=3)["g000"]
    broker = FakeBroker()
    yield engine, devices, broker
    engine.dispose()


def pushes(engine: Engine, broker: FakeBroker) -> ConfigPushes:
    return ConfigPushes(engine, lambda d, op, a: send_command(engine, broker, d, op, a))


def ack(engine: Engine, device_id: str, command_id: str, ok: bool, error: str | None = None) -> None:
    with engine.begin() as conn:
        record_result(
            conn, device_id, Ack(of="cmd", ref_id=command_id, ok=ok, time_ms=1, error=error), 1_700_000_000_000
        )


def test_revisions_increment_and_the_command_carries_them(fleet) -> None:  # type: ignore[no-untyped-def]
    engine, (dev, other, _), broker = fleet
    cp = pushes(engine, broker)
    first = cp.push(dev, VISION, "alice")
    second = cp.push(dev, {"masks": []}, "bob")
    elsewhere = cp.push(other, VISION, "alice")
    assert (first.rev, second.rev, elsewhere.rev) == (1, 2, 1)  # per device
    assert first.error is None and first.command_id is not None
    topic, payload = broker.sent[0]
    cmd = decode("cmd", payload)
    assert isinstance(cmd, Command)
    assert topic == cmd_topic(dev) and cmd.op == "config" and cmd.args == {"rev": 1, "vision": VISION}
    assert cmd.command_id == first.command_id
    rows = cp.history(dev)
    assert [(r["rev"], r["created_by"], r["status"]) for r in rows] == [(2, "bob", "sent"), (1, "alice", "sent")]


def test_concurrent_pushes_never_share_a_revision(fleet) -> None:  # type: ignore[no-untyped-def]
    engine, (dev, _, _), broker = fleet
    cp = pushes(engine, broker)
    results: list[PushResult] = []
    start = threading.Barrier(4)

    def run() -> None:
        start.wait()
        for _ in range(3):
            results.append(cp.push(dev, VISION, "alice"))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.rev for r in results) == list(range(1, 13))
    assert all(r.error is None for r in results)


def test_history_status_comes_from_the_devices_ack(fleet) -> None:  # type: ignore[no-untyped-def]
    engine, (dev, _, _), broker = fleet
    cp = pushes(engine, broker)
    good = cp.push(dev, VISION, "alice")
    bad = cp.push(dev, {"zones": [GATE], "required_zones": ["gate"]}, "alice")
    pending = cp.push(dev, {"masks": []}, "alice")
    assert cp.current(dev) is None  # nothing applied yet
    assert good.command_id and bad.command_id and pending.command_id
    ack(engine, dev, good.command_id, True)
    ack(engine, dev, bad.command_id, False, "vision.zones[0].kinds: unknown kind 'cat'")
    by_rev = {r["rev"]: r for r in cp.history(dev)}
    assert (by_rev[1]["status"], by_rev[1]["reason"], by_rev[1]["acked_ms"]) == ("applied", None, 1_700_000_000_000)
    assert (by_rev[2]["status"], by_rev[2]["reason"]) == ("refused", "vision.zones[0].kinds: unknown kind 'cat'")
    assert (by_rev[3]["status"], by_rev[3]["acked_ms"]) == ("sent", None)
    assert by_rev[1]["doc"] == VISION
    # The newest *applied* push, not the newest push: rev 2 was refused, 3 is unanswered.
    assert cp.current(dev) == VISION
    assert [r["rev"] for r in cp.history(dev, limit=2)] == [3, 2]


def test_a_village_template_is_one_row_per_device_of_that_village(fleet) -> None:  # type: ignore[no-untyped-def]
    engine, devs, broker = fleet
    reg = Registry(engine)
    with engine.begin() as conn:
        home = conn.execute(select(villages.c.id).where(villages.c.name == "和平村")).scalar_one()
        away = reg.ensure_village(conn, "01", "红柳村")
        reg.ensure_group(conn, "g900", away)
        reg.ensure_household(conn, "HH900", village_id=away, group_id="g900")
        reg.add_device(conn, device(1, 900), "HH900")
    reg.revoke_device(devs[2])
    results = pushes(engine, broker).push_village(home, VISION, "alice", template="night-gate")
    assert sorted(r.device_id for r in results) == sorted(devs[:2])  # the revoked one and the other village's left out
    assert all(r.rev == 1 and r.error is None for r in results)
    with engine.connect() as conn:
        rows = conn.execute(select(config_pushes.c.device_id, config_pushes.c.template)).all()
    assert sorted(rows) == sorted((d, "night-gate") for d in devs[:2])


def test_a_command_over_8_kb_is_refused_before_anything_is_written(fleet) -> None:  # type: ignore[no-untyped-def]
    engine, (dev, _, _), broker = fleet
    polygon = [[round(i / 67, 6), round(1 - i / 67, 6)] for i in range(1, 65)]
    big = {"zones": [{"name": f"zone{i}", "polygon": polygon} for i in range(8)]}
    assert command_size(big) > limits.MAX_COMMAND_BYTES
    with pytest.raises(ValueError, match="over the 8192-byte limit"):
        pushes(engine, broker).push(dev, big, "alice")
    assert broker.sent == []
    with engine.connect() as conn:
        assert conn.execute(select(config_pushes)).all() == []
    # Just under the limit goes through.
    fits = {"zones": [{"name": f"zone{i}", "polygon": polygon} for i in range(3)]}
    assert command_size(fits) <= limits.MAX_COMMAND_BYTES
    assert pushes(engine, broker).push(dev, fits, "alice").error is None


def test_delivery_problems_are_results_and_unsent_rows(fleet) -> None:  # type: ignore[no-untyped-def]
    engine, (dev, _, gone), broker = fleet
    assert ConfigPushes(engine, None).push(dev, VISION, "alice").error == (
        "no MQTT channel to the devices: config not sent"
    )
    Registry(engine).revoke_device(gone)
    cp = pushes(engine, broker)
    assert cp.push(gone, VISION, "alice") == PushResult(gone, 0, None, f"device {gone} is revoked")
    assert cp.push("62062101011198999999", VISION, "alice").error == "device 62062101011198999999 is not registered"

    def broken(_d: str, _op: str, _a: dict[str, Any]) -> str:
        raise RuntimeError("not connected to the MQTT broker")

    result = ConfigPushes(engine, broken).push(dev, VISION, "alice")
    assert (result.rev, result.command_id, result.error) == (1, None, "not connected to the MQTT broker")
    [row] = cp.history(dev)
    assert (row["status"], row["reason"], row["command_id"]) == ("unsent", "not connected to the MQTT broker", None)
    assert cp.push(dev, VISION, "alice").rev == 2  # the unsent revision stays spent: the history keeps it


@pytest.mark.parametrize(
    ("doc", "names"),
    [
        ([], "vision:"),
        ({}, "vision: empty"),
        ({"detect": {}}, "vision.detect:"),
        ({"masks": {}}, "vision.masks:"),
        ({"masks": [[[0, 0], [1, 0]]]}, r"vision.masks\[0\]:"),
        ({"masks": [[[0, 0], [1, 0], [1, 2]]]}, r"vision.masks\[0\]\[2\]:"),
        ({"masks": [[[0, 0], [1, 0], [True, 1]]]}, r"vision.masks\[0\]\[2\]:"),
        ({"zones": [GATE] * 2}, r"vision.zones\[1\].name: 'gate' is used twice"),
        ({"zones": [{**GATE, "name": f"z{i}"} for i in range(9)]}, "vision.zones: 9 zones"),
        ({"zones": [{**GATE, "name": ""}]}, r"vision.zones\[0\].name:"),
        ({"zones": [{**GATE, "name": "x" * 25}]}, r"vision.zones\[0\].name:"),
        # What no event could carry back (protocol.fields refuses it): a NUL, a control, a lone surrogate.
        ({"zones": [{**GATE, "name": "a\x00"}]}, r"vision.zones\[0\].name: no control characters"),
        ({"zones": [{**GATE, "name": "a\x1b[2J"}]}, r"vision.zones\[0\].name: no control characters"),
        ({"zones": [{**GATE, "name": "\ud800"}]}, r"vision.zones\[0\].name: no control characters"),
        ({"required_zones": ["\x00"]}, r"vision.required_zones\[0\]: no control characters"),
        ({"zones": [{"name": "gate"}]}, r"vision.zones\[0\].polygon:"),
        ({"zones": ["gate"]}, r"vision.zones\[0\]:"),
        ({"zones": [GATE], "required_zones": ["yard"]}, r"vision.required_zones\[0\]: no zone named 'yard'"),
        ({"required_zones": "gate"}, "vision.required_zones:"),
        ({"profiles": []}, "vision.profiles:"),
    ],
)
def test_check_vision_doc_names_the_bad_key(doc: Any, names: str) -> None:
    with pytest.raises(ValueError, match=names):
        check_vision_doc(doc)


def test_check_vision_doc_passes_the_contracts_example() -> None:
    # docs/zones.md and protocol/README.md's config command example.
    example = json.loads(
        '{"masks":[[[0,0],[0.3,0],[0.3,0.2],[0,0.2]]],"zones":[{"name":"gate","polygon":[[0.4,0.5],[0.6,0.5],'
        '[0.6,1],[0.4,1]]},{"name":"road","polygon":[[0,0.3],[1,0.3],[1,0.5],[0,0.5]],"loiter_s":60}],'
        '"required_zones":["gate","road"],"profiles":{"select":"ir","night":{"score_threshold":0.6}}}'
    )
    check_vision_doc(example)
    check_vision_doc({"required_zones": ["院门"]})  # the device's own zones: the hub cannot know them


def test_a_document_nested_too_deeply_is_a_bad_document_not_a_crash() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match=r"vision\.profiles: nested too deeply"):
        check_vision_doc({"profiles": {"day": {"zones": {"a": deep}}}})
    from hub.configs.service import command_size

    with pytest.raises(ValueError, match=r"vision: nested too deeply"):
        command_size({"profiles": {"day": deep}})


def test_a_queued_push_older_than_one_already_sent_is_not_sent_after_it(fleet) -> None:  # type: ignore[no-untyped-def]
    """``xl-hub config push`` queues rev 1; before the running hub's next pass an operator pushes
    rev 2 from the console. A push replaces the device's pushed keys whole, so sending rev 1 now
    would leave the device on the older config while the history says rev 2 was applied."""
    from hub.configs.service import send_queued

    engine, (dev, other, _), broker = fleet
    assert ConfigPushes(engine, None, queue=True).push(dev, {"masks": []}, "cli").rev == 1
    assert ConfigPushes(engine, None, queue=True).push(other, {"masks": []}, "cli").rev == 1
    assert pushes(engine, broker).push(dev, VISION, "console").rev == 2

    def send(d: str, op: str, a: dict[str, Any]) -> str:
        return send_command(engine, broker, d, op, a)

    assert [(r.device_id, r.rev) for r in send_queued(engine, send)] == [(other, 1)]
    revs = [(t, decode("cmd", p).args["rev"]) for t, p in broker.sent]  # type: ignore[union-attr]
    assert revs == [(cmd_topic(dev), 2), (cmd_topic(other), 1)]
    history = pushes(engine, broker).history(dev)
    assert [(h["rev"], h["status"]) for h in history] == [(2, "sent"), (1, "unsent")]
    assert history[1]["reason"] == "superseded by rev 2: not sent"
    assert send_queued(engine, send) == []


def test_another_devices_ack_cannot_settle_a_push(fleet) -> None:  # type: ignore[no-untyped-def]
    """A stolen certificate acks (ok) the command id of a push to its neighbour: nothing changes."""
    engine, (dev, thief, _), broker = fleet
    result = pushes(engine, broker).push(dev, VISION, "alice")
    ack(engine, thief, result.command_id, True)
    assert [h["status"] for h in pushes(engine, broker).history(dev)] == ["sent"]
    assert pushes(engine, broker).current(dev) is None
    ack(engine, dev, result.command_id, False, "vision.zones[0].polygon: no")
    (row,) = pushes(engine, broker).history(dev)
    assert (row["status"], row["reason"]) == ("refused", "vision.zones[0].polygon: no")


def test_a_queued_push_is_still_sent_when_the_newer_one_never_left_the_hub(fleet) -> None:  # type: ignore[no-untyped-def]
    from hub.configs.service import send_queued

    engine, (dev, _, _), broker = fleet
    assert ConfigPushes(engine, None, queue=True).push(dev, {"masks": []}, "cli").rev == 1

    def down(d: str, op: str, a: dict[str, Any]) -> str:
        raise ConnectionError("broker unreachable")

    assert ConfigPushes(engine, down).push(dev, VISION, "console").error == "broker unreachable"
    sent = send_queued(engine, lambda d, op, a: send_command(engine, broker, d, op, a))
    assert [(r.rev, r.error) for r in sent] == [(1, None)]
    assert [(h["rev"], h["status"]) for h in pushes(engine, broker).history(dev)] == [(2, "unsent"), (1, "sent")]


def test_two_pushes_racing_reach_the_device_in_revision_order(fleet) -> None:  # type: ignore[no-untyped-def]
    """An admin's village push and an operator's push to one of its devices at the same moment:
    whichever got the lower revision must be published first, or the device ends on the older
    config while the history's newest applied revision says otherwise."""
    engine, (dev, _, _), broker = fleet
    first_allocated = threading.Event()
    second_done = threading.Event()

    def send(d: str, op: str, a: dict[str, Any]) -> str:
        if a["rev"] == 1:  # the first push is slow to publish (a busy broker, the GIL)
            first_allocated.set()
            second_done.wait(1.0)
        return send_command(engine, broker, d, op, a)

    slow = threading.Thread(target=lambda: ConfigPushes(engine, send).push(dev, {"masks": []}, "admin"))
    slow.start()
    assert first_allocated.wait(5)
    fast = threading.Thread(target=lambda: (ConfigPushes(engine, send).push(dev, VISION, "op"), second_done.set()))
    fast.start()
    slow.join(10)
    fast.join(10)
    assert [decode("cmd", p).args["rev"] for _, p in broker.sent] == [1, 2]  # type: ignore[union-attr]
