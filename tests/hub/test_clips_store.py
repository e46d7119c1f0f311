"""The hub's clip store around the upload route (docs/clips.md): retention by days
and by bytes, "fetch clip" requests and their progress, opening a stored clip,
and the policy pushed to devices; SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from hub.clips.files import files_of, open_clip
from hub.clips.policy import push_policies
from hub.clips.receive import ClipReceiver, StoredClip
from hub.clips.requests import clip_status, request_clip
from hub.clips.retention import ABANDONED_AGE_S, ORPHAN_AGE_S, prune
from hub.clips.tables import clip_requests, clips
from hub.commands import record_result
from hub.config_clips import ClipPolicy, ClipsConfig
from hub.db import make_engine
from hub.db.schema import devices
from protocol.codec import decode_command
from protocol.messages import Ack
from tests.support.clip_hub import GOOD, OTHER, REVOKED, ClipHub, patch, raw, start_clip_hub

DAY_MS = 86_400_000


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.connected = True

    def publish(self, items: Sequence[tuple[str, bytes, int, Any]], timeout: float = 5.0) -> list[int]:
        self.sent += [(topic, payload) for topic, payload, _qos, _track in items]
        return [0 for _ in items]

    def is_connected(self) -> bool:
        return self.connected


@pytest.fixture
def hub(db_url: str, tmp_path: Path) -> Iterator[ClipHub]:
    h = start_clip_hub(db_url, tmp_path)
    yield h
    h.stop()


def put(engine: Engine, root: Path, device: str, event: int, size: int, received_ms: int) -> Path:
    f = files_of(root, device, event)
    f.final.parent.mkdir(parents=True, exist_ok=True)
    f.final.write_bytes(b"x" * size)
    with engine.begin() as conn:
        conn.execute(
            clips.insert().values(
                device_id=device, event_id=event, bytes=size, sha256="0" * 64, received_ms=received_ms
            )
        )
    return f.final


def test_retention_by_days_then_by_bytes_oldest_first(hub: ClipHub) -> None:
    now = 1_800_000_000_000
    old = put(hub.engine, hub.root, GOOD, 1, 1000, now - 31 * DAY_MS)
    a = put(hub.engine, hub.root, GOOD, 2, 1000, now - 3 * DAY_MS)
    b = put(hub.engine, hub.root, OTHER, 3, 1000, now - 2 * DAY_MS)
    c = put(hub.engine, hub.root, GOOD, 4, 1000, now - 1 * DAY_MS)
    done = prune(hub.engine, hub.root, keep_days=30, max_bytes=2500, now_ms=now)
    assert (done.by_age, done.by_bytes, done.freed) == (1, 1, 2000)
    assert not old.exists() and not a.exists() and b.exists() and c.exists()
    with hub.engine.connect() as conn:
        assert sorted(conn.execute(select(clips.c.event_id)).scalars()) == [3, 4]
    assert open_clip(hub.engine, hub.root, GOOD, 2) is None and open_clip(hub.engine, hub.root, GOOD, 4) == c
    # A file whose row is gone (a crash between the two) goes once it is an hour old.
    orphan = files_of(hub.root, GOOD, 9).final
    orphan.write_bytes(b"y")
    assert prune(hub.engine, hub.root, 30, 2500, now).orphans == 0
    os.utime(orphan, (time.time() - ORPHAN_AGE_S - 5,) * 2)
    assert prune(hub.engine, hub.root, 30, 2500, now).orphans == 1 and not orphan.exists()
    # An upload abandoned half way (its .part and .meta.json) goes after ABANDONED_AGE_S; a recent one stays.
    stale, fresh = files_of(hub.root, GOOD, 10), files_of(hub.root, GOOD, 11)
    for f in (stale, fresh):
        f.part.write_bytes(b"half")
        f.meta.write_text("{}")
    for p in (stale.part, stale.meta):
        os.utime(p, (time.time() - ABANDONED_AGE_S - 5,) * 2)
    assert prune(hub.engine, hub.root, 30, 2500, now).orphans == 2
    assert not stale.part.exists() and not stale.meta.exists() and fresh.part.exists() and fresh.meta.exists()


def test_fetch_clip_request_progress_and_refusal(hub: ClipHub) -> None:
    pub = Publisher()
    cid = request_clip(hub.engine, pub, GOOD, 12884901929)
    cmd = decode_command(pub.sent[0][1])
    assert pub.sent[0][0] == f"xl/v1/{GOOD}/cmd" and cmd.op == "clip" and cmd.args == {"id": 12884901929}
    assert clip_status(hub.engine, hub.root, GOOD, 12884901929).state == "requested"
    # The upload under way: progress from the partial file, no database write per chunk.
    data = os.urandom(5000)
    f = files_of(hub.root, GOOD, 12884901929)
    f.final.parent.mkdir(parents=True)
    f.part.write_bytes(data[:2000])
    f.meta.write_text(json.dumps({"length": 5000, "sha256": hashlib.sha256(data).hexdigest()}))
    st = clip_status(hub.engine, hub.root, GOOD, 12884901929)
    assert (st.state, st.received, st.total) == ("uploading", 2000, 5000)
    # A device that no longer has the clip says so in its ack.
    request_clip(hub.engine, pub, GOOD, 7)
    cid7 = decode_command(pub.sent[1][1]).command_id
    with hub.engine.begin() as conn:
        record_result(conn, GOOD, Ack("cmd", cid7, False, 1, "no clip for event 7"), 2)
    st = clip_status(hub.engine, hub.root, GOOD, 7)
    assert (st.state, st.error) == ("refused", "no clip for event 7")
    assert cid and clip_status(hub.engine, hub.root, GOOD, 8).state == "none"


def test_a_stored_clip_completes_its_request_and_is_handed_over_once(hub: ClipHub, db_url: str) -> None:
    seen: list[StoredClip] = []
    receiver = ClipReceiver(hub.engine, hub.root, on_stored=lambda _conn, clip: seen.append(clip))
    hub.server.routes["/clips/"] = receiver
    request_clip(hub.engine, Publisher(), GOOD, 5)
    data = os.urandom(3000)
    assert patch(raw(hub), f"/clips/{GOOD}/5", data, 0, data).status == 204
    assert patch(raw(hub), f"/clips/{GOOD}/5", data, 0, data).status == 200
    assert [(c.event_id, c.bytes) for c in seen] == [(5, 3000)]
    st = clip_status(hub.engine, hub.root, GOOD, 5)
    assert (st.state, st.received, st.total) == ("stored", 3000, 3000)
    with hub.engine.connect() as conn:
        assert conn.execute(select(clip_requests.c.state)).scalar_one() == "received"
    path = open_clip(hub.engine, hub.root, GOOD, 5)
    assert path is not None and path.read_bytes() == data
    assert open_clip(make_engine(db_url), hub.root, "../../etc", 5) is None


def test_the_policy_goes_to_devices_that_connect_or_whose_policy_changed(hub: ClipHub) -> None:
    pub = Publisher()
    with hub.engine.begin() as conn:
        conn.execute(update(devices).values(online=True, state_changed_ms=1000))
    cfg = ClipsConfig(policy=ClipPolicy(("panic",), 1000))
    assert push_policies(hub.engine, pub, cfg, now_ms=2000) == 2  # the revoked device gets nothing
    assert {t.split("/")[2] for t, _ in pub.sent} == {GOOD, OTHER} and REVOKED not in str(pub.sent)
    assert decode_command(pub.sent[0][1]).args == {"auto": ["panic"], "daily": 1000}
    assert push_policies(hub.engine, pub, cfg, now_ms=3000) == 0  # nothing changed
    with hub.engine.begin() as conn:  # GOOD reconnects
        conn.execute(update(devices).where(devices.c.id == GOOD).values(state_changed_ms=3500))
    assert push_policies(hub.engine, pub, cfg, now_ms=4000) == 1
    grouped = ClipsConfig(policy=cfg.policy, groups={"g0101": ClipPolicy(("panic", "person_armed"), 5)})
    assert push_policies(hub.engine, pub, grouped, now_ms=5000) == 2  # the group's policy changed
    assert decode_command(pub.sent[-1][1]).args == {"auto": ["panic", "person_armed"], "daily": 5}
    pub.connected = False
    assert push_policies(hub.engine, pub, cfg, now_ms=6000) == 0
