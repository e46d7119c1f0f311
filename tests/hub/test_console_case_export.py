"""A case export whose clip file is gone from disk by the time it is read (retention
deleted it after the index said it was there, a disk replaced) is the export without
the clip, its manifest saying so: it failed with a 500 half-way through the zip
(attack review)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from hub.console.case_export import build

CASE = {
    "device_id": "62062101011198000001",
    "event_id": 7,
    "phases": [{"phase": "start", "kind": "person", "time_ms": 1_800_000_000_000}],
    "pictures": [],
    "place": {"device_id": "62062101011198000001"},
}


def test_a_clip_gone_from_disk_leaves_it_out(tmp_path: Path) -> None:
    out = io.BytesIO()
    build(out, CASE, tmp_path / "7.mp4", "op1", 1_800_000_100_000)
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        manifest = json.loads(z.read("manifest.json"))
        sums = z.read("SHA256SUMS").decode()
    assert not any(n.startswith("clip/") for n in names)
    assert manifest["event"]["clip"] is False and "clip/" not in sums


def test_a_clip_on_disk_is_in(tmp_path: Path) -> None:
    (tmp_path / "7.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 1000)
    out = io.BytesIO()
    build(out, CASE, tmp_path / "7.mp4", "op1", 1_800_000_100_000)
    with zipfile.ZipFile(out) as z:
        assert z.testzip() is None and "clip/7.mp4" in z.namelist()
        assert json.loads(z.read("manifest.json"))["event"]["clip"] is True
