"""Fuzz targets: every decoder of untrusted input, each with the contract it must keep.

A target takes one input and raises ``AssertionError`` if the decoder broke
its contract (an unexpected exception type, a reason outside the closed set,
a message neither accepted nor rejected). A decoder *rejecting* the input is
the expected outcome for garbage, not a failure.

Shared by the Hypothesis tests (tests/reliability/test_bad_input.py) and the
≥10^5-case soak (bench/fuzz_soak.py), which also uses the mutators below.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from agent import config as agent_config
from agent.commands import Commands
from hub.config import ConfigError as HubConfigError
from hub.config import parse_config
from hub.core.inbound import ALL_REASONS, Inbound
from hub.ingest.batch import BatchProcessor
from protocol.codec import decode, decode_snapshot
from protocol.errors import REASONS, ProtocolError
from protocol.topics import Channel
from provisioning.rows import OPTIONAL, REQUIRED, parse_spec

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "62062101011198000123"
JSON_CHANNELS = (Channel.EVENT, Channel.HEALTH, Channel.STATE, Channel.ACK, Channel.CMD, Channel.ALERT)

# Valid seeds to mutate: the wire contract's own examples (protocol/README.md).
SEEDS: dict[Channel, list[bytes]] = {
    Channel.EVENT: [
        b'{"v":1,"id":12884901929,"k":"person","p":"start","t":1764138000123,"s":87,"b":[112,204,331,912],'
        b'"n":1,"sn":1}',
        b'{"v":1,"id":12884901930,"k":"panic","p":"start","t":1764138100000,"s":100}',
        b'{"v":1,"id":12884901929,"k":"person","p":"end","t":1764138012123,"s":91,"du":12,"z":"gate","u":1}',
    ],
    Channel.HEALTH: [
        b'{"v":1,"t":1764138060000,"up":86400,"ver":"0.1.0","boot":3,"hi":60,"temp":51.2,"thr":0,"load":0.42,'
        b'"mem":612,"memt":906,"disk":11234,"cam":"ok","fps":10.0,"ob":0,"obd":0,"arm":1,"rssi":-67,'
        b'"clk":"synced","err":"outbox write failed: disk full"}',
    ],
    Channel.STATE: [
        b'{"v":1,"st":"online","t":1764138000000,"ver":"0.1.0","boot":3,"hi":60}',
        b'{"v":1,"st":"offline"}',
    ],
    Channel.ACK: [
        b'{"v":1,"re":"cmd","id":"c-7f3b","ok":0,"t":1764138000456,"err":"unknown op"}',
        b'{"v":1,"re":"alert","id":"a-20251126-0001","ok":1,"t":1764138105000}',
    ],
    Channel.CMD: [
        b'{"v":1,"id":"c-7f3a","op":"schedule","a":{"from":"21:30","to":"06:30"},"t":1764138000000}',
        b'{"v":1,"id":"c-1","op":"snapshot","a":{"w":640}}',
        b'{"v":1,"id":"c-2","op":"identify"}',
    ],
    Channel.ALERT: [
        b'{"v":1,"id":"a-20251126-0001","ph":"raise","k":"panic","o":"62062101011198000123",'
        b'"hh":"HH0123","t":1764138100350,"msg":"\xe5\xbc\xa0\xe5\xae\xb6"}'
    ],
}
SNAP_HEADER = b'{"v":1,"id":12884901929,"p":"start","t":1764138000123,"w":320,"h":180}'
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(40)) + b"\xff\xd9"
SNAP_SEED = len(SNAP_HEADER).to_bytes(2, "big") + SNAP_HEADER + JPEG


# -- the targets --------------------------------------------------------------------


def codec(channel: Channel, payload: bytes) -> str | None:
    """Decode ``payload`` on ``channel``: a message, or ProtocolError with a known reason. Returns the reason."""
    try:
        if channel is Channel.SNAP:
            decode_snapshot(payload)
        else:
            decode(channel, payload)
    except ProtocolError as exc:
        assert exc.reason in REASONS, exc.reason
        return exc.reason
    return None


def batch(proc: BatchProcessor, messages: list[tuple[str, bytes]], now_ms: int) -> tuple[int, list[str]]:
    """Through the hub's real batch processor: every message accepted or rejected with a counted reason."""
    inbound = [Inbound(t, p, i + 1, 1, now_ms) for i, (t, p) in enumerate(messages)]
    result = proc.process(inbound)  # raising here would stop ingest: the contract says it never does
    accepted = sum(result.accepted.values())
    assert accepted + len(result.rejected) == len(messages), (accepted, len(result.rejected), len(messages))
    reasons = [r.reason for r in result.rejected]
    assert set(reasons) <= ALL_REASONS, set(reasons) - ALL_REASONS
    assert "decode_error" not in reasons, [r.detail for r in result.rejected if r.reason == "decode_error"]
    return accepted, reasons


def agent_config_doc(doc: Any) -> bool:
    """The agent's config parser: a config, or ConfigError whose problems each name a key."""
    try:
        agent_config.parse(doc, "fuzz.yaml")
    except agent_config.ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems), exc.problems
        return False
    return True


def hub_config_doc(doc: Any) -> bool:
    try:
        parse_config(doc, "fuzz.yaml")
    except HubConfigError as exc:
        assert str(exc), "a config error must say something"
        return False
    return True


def csv_row(values: dict[str, str | None]) -> bool:
    """The provisioning row parser: a DeviceSpec, or ValueError naming the problem."""
    try:
        parse_spec(values)
    except ValueError as exc:
        assert str(exc), "a row error must say why"
        return False
    return True


