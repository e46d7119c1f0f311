"""Clip uploads end to end (docs/clips.md): the device's uploader (agent.clips.upload)
against the hub's route (hub.clips.receive) on the real update server, real mTLS
with a throwaway county PKI, the registry on SQLite and PostgreSQL, and a
proxy that cuts the link every few KB."""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agent.clips.upload import ClipUploader, UploadSettings
from agent.outbox import PANIC, Outbox
from hub.clips.tables import clips
from tests.support.clip_hub import GOOD, OTHER, REVOKED, ClipHub, ClipIndex, patch, raw, start_clip_hub
from tests.support.cutting_proxy import CuttingProxy
from tests.support.wait import wait_for

EVENT = 12884901929


@pytest.fixture
def hub(db_url: str, tmp_path: Path) -> Iterator[ClipHub]:
    h = start_clip_hub(db_url, tmp_path)
    yield h
    h.stop()


def clip_bytes(n: int, seed: int = 1) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (n // 32 + 1))[:n]


def uploader(
    hub: ClipHub,
    tmp: Path,
    port: int,
    *,
    busy: object = None,
    rate: int = 1 << 20,
    daily: int = 10**9,
    backoff: float = 60.0,
    **kw: object,
) -> tuple[ClipUploader, ClipIndex]:
    index = ClipIndex(tmp / "clips")
    settings = UploadSettings(
        f"https://127.0.0.1:{port}/clips/",
        GOOD,
        hub.identity(),
        bytes_per_s=rate,
        daily_bytes=daily,
        timeout_s=5,
        backoff_cap_s=backoff,
    )
    up = ClipUploader(
        settings,
        index,
        tmp / "clips",
        busy if callable(busy) else (lambda: False),
        sleep_s=0.02,
        **kw,  # type: ignore[arg-type]
    )
    up.set_policy(["panic", "person_armed"], 10**9)
    return up, index


def stored(hub: ClipHub) -> int:
    with hub.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(clips)).scalar_one())


def test_a_link_cut_every_few_kb_still_completes_and_costs_little_more(hub: ClipHub, tmp_path: Path) -> None:
    data = clip_bytes(800_000)
    proxy = CuttingProxy(hub.server.port, cuts=40, mean_gap=16_000, upload=True)
    try:
        up, index = uploader(hub, tmp_path, proxy.port, backoff=0.05)
        index.add(EVENT, data)
        up.start()
        wait_for(lambda: EVENT in up.uploaded, timeout=120, what="the clip uploaded through the cuts")
        up.stop()
    finally:
        proxy.close()
    assert len(proxy.cut_at) == 40
    stored_file = hub.root / GOOD / f"{EVENT}.mp4"
    assert stored_file.read_bytes() == data and stored(hub) == 1
    assert index.get(EVENT) is not None and index.get(EVENT).uploaded  # type: ignore[union-attr]
    # Each cut loses at most what was in flight; headers and (mostly resumed) handshakes on top.
    overhead = proxy.connections * 3000 + 2 * proxy.connections * 600
    assert proxy.up_bytes <= 1.1 * len(data) + overhead, (proxy.up_bytes, proxy.connections)
    # (up.body_bytes also counts what sat in the device's own socket buffer at a cut,
    # which never crossed the link: the proxy's count is the link's.)
    print(f"link bytes {proxy.up_bytes} for a {len(data)}-byte clip, {proxy.connections} connections")


def test_a_duplicate_upload_after_a_restart_is_stored_once(hub: ClipHub, tmp_path: Path) -> None:
    data = clip_bytes(50_000)
    up, index = uploader(hub, tmp_path, hub.server.port)
    clip = index.add(EVENT, data)
    up.upload(clip)
    up.stop()
    # A restart that lost the "uploaded" mark: a fresh uploader, the clip not marked.
    again, index2 = uploader(hub, tmp_path / "again", hub.server.port)
    clip2 = index2.add(EVENT, data)
    again.upload(clip2)
    assert again.body_bytes == 0  # HEAD said the hub has it all
    conn = raw(hub)
    resp = patch(conn, f"/clips/{GOOD}/{EVENT}", data[:1000], 0, data)
    assert resp.status == 200 and resp.getheader("Upload-Offset") == str(len(data))
    assert stored(hub) == 1 and (hub.root / GOOD / f"{EVENT}.mp4").read_bytes() == data
    assert sorted(p.name for p in (hub.root / GOOD).iterdir()) == [f"{EVENT}.mp4"]
    again.stop()


def test_offsets_wrong_offset_409_and_bad_sha_422(hub: ClipHub) -> None:
    data = clip_bytes(3000)
    conn = raw(hub)
    path = f"/clips/{GOOD}/{EVENT}"
    conn.request("HEAD", path)
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 404
    assert patch(conn, path, data[:1000], 0, data).status == 204
    conn.request("HEAD", path)
    resp = conn.getresponse()
    resp.read()
    assert (resp.status, resp.getheader("Upload-Offset"), resp.getheader("Upload-Length")) == (200, "1000", "3000")
    conn = raw(hub)
    resp = patch(conn, path, data[500:1500], 500, data)
    assert resp.status == 409 and resp.getheader("Upload-Offset") == "1000"
    conn = raw(hub)
    corrupted = data[1000:2999] + b"\x00"
    resp = patch(conn, path, corrupted, 1000, data)
    assert resp.status == 422
    assert stored(hub) == 0 and not any((hub.root / GOOD).iterdir())  # the partial is dropped
    conn = raw(hub)
    assert patch(conn, path, data, 0, data).status == 204  # and a clean retry is stored
    assert stored(hub) == 1


