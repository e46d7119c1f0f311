"""Clips stored at the hub reach the county platform (docs/clips.md, issue 18).

A person event and its picture go through ingest and the forwarder to the
strict mock 视图库 as a PersonObject. Then a real H.264 MP4 (PyAV) is handed
over as hub.clips does on storing it (``hub.core.clips.clip_item`` and the
ForwardSink port, in the clip's own transaction) and must arrive as a
VideoSlice naming that same PersonObject, through an outage and a hub
restart. The webhook gets the clip as a link or as its bytes, per config.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.clips import clip_item
from hub.core.directory import Directory
from hub.core.inbound import Inbound
from hub.core.items import ClipItem, item_from_json, item_to_json
from hub.db import make_engine
from hub.forward import Forwarder, ManualClock, ViidConfig, ViidSink, WebhookConfig, WebhookSink
from hub.forward.clip_links import signature
from hub.forward.mp4info import mp4_info
from hub.forward.tables import STATE_DEAD, STATE_DONE, forward_outbox
from hub.forward.viid_objects import viid_time
from hub.forward.webhook import clip_bytes
from hub.ingest.batch import BatchProcessor
from protocol.codec import Snapshot as WireSnapshot
from protocol.codec import encode, encode_snapshot
from protocol.messages import Event
from protocol.topics import event_topic, snap_topic
from sim.mock_viid import MockViid, Reject
from sim.mock_viid_video import check_video_slice
from sim.mock_webhook import MockWebhook
from tests.support.clip_files import make_mp4, sha256
from tests.support.console import jpeg
from tests.support.forward_items import GATEWAY, PASSWORD
from tests.support.hub_db import make_fleet

SECRET = b"clip-webhook-shared-secret-32-by"
LINK_KEY = b"clip-link-signing-key-32-bytes!!"
EVENT_ID = (2 << 32) + 41


@dataclass
class Rig:
    engine: Engine
    camera: str
    clock: ManualClock
    viid: MockViid
    hook: MockWebhook
    hook_url: str
    clips: Path
    fwd: Forwarder | None = None

    def forwarder(self) -> Forwarder:
        """A hub's forwarder: what ``xl-hub run`` builds at every start."""
        viid = ViidSink(ViidConfig(f"http://127.0.0.1:{self.viid.port}", GATEWAY, PASSWORD, timeout_s=3), self.clock)
        hook = WebhookSink(
            WebhookConfig(
                self.hook_url, SECRET, clips="link", clip_base_url="https://hub.example:8080", clip_link_secret=LINK_KEY
            ),
            self.clock,
        )
        self.fwd = Forwarder(self.engine, [viid, hook], self.clock, rng=random.Random(7))
        return self.fwd


@pytest.fixture
def rig(db_url: str, tmp_path: Path) -> Iterator[Rig]:
    engine = make_engine(db_url)
    camera = make_fleet(engine, groups=1, per_group=1)["g000"][0]
    clock = ManualClock(int(time.time() * 1000))
    viid = MockViid(GATEWAY, PASSWORD, now_ms=clock.now_ms)
    viid.start()
    hook = MockWebhook(SECRET, now_s=lambda: clock.now_ms() / 1000)
    r = Rig(engine, camera, clock, viid, hook, hook.start(), tmp_path / "clips")
    try:
        yield r
    finally:
        if r.fwd is not None:
            r.fwd.stop()
        viid.stop()
        hook.stop()
        engine.dispose()


def ingest_person(r: Rig, fwd: Forwarder) -> int:
    """A person event with its picture, through ingest: what the device sent before its clip."""
    t = r.clock.now_ms() - 20_000
    directory = Directory(r.engine, ttl_s=60)
    proc = BatchProcessor(r.engine, directory, AlertEngine(directory, AlertConfig(), fwd), fwd, HealthConfig())
    event = Event(event_id=EVENT_ID, kind="person", phase="start", time_ms=t, score=91, bbox=(300, 200, 500, 900),
                  count=1, has_snapshot=True)  # fmt: skip
    snap = WireSnapshot(event_id=EVENT_ID, phase="start", time_ms=t, width=320, height=180, jpeg=jpeg())
    now = r.clock.now_ms()
    proc.process([Inbound(event_topic(r.camera), encode(event), 1, 1, now),
                  Inbound(snap_topic(r.camera), encode_snapshot(snap), 2, 1, now)])  # fmt: skip
    return t


