"""The clip index on real SQLite and real files: the byte budget's order and the repair after a power cut."""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent.clips.store import Clip, ClipStore


def put(store: ClipStore, event_id: int, size: int, start_ms: int, keep: bool = False) -> None:
    data = bytes([event_id % 251]) * size
    store.path_of(event_id).write_bytes(data)
    store.add(Clip(event_id, "person", start_ms, start_ms + 10_000, size, hashlib.sha256(data).hexdigest(), keep))


def test_budget_drops_the_oldest_and_alert_clips_last(tmp_path: Path) -> None:
    store = ClipStore(tmp_path, max_bytes=1000)
    put(store, 1, 300, 1_000, keep=True)  # the oldest, but an alert clip
    put(store, 2, 300, 2_000)
    put(store, 3, 300, 3_000)
    assert (store.count, store.bytes) == (3, 900)
    put(store, 4, 300, 4_000)  # 1200 > 1000: the oldest ordinary clip goes
    assert [c.event_id for c in store.all()] == [1, 3, 4]
    put(store, 5, 600, 5_000)  # 1500: 3 and 4 go, the kept one stays
    assert [c.event_id for c in store.all()] == [1, 5] and store.bytes == 900
    put(store, 6, 400, 6_000, keep=True)  # 1300: the ordinary 5 goes, though newer than the kept 1
    assert [c.event_id for c in store.all()] == [1, 6] and store.bytes == 700
    put(store, 7, 400, 7_000, keep=True)  # 1100 and nothing ordinary left: the oldest kept clip goes
    assert [c.event_id for c in store.all()] == [6, 7]
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == sorted(f"{c.event_id}.mp4" for c in store.all())


def test_repair_at_start_after_a_power_cut(tmp_path: Path) -> None:
    store = ClipStore(tmp_path, max_bytes=10**9)
    for i in range(1, 7):
        put(store, i, 1000 + i, i * 1000)
    store.close()
    (tmp_path / "2.mp4").unlink()  # row, no file
    with open(tmp_path / "3.mp4", "r+b") as f:  # torn: shorter than its row says
        f.truncate(10)
    raw = bytearray((tmp_path / "6.mp4").read_bytes())  # the newest, same size, other bytes
    raw[5] ^= 0xFF
    (tmp_path / "6.mp4").write_bytes(bytes(raw))
    (tmp_path / "7.mp4.tmp").write_bytes(b"half a remux")
    (tmp_path / "8.mp4").write_bytes(b"renamed, but the row never came")
    (tmp_path / "policy.json").write_text("{}")  # someone else's file: left alone
    store = ClipStore(tmp_path, max_bytes=10**9)
    assert [c.event_id for c in store.all()] == [1, 4, 5]
    assert sorted(p.name for p in tmp_path.iterdir() if "mp4" in p.name) == ["1.mp4", "4.mp4", "5.mp4"]
    assert (tmp_path / "policy.json").exists() and store.count == 3 and store.bytes == 1001 + 1004 + 1005
    assert any("sha256" in r for r in store.repaired) and any("no row" in r for r in store.repaired)


def test_a_garbled_index_is_set_aside_and_the_agent_still_starts(tmp_path: Path) -> None:
    store = ClipStore(tmp_path, max_bytes=10**9)
    put(store, 1, 100, 1000)
    store.close()
    (tmp_path / "index.sqlite3").write_bytes(b"not a database at all" * 100)
    store = ClipStore(tmp_path, max_bytes=10**9)
    assert store.all() == [] and not (tmp_path / "1.mp4").exists()  # no row to vouch for it
    assert (tmp_path / "index.sqlite3.corrupt").exists()
    put(store, 2, 100, 2000)
    assert [c.event_id for c in store.all()] == [2]