def test_a_revoked_device_and_another_devices_path_are_403(hub: ClipHub) -> None:
    data = clip_bytes(100)
    resp = patch(raw(hub, REVOKED), f"/clips/{REVOKED}/{EVENT}", data, 0, data)
    assert resp.status == 403
    resp = patch(raw(hub, GOOD), f"/clips/{OTHER}/{EVENT}", data, 0, data)
    assert resp.status == 403
    conn = raw(hub, OTHER)
    conn.request("HEAD", f"/clips/{GOOD}/{EVENT}")
    assert conn.getresponse().status == 403
    for bad in ("/clips/../etc/passwd", f"/clips/{GOOD}/x", f"/clips/{GOOD}/9007199254740992"):
        conn = raw(hub)
        conn.request("HEAD", bad)
        assert conn.getresponse().status == 400, bad
    with pytest.raises(ssl.SSLError):  # no client certificate at all: refused in the handshake
        bare = ssl.create_default_context(cafile=str(hub.ca))
        c = http.client.HTTPSConnection("127.0.0.1", hub.server.port, context=bare, timeout=5)
        c.request("HEAD", f"/clips/{GOOD}/{EVENT}")
        c.getresponse()
    assert stored(hub) == 0


def test_an_event_queued_during_an_upload_goes_first(hub: ClipHub, tmp_path: Path) -> None:
    """The uploader stops within a piece when the outbox gets a message, and goes on once it is sent."""
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    up, index = uploader(hub, tmp_path, hub.server.port, busy=lambda: outbox.depth > 0, rate=100_000)
    index.add(EVENT, clip_bytes(300_000))
    up.start()
    wait_for(lambda: up.body_bytes > 50_000, timeout=10, what="the upload under way")
    outbox.put("xl/v1/x/event", b"panic", priority=PANIC, kind="event")
    paused_at = up.body_bytes
    time.sleep(0.5)
    assert up.body_bytes - paused_at <= 16 * 1024  # at most what was queued when it stopped
    assert EVENT not in up.uploaded and up.pauses >= 1
    outbox.delete([m.seq for m in outbox.pending(10)])  # the hub's receipt: the event is through
    wait_for(lambda: EVENT in up.uploaded, timeout=20, what="the upload resumed after the event")
    up.stop()
    assert (hub.root / GOOD / f"{EVENT}.mp4").stat().st_size == 300_000
    assert up.body_bytes <= 300_000 + 16 * 1024  # resumed from the hub's offset, not from zero


def test_the_daily_budget_stops_the_upload_until_the_next_day(hub: ClipHub, tmp_path: Path) -> None:
    day = ["2026-11-26"]
    up, index = uploader(hub, tmp_path, hub.server.port, daily=120_000, today=lambda: day[0])
    index.add(EVENT, clip_bytes(200_000))
    up.start()
    wait_for(lambda: up.uploaded_today >= 120_000, timeout=10, what="the day's budget used")
    time.sleep(0.3)
    assert up.uploaded_today == 120_000 and EVENT not in up.uploaded and stored(hub) == 0
    # The count survives a restart (a reboot does not reset the SIM's bill).
    up.stop()
    again, _ = uploader(hub, tmp_path, hub.server.port, daily=120_000, today=lambda: day[0])
    assert again.uploaded_today == 120_000
    day[0] = "2026-11-27"
    again.set_policy(["panic"], 10**9)  # also wakes the thread
    again.start()
    wait_for(lambda: EVENT in again.uploaded, timeout=10, what="the rest the next day")
    again.stop()
    assert again.uploaded_today == 80_000 and stored(hub) == 1


def test_policy_and_requests_choose_what_goes_up(hub: ClipHub, tmp_path: Path) -> None:
    up, index = uploader(hub, tmp_path, hub.server.port)
    up.set_policy([], 10**9)
    index.add(1, clip_bytes(1000, 1), kind="panic")
    index.add(2, clip_bytes(1000, 2), kind="person", keep=False)
    index.add(3, clip_bytes(1000, 3), kind="person", keep=True)
    assert up.next_clip() is None  # no policy: nothing leaves the device on its own
    up.set_policy(["person_armed"], 10**9)
    assert [c.event_id for c in [up.next_clip()] if c] == [3]
    assert up.request(99) == "no clip for event 99"
    assert up.request(2) is None
    nxt = up.next_clip()
    assert nxt is not None and nxt.event_id == 2  # requested first
    up.start()
    wait_for(lambda: set(up.uploaded) == {2, 3}, timeout=10, what="the requested and the armed person clip")
    up.stop()
    assert not (hub.root / GOOD / "1.mp4").exists()  # panic is not in this policy
    persisted = ClipUploader(up.s, index, tmp_path / "clips", lambda: False)
    assert persisted.next_clip() is None  # the policy was kept; 1 is a panic clip, not auto here


def test_concurrent_patches_of_one_clip_do_not_interleave(hub: ClipHub) -> None:
    data = clip_bytes(200_000)
    results: list[int] = []

    def send() -> None:
        try:
            results.append(patch(raw(hub), f"/clips/{GOOD}/{EVENT}", data[:200_000], 0, data).status)
        except OSError:
            results.append(-1)

    threads = [threading.Thread(target=send) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results)[-1] in (200, 204) and set(results) <= {200, 204, 409}
    assert (hub.root / GOOD / f"{EVENT}.mp4").read_bytes() == data and stored(hub) == 1
    assert os.listdir(hub.root / GOOD) == [f"{EVENT}.mp4"]