def store_clip(r: Rig, fwd: Forwarder, start_ms: int, seconds: float = 4.0) -> tuple[bytes, list[str]]:
    """The clip arrives at the hub: its file, then the hand-over in the index's transaction."""
    path = r.clips / r.camera / f"{EVENT_ID}.mp4"
    mp4 = make_mp4(path, seconds)
    detections = [[start_ms + 5_000, 88, 300, 200, 500, 900], [start_ms + 6_000, 91, 320, 210, 520, 910]]
    with r.engine.begin() as conn:
        item = clip_item(conn, device_id=r.camera, event_id=EVENT_ID, path=str(path), size=len(mp4),
                         sha256=sha256(mp4), start_ms=start_ms, end_ms=start_ms + int(seconds * 1000),
                         detections=detections)  # fmt: skip
        assert item is not None
        queued = [name for name, items in fwd.enqueue_many(conn, [item]).items() if items]
    return mp4, queued


def test_a_clip_reaches_the_platform_as_a_videoslice_linked_to_its_person_through_an_outage_and_a_restart(
    rig: Rig,
) -> None:
    fwd = rig.forwarder()
    t = ingest_person(rig, fwd)
    fwd.run_once()
    assert rig.viid.rejections == [] and len(rig.viid.persons) == 1
    person = rig.viid.persons[0]

    start = t - 5_000  # the pre-roll
    rig.viid.go_down("refuse")  # the platform is away when the clip comes in
    mp4, queued = store_clip(rig, fwd, start)
    assert sorted(queued) == ["viid", "webhook"]
    fwd.run_once("viid")
    with rig.engine.connect() as conn:
        row = conn.execute(select(forward_outbox).where(forward_outbox.c.item_type == "clip",
                                                        forward_outbox.c.sink == "viid")).one()  # fmt: skip
    assert row.attempts == 1 and row.state == "pending" and "ConnectError" in (row.last_error or "")

    # The hub restarts while the clip waits; the platform comes back.
    fwd.stop()
    rig.viid.come_up()
    fwd = rig.forwarder()
    rig.clock.advance(10)  # past the first retry's backoff (2.5-5 s)
    fwd.run_once()
    assert rig.viid.rejections == []
    assert len(rig.viid.video_slices) == 1
    obj = rig.viid.video_slices[0]
    info = obj["VideoSliceInfo"]
    assert info["DeviceID"] == rig.camera
    assert info["VideoID"][:22] == rig.camera + "01" and info["VideoID"][22:36] == viid_time(start)
    assert info["BeginTime"] == viid_time(start) and info["EndTime"] == viid_time(start + 4_000)
    assert (info["Width"], info["Height"], info["VideoLen"]) == (640, 360, 4.0)
    assert (info["FileFormat"], info["CodedFormat"], info["FileSize"]) == ("Mp4", "2", len(mp4))
    assert info["FileHash"] == hashlib.md5(mp4).hexdigest()
    assert base64.b64decode(obj["Data"]) == mp4
    # The link: the very PersonObject the platform has, same IDs and box, without the picture again.
    linked = obj["PersonList"]["PersonObject"]
    assert [p["PersonID"] for p in linked] == [person["PersonID"]]
    assert {k: v for k, v in person.items() if k != "SubImageList"} == linked[0]
    # The webhook got its link, signed; and nothing is left to send anywhere.
    clip_bodies = [b for b in rig.hook.bodies if b.get("type") == "clip"]
    assert len(clip_bodies) == 1 and rig.hook.bad_signatures == 0
    url, exp = clip_bodies[0]["clip"]["url"], clip_bodies[0]["clip"]["url_expires_s"]
    path = f"/clips/{rig.camera}/{EVENT_ID}.mp4"
    assert url == f"https://hub.example:8080{path}?exp={exp}&sig={signature(LINK_KEY, path, exp)}"
    assert clip_bodies[0]["detections"][0] == [start + 5_000, 88, 300, 200, 500, 900]
    with rig.engine.connect() as conn:
        states = conn.execute(select(forward_outbox.c.state).where(forward_outbox.c.item_type == "clip")).scalars()
        assert sorted(states) == [STATE_DONE, STATE_DONE]

    # A repeated upload of the same clip (a device restarted mid-ack) is forwarded once.
    _again, queued = store_clip(rig, fwd, start)
    assert queued == []


