"""The durable outbox: ordering, bounds and drop order, persistence, disk-full."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent import outbox as ob
from agent.outbox import Outbox


def _topics(msgs: list[ob.Message]) -> list[str]:
    return [m.topic for m in msgs]


def test_pending_is_seq_order_with_panic_first(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put("a", b"1", priority=ob.MOTION, kind="event")
    box.put("b", b"2", priority=ob.PERSON, kind="event")
    box.put("c", b"3", priority=ob.MOTION_SNAP, kind="snap")
    box.put("p", b"4", priority=ob.PANIC, kind="event")
    assert _topics(box.pending(10)) == ["p", "a", "b", "c"]
    first = box.pending(2)
    assert _topics(box.pending(10, exclude=[m.seq for m in first])) == ["b", "c"]
    box.delete([first[0].seq])
    assert _topics(box.pending(10)) == ["a", "b", "c"]
    assert box.depth == 3


def test_survives_reopen_and_deletes_only_what_was_acked(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    for i in range(5):
        box.put(f"t{i}", bytes([i]) * 10, priority=ob.PERSON, kind="event")
    box.delete([box.pending(1)[0].seq])
    box.close()
    again = Outbox(path)
    assert _topics(again.pending(10)) == ["t1", "t2", "t3", "t4"]
    assert again.depth == 4 and again.size_bytes == 40
    assert again.integrity_ok()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_full_outbox_drops_lowest_priority_oldest_first_never_panic(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_rows=5)
    box.put("panic-0", b"x", priority=ob.PANIC, kind="event")
    box.put("person-0", b"x", priority=ob.PERSON, kind="event")
    box.put("motion-0", b"x", priority=ob.MOTION, kind="event")
    box.put("msnap-0", b"x", priority=ob.MOTION_SNAP, kind="snap")
    box.put("motion-1", b"x", priority=ob.MOTION, kind="event")
    assert box.dropped == 0
    box.put("person-1", b"x", priority=ob.PERSON, kind="event")  # the motion snapshot goes
    assert "msnap-0" not in _topics(box.pending(10))
    box.put("person-2", b"x", priority=ob.PERSON, kind="event")  # then the oldest motion
    assert _topics(box.pending(10)) == ["panic-0", "person-0", "motion-1", "person-1", "person-2"]
    for i in range(3, 10):
        box.put(f"panic-{i}", b"x", priority=ob.PANIC, kind="event")
    left = _topics(box.pending(100))
    # Every panic kept even beyond the bound; everything else went, oldest first.
    assert [t for t in left if t.startswith("panic")] == ["panic-0"] + [f"panic-{i}" for i in range(3, 10)]
    assert not [t for t in left if not t.startswith("panic")]
    assert box.dropped == 6  # msnap-0, motion-0, then the 4 left that were not panic
    box.close()
    assert Outbox(tmp_path / "o.sqlite3", max_rows=5).dropped == 6  # persisted


def test_byte_bound(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_rows=1000, max_bytes=100)
    for i in range(5):
        box.put(f"s{i}", b"j" * 30, priority=ob.PERSON_SNAP, kind="snap")
    assert box.size_bytes <= 100
    assert _topics(box.pending(10)) == ["s2", "s3", "s4"]
    assert box.dropped == 2


def test_disk_full_keeps_messages_in_memory_and_recovers(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put("before", b"x", priority=ob.PERSON, kind="event")
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    # SQLITE_FULL the honest way: the database may not grow by another page.
    box._db.execute(f"PRAGMA max_page_count={pages}")
    stored = [box.put(f"big{i}", b"z" * 20_000, priority=ob.PANIC, kind="event") for i in range(3)]
    assert stored == [False, False, False]
    assert box.error is not None and "disk full" in box.error
    assert box.depth == 4
    # Still sendable while the card refuses them: panics from memory first, after stored panics.
    waiting = box.pending(10)
    assert _topics(waiting) == ["big0", "big1", "big2", "before"]
    assert [m.seq < 0 for m in waiting] == [True, True, True, False]
    box.delete([waiting[0].seq])  # its PUBACK came: gone from memory
    assert box.depth == 3
    box._db.execute("PRAGMA max_page_count=1073741823")
    box.retry(force=True)
    assert box.error is None
    assert _topics(box.pending(10)) == ["big1", "big2", "before"]
    assert all(m.seq > 0 for m in box.pending(10))


def test_boot_floor_survives_a_lost_counter_file(tmp_path: Path) -> None:
    from agent.bootcount import next_boot

    box = Outbox(tmp_path / "o.sqlite3")
    assert box.last_boot == -1
    for _ in range(3):
        box.set_boot(next_boot(tmp_path / "boot", floor=box.last_boot))
    assert box.last_boot == 2
    (tmp_path / "boot").write_text("garbage")  # a corrupted card
    assert next_boot(tmp_path / "boot", floor=box.last_boot) == 3
