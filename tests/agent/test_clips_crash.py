"""kill -9 while recording and while remuxing, and a card that is full: the next start repairs and records.

The recording runs in a subprocess that SIGKILLs itself, as a power cut
would stop it: in the middle of a ring segment (a ``.part`` open), in the
middle of a remux (a ``.tmp`` half written), before the rename and between
the rename and the index row (agent.clips.recorder.crashpoint). Then a second
process starts on the same state dir with the next boot number.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.clips.cut import sha256_of
from agent.clips.store import ClipStore

pytest.importorskip("av")
ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import json, os, resource, signal, sys
from pathlib import Path
from agent.vision.synthetic import SyntheticSource
from tests.support.clip_device import emitted, feed, make_recorder

a = json.loads(sys.argv[1])
if a.get("fsize"):  # a full card: writes past this many bytes fail with EFBIG instead of killing us
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (a["fsize"], a["fsize"]))
# 2 s segments (not the default 4): the kill points below are timed on them.
rec = make_recorder(Path(a["state"]), boot=a["boot"], pre_s=2.0, post_s=2.0, segment_s=2.0, **a.get("cfg", {}))
base = a["boot"] * 100
visits = {3.0: [emitted(base + 1, "start", 1.0), emitted(base + 1, "end", 2.5)],
          9.0: [emitted(base + 2, "start", 8.0), emitted(base + 2, "end", 9.0)]}
n = feed(rec, SyntheticSource("walkthrough", width=320, height=180, fps=10, seconds=14), visits,
         limit=a.get("kill_after_frames"))
if a.get("kill_after_frames"):
    os.kill(os.getpid(), signal.SIGKILL)
rec.stop()
print(json.dumps({"clips": rec.clips_cut, "error": rec.error}))
"""


def run(state: Path, boot: int, crash_at: str | None = None, **extra: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("XL_CLIPS_CRASH_AT", None)
    if crash_at:
        env["XL_CLIPS_CRASH_AT"] = crash_at
    args = json.dumps({"state": str(state), "boot": boot, **extra})
    return subprocess.run(
        [sys.executable, "-c", DRIVER, args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def consistent(clips_dir: Path) -> list[int]:
    """Every row has its file with its size and sha256, and there is nothing else: returns the event ids."""
    store = ClipStore(clips_dir, max_bytes=10**12)
    try:
        rows = store.all()
        for c in rows:
            path = store.path_of(c.event_id)
            assert path.stat().st_size == c.bytes and sha256_of(path) == c.sha256
        names = sorted(p.name for p in clips_dir.iterdir() if "mp4" in p.name)
        assert names == sorted(f"{c.event_id}.mp4" for c in rows)
        return [c.event_id for c in rows]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("crash_at", "kill_after_frames", "left"),
    [
        (None, 75, ".part"),  # 7.5 s in: clip 101 cut, a ring segment half written
        ("remux-segment", None, ".tmp"),  # the first clip's MP4 half written
        ("remux-before-rename", None, ".tmp"),
        ("after-remux", None, "101.mp4"),  # renamed, but no row yet
    ],
)
def test_kill_9_then_the_next_start_repairs(
    tmp_path: Path, crash_at: str | None, kill_after_frames: int | None, left: str
) -> None:
    first = run(tmp_path, 1, crash_at, kill_after_frames=kill_after_frames)
    assert first.returncode == -signal.SIGKILL, first.stderr
    files = [p.name for p in (tmp_path / "clips").rglob("*")]
    assert any(left in name for name in files), files  # the crash left what a power cut would
    second = run(tmp_path, 2)
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout.strip().splitlines()[-1])
    assert out == {"clips": 2, "error": None}
    ids = consistent(tmp_path / "clips")
    assert {201, 202} <= set(ids) and 102 not in ids
    assert (101 in ids) == (kill_after_frames is not None)  # cut and indexed before the kill, or lost whole
    assert not list((tmp_path / "clips" / "ring").iterdir())


def test_a_full_card_costs_clips_not_the_agent(tmp_path: Path) -> None:
    # 40 KB per file: ring segments fit (15-24 KB), a clip's MP4 does not (58-67 KB; EFBIG, as ENOSPC would be).
    first = run(tmp_path, 1, fsize=40_000, cfg={"width": 640, "height": 360})
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout.strip().splitlines()[-1])
    assert out["clips"] < 2 and "File too large" in (out["error"] or ""), out
    consistent(tmp_path / "clips")  # no half clip left indexed
    assert not list((tmp_path / "clips").glob("*.tmp"))  # nor on the card
    second = run(tmp_path, 2)
    assert second.returncode == 0 and json.loads(second.stdout.strip().splitlines()[-1])["clips"] == 2
    assert {201, 202} <= set(consistent(tmp_path / "clips"))