def command(cmds: Commands, payload: bytes) -> bool:
    """Agent command handling: every command, however broken, gets an ack; nothing raises."""
    ack = cmds.handle(payload)
    assert ack.of == "cmd" and ack.ref_id, ack
    assert ack.ok or ack.error, "an error ack must say why"
    return bool(ack.ok)


# -- mutators for the soak ------------------------------------------------------------

_INTERESTING: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**53,
    2**53 - 1,
    2**64,
    -(2**63),
    1e308,
    -0.0,
    0.5,
    "",
    "x" * 300,
    "\u0000",
    "\ud7ff",
    "62062101011198000123",
    "#",
    "+",
    "/",
    [],
    {},
    [1, 2, 3, 4],
    [[]],
    {"v": 1},
]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.5 or depth > 3:
        return rng.choice(_INTERESTING)
    if roll < 0.7:
        return rng.randint(-(2**60), 2**60)
    if roll < 0.8:
        return "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 40)))
    if roll < 0.9:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {str(_random_value(rng, depth + 1))[:10]: _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def mutate_json(rng: random.Random, seed: bytes) -> bytes:
    """A structural mutation (a key's value, a missing or extra key) or a byte-level one."""
    if rng.random() < 0.6:
        obj = json.loads(seed)
        for _ in range(rng.randint(1, 3)):
            keys = list(obj)
            op = rng.random()
            if op < 0.6 and keys:
                obj[rng.choice(keys)] = _random_value(rng)
            elif op < 0.8 and keys:
                del obj[rng.choice(keys)]
            else:
                obj[str(_random_value(rng))[:8]] = _random_value(rng)
        text = json.dumps(obj, ensure_ascii=rng.random() < 0.5, allow_nan=True)
        return text.encode("utf-8", "surrogatepass")
    return mutate_bytes(rng, seed)


def mutate_bytes(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        pos = rng.randrange(len(data) + 1)
        if op < 0.3 and data:
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op < 0.5:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op < 0.7 and data:
            del data[pos : pos + rng.randint(1, 8)]
        elif op < 0.8:
            data[pos:pos] = rng.choice(
                [
                    b'"v":1,',
                    b",",
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b'"',
                    b"\\u",
                    b"NaN",
                    b"\xff",
                    b'{"v":1,"v":2}',
                    b"1e999",
                    b"-",
                    b"\x00",
                ]
            )
        elif op < 0.9:
            if len(data) < 70_000:  # oversized, just past the largest limit (snapshots, 64 KiB); no further
                data = data * rng.randint(2, 40)
        else:
            data = bytearray(rng.randbytes(rng.randint(0, 200)))
    return bytes(data)


def random_topic(rng: random.Random, devices: list[str]) -> str:
    device = rng.choice([*devices, "62062101011198999999", "6206210101119800012", "abc", "+", "#", ""])
    channel = rng.choice(["event", "snap", "health", "state", "ack", "cmd", "alert", "x", ""])
    shapes = [
        f"xl/v1/{device}/{channel}",
        f"xl/v2/{device}/{channel}",
        f"xl/v1/grp/{device}/alert",
        f"xl/v1/{device}/{channel}/extra",
        "/".join(rng.choice(["xl", "v1", device, "", "+"]) for _ in range(rng.randint(0, 6))),
    ]
    return rng.choice(shapes)


def random_doc(rng: random.Random, seed: dict[str, Any]) -> Any:
    """A config-shaped document with some values, keys or sections broken."""
    doc = json.loads(json.dumps(seed))  # deep copy of plain YAML data
    if rng.random() < 0.05:
        return _random_value(rng)
    for _ in range(rng.randint(1, 4)):
        section = rng.choice(list(doc))
        if isinstance(doc[section], dict) and doc[section] and rng.random() < 0.8:
            key = rng.choice(list(doc[section]))
            doc[section][key] = _random_value(rng)
        elif rng.random() < 0.5:
            doc[section] = _random_value(rng)
        else:
            doc[str(_random_value(rng))[:12]] = _random_value(rng)
    return doc


def random_row(rng: random.Random) -> dict[str, str | None]:
    good = {
        "township": "01",
        "village": "和平村",
        "household": "HH0001",
        "group": "g0101-03",
        "lat": "38.6",
        "lon": "103.1",
        "name": "张家",
        "phone": "13800000000",
        "leader": "1",
        "armed_from": "21:00",
        "armed_to": "06:00",
    }
    row: dict[str, str | None] = dict(good)
    for _ in range(rng.randint(1, 4)):
        col = rng.choice([*REQUIRED, *OPTIONAL])
        row[col] = rng.choice(
            [
                None,
                "",
                " ",
                "nan",
                "inf",
                "-91",
                "1e400",
                "25:00",
                "g/1",
                "#",
                "0" * 70,
                str(_random_value(rng))[:80],
                "".join(chr(rng.randint(0, 0x9FFF)) for _ in range(8)),
            ]
        )
    return row


def agent_example() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "agent" / "examples" / "agent.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    # Sections whose keys are all commented out (their defaults) are null: give the mutators mappings.
    return {key: {} if value is None else value for key, value in loaded.items()}


HUB_EXAMPLE: dict[str, Any] = {
    "database": {"url": "sqlite:///var/hub.sqlite3"},
    "mqtt": {"host": "127.0.0.1", "port": 8883, "client_id": "xl-hub-1", "share_group": "xlhub"},
    "ingest": {"batch_max": 200, "batch_ms": 20},
    "health": {"check_interval_s": 5.0, "missed_heartbeats": 3},
    "alerts": {"person_score_min": 60, "timezone": "Asia/Shanghai"},
    "metrics": {"enabled": True, "port": 9108},
    "log_level": "INFO",
}

Target = Callable[[random.Random], object]
