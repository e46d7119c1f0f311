"""Bad input: fuzzed decoders (Hypothesis), and garbage thrown at a running hub process.

The fuzz tests run a modest number of cases each; ``bench/fuzz_soak.py`` runs
the same targets for ≥10^5 cases.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from agent.clock import DeviceClock
from agent.commands import CommandPorts, Commands
from agent.outbox import Outbox
from agent.outbox_writer import OutboxWriter
from agent.schedule import Arming
from hub.alerts.engine import AlertEngine
from hub.cli import main as hub_main
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.db import make_engine
from hub.db.schema_ops import events, rejections
from hub.ingest.batch import BatchProcessor
from protocol import limits
from protocol.codec import encode
from protocol.messages import Event, Health
from protocol.topics import Channel, cmd_topic, event_topic, health_topic, snap_topic
from tests.support import fuzz_targets
from tests.support.hub_db import make_fleet
from tests.support.mqtt_clients import connect
from tests.support.reliability_rig import Rig, hub_yaml, spawn_hub, stop_process
from tests.support.wait import wait_for

FUZZ = settings(max_examples=150, deadline=None, derandomize=True)
FUZZ_DB = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
WIRE_KEYS = [
    "v",
    "id",
    "k",
    "p",
    "t",
    "s",
    "b",
    "z",
    "n",
    "sn",
    "du",
    "u",
    "st",
    "ver",
    "boot",
    "hi",
    "re",
    "ok",
    "err",
    "op",
    "a",
    "ph",
    "o",
    "hh",
    "msg",
    "ob",
    "obd",
    "clk",
    "cam",
    "temp",
    "thr",
    "w",
    "h",
    "c",
]
# Objects shaped like messages: real keys, wrong or right values; v is often 1 so decoding gets past the version.
wire_object = st.dictionaries(st.sampled_from(WIRE_KEYS), json_value, max_size=10).map(
    lambda d: {**d, "v": 1} if len(d) % 3 else d
)
ALL_CHANNELS = [*fuzz_targets.JSON_CHANNELS, Channel.SNAP]


def _as_bytes(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


# -- the protocol codec: every channel and the snapshot -------------------------------------------------------


@FUZZ
@given(channel=st.sampled_from(ALL_CHANNELS), payload=st.binary(max_size=2048))
def test_codec_random_bytes(channel: Channel, payload: bytes) -> None:
    fuzz_targets.codec(channel, payload)


@FUZZ
@given(channel=st.sampled_from(fuzz_targets.JSON_CHANNELS), obj=wire_object)
def test_codec_message_shaped_objects(channel: Channel, obj: dict[str, object]) -> None:
    fuzz_targets.codec(channel, _as_bytes(obj))


@FUZZ
@given(channel=st.sampled_from(fuzz_targets.JSON_CHANNELS), rng=st.randoms(use_true_random=False))
def test_codec_mutated_valid_messages(channel: Channel, rng: random.Random) -> None:
    seed = rng.choice(fuzz_targets.SEEDS[channel])
    fuzz_targets.codec(channel, fuzz_targets.mutate_json(rng, seed))


@FUZZ
@given(header=wire_object, jpeg=st.binary(max_size=64), rng=st.randoms(use_true_random=False))
def test_codec_snapshots(header: dict[str, object], jpeg: bytes, rng: random.Random) -> None:
    head = _as_bytes(header)
    fuzz_targets.codec(Channel.SNAP, len(head).to_bytes(2, "big") + head + b"\xff\xd8" + jpeg + b"\xff\xd9")
    fuzz_targets.codec(Channel.SNAP, fuzz_targets.mutate_bytes(rng, fuzz_targets.SNAP_SEED))


def test_codec_seeds_are_valid() -> None:
    # The control: the mutators start from messages the codec accepts, so rejections mean something.
    for channel, seeds in fuzz_targets.SEEDS.items():
        for seed in seeds:
            assert fuzz_targets.codec(channel, seed) is None, (channel, seed)
    assert fuzz_targets.codec(Channel.SNAP, fuzz_targets.SNAP_SEED) is None


# -- the hub's ingest validation path, through the real batch processor -------------------------------------


@pytest.fixture
def processor(sqlite_url: str) -> Iterator[tuple[BatchProcessor, list[str]]]:
    engine = make_engine(sqlite_url)
    devices = [d for devs in make_fleet(engine, groups=1, per_group=2).values() for d in devs]
    sink = MemoryForwardSink()
    directory = Directory(engine, ttl_s=60)
    yield BatchProcessor(engine, directory, AlertEngine(directory, AlertConfig(), sink), sink, HealthConfig()), devices
    engine.dispose()


@FUZZ_DB
@given(rng=st.randoms(use_true_random=False), size=st.integers(min_value=1, max_value=30))
def test_ingest_batches_of_random_topics_and_payloads(
    processor: tuple[BatchProcessor, list[str]], rng: random.Random, size: int
) -> None:
    proc, devices = processor
    messages = []
    for _ in range(size):
        channel = rng.choice(list(fuzz_targets.SEEDS))
        payload = (
            fuzz_targets.mutate_json(rng, rng.choice(fuzz_targets.SEEDS[channel]))
            if rng.random() < 0.8
            else rng.randbytes(rng.randint(0, 100))
        )
        topic = (
            fuzz_targets.random_topic(rng, devices)
            if rng.random() < 0.5
            else f"xl/v1/{rng.choice(devices)}/{rng.choice(['event', 'health', 'state', 'ack', 'snap'])}"
        )
        messages.append((topic, payload))
    fuzz_targets.batch(proc, messages, int(time.time() * 1000))


# -- agent config, hub config, CSV rows, agent commands ---------------------------------------------------------


AGENT_EXAMPLE = fuzz_targets.agent_example()


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_agent_config_parser(rng: random.Random) -> None:
    fuzz_targets.agent_config_doc(fuzz_targets.random_doc(rng, AGENT_EXAMPLE))


@FUZZ
@given(doc=json_value)
def test_agent_config_parser_any_yaml_value(doc: object) -> None:
    fuzz_targets.agent_config_doc(doc)


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_hub_config_parser(rng: random.Random) -> None:
    fuzz_targets.hub_config_doc(fuzz_targets.random_doc(rng, fuzz_targets.HUB_EXAMPLE))


@FUZZ
@given(
    row=st.dictionaries(
        st.sampled_from(
            [
                "township",
                "village",
                "household",
                "group",
                "lat",
                "lon",
                "name",
                "phone",
                "leader",
                "armed_from",
                "armed_to",
            ]
        ),
        st.none() | st.text(max_size=70),
        max_size=11,
    ),
    rng=st.randoms(use_true_random=False),
)
def test_csv_row_parser(row: dict[str, str | None], rng: random.Random) -> None:
    fuzz_targets.csv_row(row)
    fuzz_targets.csv_row(fuzz_targets.random_row(rng))


@pytest.fixture
def commands(tmp_path: Path) -> Commands:
    noon = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    box = Outbox(tmp_path / "o.sqlite3")
    arming = Arming(tmp_path / "arming.json", "21:00", "06:00", now=lambda: noon)
    writer = OutboxWriter(fuzz_targets.DEVICE, box, 1, DeviceClock(probe=lambda: "synced"))
    return Commands(writer, arming, CommandPorts())


@FUZZ_DB
@given(rng=st.randoms(use_true_random=False), raw=st.binary(max_size=300), obj=wire_object)
def test_agent_command_handling(commands: Commands, rng: random.Random, raw: bytes, obj: dict[str, object]) -> None:
    for payload in (raw, _as_bytes(obj), fuzz_targets.mutate_json(rng, rng.choice(fuzz_targets.SEEDS[Channel.CMD]))):
        fuzz_targets.command(commands, payload)


# -- config files with wrong types: a clear error naming the key, at the command line ----------------------------


def test_hub_config_with_wrong_types_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for section, key, value in (
        ("ingest", "batch_max", "200"),
        ("mqtt", "port", 70000),
        ("metrics", "enabled", "yes"),
        ("alerts", "timezone", "Mars/Olympus"),
    ):
        doc = json.loads(json.dumps(fuzz_targets.HUB_EXAMPLE))
        doc[section][key] = value
        path = tmp_path / "hub.yaml"
        path.write_text(yaml.safe_dump(doc))
        assert hub_main(["run", "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{section}.{key}" in err and "config error" in err, err


def test_agent_config_with_wrong_types_names_the_key(tmp_path: Path) -> None:
    from agent.check import run_checks

    doc = fuzz_targets.agent_example()
    doc["broker"]["keepalive"] = "sixty"
    doc["outbox"]["max_rows"] = [1]
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    out = io.StringIO()
    assert run_checks(path, out) == 1
    text = out.getvalue()
    assert "broker.keepalive" in text and "'sixty'" in text and "outbox.max_rows" in text, text


# -- garbage at a running hub process: counted rejections, and it keeps ingesting ----------------------------------


def test_running_hub_rejects_garbage_counts_it_and_keeps_ingesting(rig: Rig) -> None:
    config = hub_yaml(rig, rig.tmp / "hub.yaml", client_id="hub-garbage")
    log = rig.tmp / "hub.log"
    dev = rig.devices[0]
    cert, key = rig.pki.devices[dev]
    hub = spawn_hub(config, log)
    client = connect(rig.broker.port, ca=rig.pki.base.ca, cert=cert, key=key, client_id=dev)
    assert client.connected.is_set(), client.refused
    try:
        now = int(time.time() * 1000)
        good = encode(Event(event_id=1, kind="person", phase="start", time_ms=now, score=80))
        # Re-sent until stored: before the hub has subscribed the broker delivers it to no one (PUBACK 0x10).
        deadline = time.monotonic() + 20
        while _stored(rig) != {(1, "start")}:
            assert time.monotonic() < deadline, "the hub never started ingesting"
            client.publish(event_topic(dev), good)
            time.sleep(0.3)

        garbage: list[tuple[str, bytes, str]] = [
            (event_topic(dev), b"{" * (limits.MAX_EVENT_BYTES + 10), "too_large"),
            (health_topic(dev), b'{"v":1,"t":1,"err":"' + b"x" * 5000 + b'"}', "too_large"),
            (snap_topic(dev), b"\x00\x05" + b"{}" * 40_000, "too_large"),
            (event_topic(dev), encode(Health(time_ms=now)), "missing_field"),  # health on the event topic
            (event_topic(dev), fuzz_targets.SNAP_SEED, "not_utf8"),  # a snapshot on the event topic
            (health_topic(dev), b"[1,2,3]", "not_object"),
            (event_topic(dev), b'{"v":9,"id":2,"k":"person","p":"start","t":1,"s":1}', "bad_version"),
            (event_topic(dev), b'{"v":1,"id":2,"id":3,"k":"person","p":"start","t":1,"s":1}', "not_json"),
            (event_topic(dev), b'{"v":1,"id":2,"k":"person","p":"start","t":NaN,"s":1}', "not_json"),
            (event_topic(dev), b"\xff\xfe", "not_utf8"),
            (event_topic("62062101011198999999"), good, "unknown_device"),
        ]
        for topic, payload, _ in garbage:
            client.publish(topic, payload)
        # Replays: the same (id, phase) re-sent later is stored once.
        for _ in range(3):
            client.publish(event_topic(dev), good)
        # Absurd device clocks: 1970 and 2100 are kept for diagnosis, the receive time is used.
        client.publish(
            event_topic(dev), encode(Event(event_id=2, kind="motion", phase="start", time_ms=1000, score=10))
        )
        client.publish(
            event_topic(dev),
            encode(Event(event_id=3, kind="motion", phase="start", time_ms=4_102_444_800_000, score=10)),
        )  # 2100-01-01
        # And a good message after all that garbage is still ingested.
        client.publish(event_topic(dev), encode(Event(event_id=4, kind="person", phase="end", time_ms=now, score=90)))
        wait_for(lambda: {(4, "end"), (2, "start"), (3, "start")} <= _stored(rig), 20, "good messages after garbage")
        assert hub.poll() is None, log.read_text()

        wanted = {r for _, _, r in garbage if r}
        wait_for(lambda: wanted <= set(_rejections(rig)), 10, "every rejection counted")
        counts = _rejections(rig)
        assert counts["too_large"] == 3 and counts["not_utf8"] == 2 and counts["not_json"] == 2, counts
        assert hub.poll() is None
        with rig.engine.connect() as conn:
            rows = {r.event_id: r for r in conn.execute(select(events).where(events.c.device_id == dev))}
        assert sorted(_stored(rig, dev)) == [(1, "start"), (2, "start"), (3, "start"), (4, "end")]  # replay once
        for eid, device_ms in ((2, 1000), (3, 4_102_444_800_000)):
            row = rows[eid]
            assert not row.time_trusted and row.time_ms == row.received_ms and row.device_time_ms == device_ms
        assert rows[1].time_trusted
        # A device publishing a command to itself (wrong direction) reaches nothing the hub reads.
        client.publish(cmd_topic(dev), good)
        time.sleep(0.3)
        assert hub.poll() is None
    finally:
        client.close()
        stop_process(hub)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


def _stored(rig: Rig, device: str | None = None) -> set[tuple[int, str]]:
    with rig.engine.connect() as conn:
        q = select(events.c.event_id, events.c.phase)
        if device is not None:
            q = q.where(events.c.device_id == device)
        return {(int(r.event_id), r.phase) for r in conn.execute(q)}


def _rejections(rig: Rig) -> dict[str, int]:
    with rig.engine.connect() as conn:
        return {r.reason: int(r.count) for r in conn.execute(select(rejections.c.reason, rejections.c.count))}