def test_webhook_gets_a_link_or_the_bytes_per_config_and_nothing_when_off(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    camera = make_fleet(engine, groups=1, per_group=1)["g000"][0]
    clock = ManualClock(int(time.time() * 1000))
    hooks = {mode: MockWebhook(SECRET, now_s=lambda: clock.now_ms() / 1000) for mode in ("link", "bytes")}
    sinks = [
        WebhookSink(
            WebhookConfig(
                hooks[mode].start(),
                SECRET,
                name=f"hook_{mode}",
                clips=mode,
                clip_base_url="https://hub.example/",
                clip_link_secret=LINK_KEY,
            ),
            clock,
        )
        for mode in ("link", "bytes")
    ]
    off = WebhookSink(WebhookConfig("http://127.0.0.1:9/none", SECRET, name="hook_off"), clock)
    fwd = Forwarder(engine, [*sinks, off], clock)
    try:
        event = Event(event_id=EVENT_ID, kind="panic", phase="start", time_ms=clock.now_ms(), score=100)
        directory = Directory(engine, ttl_s=60)
        proc = BatchProcessor(engine, directory, AlertEngine(directory, AlertConfig(), fwd), fwd, HealthConfig())
        proc.process([Inbound(event_topic(camera), encode(event), 1, 1, clock.now_ms())])
        path = tmp_path / f"{EVENT_ID}.mp4"
        mp4 = make_mp4(path, 2.0)
        with engine.begin() as conn:
            item = clip_item(conn, device_id=camera, event_id=EVENT_ID, path=str(path), size=len(mp4),
                             sha256=sha256(mp4), start_ms=None, end_ms=None, detections=None)  # fmt: skip
            assert item is not None and item.kind == "panic" and item.persons == ()
            queued = fwd.enqueue_many(conn, [item])
        assert sorted(n for n, items in queued.items() if items) == ["hook_bytes", "hook_link"]  # off: not queued
        fwd.run_once()
        link = next(b for b in hooks["link"].bodies if b["type"] == "clip")
        got = next(b for b in hooks["bytes"].bodies if b["type"] == "clip")
        # A signed link (tests/hub/test_console_clip_links.py fetches one from the console), a week long.
        exp = clock.now_ms() // 1000 + 7 * 86400
        assert link["clip"]["url_expires_s"] == exp
        path = f"/clips/{camera}/{EVENT_ID}.mp4"
        assert link["clip"]["url"] == f"https://hub.example{path}?exp={exp}&sig={signature(LINK_KEY, path, exp)}"
        assert "url_expires_s" not in got["clip"]
        assert clip_bytes(link) is None and "mp4_b64" not in link["clip"]
        assert clip_bytes(got) == mp4 and "url" not in got["clip"]
        for body in (link, got):
            assert body["id"] == f"clip-{camera}-{EVENT_ID}" and body["kind"] == "panic"
            assert body["clip"]["sha256"] == sha256(mp4) and body["clip"]["bytes"] == len(mp4)
            assert "path" not in body and "persons" not in body  # the hub's own details stay home
    finally:
        fwd.stop()
        for hook in hooks.values():
            hook.stop()
        engine.dispose()


def test_a_clip_gone_before_it_was_sent_is_a_dead_letter_not_a_blocked_queue(rig: Rig) -> None:
    fwd = rig.forwarder()
    t = ingest_person(rig, fwd)
    _mp4, _queued = store_clip(rig, fwd, t - 5_000)
    (rig.clips / rig.camera / f"{EVENT_ID}.mp4").unlink()  # retention got there first
    fwd.run_once()
    with rig.engine.connect() as conn:
        row = conn.execute(select(forward_outbox).where(forward_outbox.c.item_type == "clip",
                                                        forward_outbox.c.sink == "viid")).one()  # fmt: skip
    assert row.state == STATE_DEAD and "no longer at the hub" in (row.last_error or "")
    assert len(rig.viid.persons) == 1  # the person went; the queue is not stuck behind the clip


def _slice(tmp_path: Path) -> dict[str, Any]:
    mp4 = make_mp4(tmp_path / "x.mp4", 2.0, width=320, height=240)
    item = ClipItem(device_id="62062101011198000001", event_id=(1 << 32) + 3, kind="motion",
                    path=str(tmp_path / "x.mp4"), size=len(mp4), sha256=sha256(mp4), start_ms=1_767_225_600_000,
                    end_ms=1_767_225_602_000, time_ms=1_767_225_600_000)  # fmt: skip
    assert item_from_json(item_to_json(item)) == item
    from hub.forward.viid_video import video_slice_object

    return video_slice_object(item, mp4, event_sort=4, video_source="99")


def _retyped(video_id: str) -> str:
    return video_id[:20] + "02" + video_id[22:]  # an image's type code where the video's belongs


def test_the_mock_platform_refuses_malformed_videoslices(tmp_path: Path) -> None:
    good = _slice(tmp_path)
    check_video_slice(good)
    assert "PersonList" not in good  # a motion visit names no person
    cases: dict[str, Any] = {
        "lacks ['FileHash']": lambda o: o["VideoSliceInfo"].pop("FileHash"),
        "unknown fields ['Colour']": lambda o: o["VideoSliceInfo"].update(Colour=1),
        "01 (video slice)": lambda o: o["VideoSliceInfo"].update(VideoID=_retyped(o["VideoSliceInfo"]["VideoID"])),
        "VideoLen": lambda o: o["VideoSliceInfo"].update(VideoLen=9.5),
        "FileSize and FileHash": lambda o: o.update(Data=base64.b64encode(base64.b64decode(o["Data"])[:-1]).decode()),
        "CodedFormat": lambda o: o["VideoSliceInfo"].update(CodedFormat="H264"),
    }
    for message, spoil in cases.items():
        bad = copy.deepcopy(good)
        spoil(bad)
        with pytest.raises(Reject, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            check_video_slice(bad)


def test_mp4_info_reads_the_file_and_refuses_what_is_not_one(tmp_path: Path) -> None:
    mp4 = make_mp4(tmp_path / "y.mp4", 3.0, fps=5, width=320, height=240)
    info = mp4_info(mp4)
    assert (info.duration_s, info.width, info.height, info.codec) == (3.0, 320, 240, "avc1")
    for bad in (b"", jpeg(), mp4[: len(mp4) // 2], b"\x00\x00\x00\x08free" + mp4):
        with pytest.raises(ValueError):
            mp4_info(bad)


def test_the_clip_stores_hook_hands_a_new_clip_to_the_forwarder_in_its_transaction(rig: Rig) -> None:
    from hub.clips.receive import StoredClip
    from hub.core.clips import hand_over_clips

    fwd = rig.forwarder()
    t = ingest_person(rig, fwd)
    path = rig.clips / rig.camera / f"{EVENT_ID}.mp4"
    mp4 = make_mp4(path, 2.0)
    stored = StoredClip(rig.camera, EVENT_ID, path, len(mp4), sha256(mp4), t - 5_000, t + 1_000, [])
    on_stored = hand_over_clips(fwd)
    with pytest.raises(RuntimeError), rig.engine.begin() as conn:
        on_stored(conn, stored)
        raise RuntimeError("the index row failed")  # rolled back: nothing queued either
    with rig.engine.begin() as conn:
        on_stored(conn, stored)
    fwd.run_once()
    assert len(rig.viid.video_slices) == 1 and rig.viid.rejections == []
    with rig.engine.connect() as conn:
        assert conn.execute(select(forward_outbox.c.sink).where(forward_outbox.c.item_type == "clip")).scalars().all()
