"""`xl-agent replay` end to end, and the vision config it reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from agent.cli import main
from agent.config import ConfigError
from agent.config_vision import VisionConfig, describe, load_vision_config, parse_vision
from agent.vision.synthetic import Actor, Scene, SyntheticSource

cv2 = pytest.importorskip("cv2")
pytest.importorskip("skimage.data")

SUMMARY_KEYS = {
    "frames",
    "duration_s",
    "motion_frames",
    "inference_runs",
    "person_events",
    "motion_events",
    "ms_per_frame",
    "ms_per_inference",
}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_replay_synthetic_walkthrough(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events, summary = tmp_path / "events.jsonl", tmp_path / "summary.json"
    rc = main(["replay", "synthetic:walkthrough", "--events-out", str(events), "--summary-json", str(summary)])
    assert rc == 0
    lines = read_jsonl(events)
    assert lines[0]["phase"] == "start" and lines[-1]["phase"] == "end"
    assert {line["id"] for line in lines} == {lines[0]["id"]} and all(line["kind"] == "person" for line in lines)
    for line in lines:
        assert 0.5 <= line["score"] <= 1.0
        x1, y1, x2, y2 = line["bbox"]
        assert 0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0
        assert 3.0 <= line["ts"] <= 11.0
        assert line["wire"]["p"] == line["phase"] and line["wire"]["t"] == line["time_ms"]
    s = json.loads(summary.read_text(encoding="utf-8"))
    assert set(s) >= SUMMARY_KEYS
    assert s["frames"] == 200 and s["duration_s"] == pytest.approx(20.0)
    assert s["person_events"] == 1 and s["motion_events"] == 0
    assert 0 < s["motion_frames"] < 200 and s["inference_runs"] > 0
    assert s["ms_per_frame"]["p95"] >= s["ms_per_frame"]["mean"] * 0.5 > 0
    assert s["ms_per_inference"]["mean"] > 0
    assert "1 person events" in capsys.readouterr().out


def test_replay_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(["replay", "synthetic:walkthrough?seconds=14", "--events-out", str(a)]) == 0
    assert main(["replay", "synthetic:walkthrough?seconds=14", "--events-out", str(b)]) == 0
    assert a.read_text() == b.read_text() != ""


def test_replay_video_file(tmp_path: Path) -> None:
    # Render a walk-through to an ordinary video file first.
    scene = Scene("clip", 12.0, actors=(Actor("astronaut", 2.0, 10.0, -0.2, 1.2, 0.97, 0.55),))
    src = SyntheticSource(scene, width=640, height=360)
    src.open()
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 360))
    while (frame := src.read()) is not None:
        writer.write(np.ascontiguousarray(frame.rgb[:, :, ::-1]))
    writer.release()

    events, summary, snaps = tmp_path / "e.jsonl", tmp_path / "s.json", tmp_path / "snaps"
    args = ["replay", str(path), "--events-out", str(events), "--summary-json", str(summary)]
    assert main([*args, "--snapshots", str(snaps)]) == 0
    s = json.loads(summary.read_text())
    assert s["frames"] == 120 and s["duration_s"] == pytest.approx(12.0) and s["size"] == [640, 360]
    assert s["person_events"] == 1
    lines = read_jsonl(events)
    assert lines[0]["phase"] == "start" and lines[-1]["phase"] == "end"
    assert 2.0 <= lines[0]["ts"] <= 5.0  # file time, from the container
    shots = sorted(snaps.glob("*.jpg"))
    assert shots and all(p.stat().st_size <= 12_000 for p in shots)


def test_replay_config_changes_behaviour(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(
        "device: {id: '62062101011198000123'}\n"  # other sections are not replay's business
        "vision:\n"
        "  sensitivity: low\n"
        "  detect: {enabled: false}\n"
        "  events: {motion_events: true, motion_end_s: 2}\n",
        encoding="utf-8",
    )
    events = tmp_path / "e.jsonl"
    assert main(["replay", "synthetic:walkthrough", "--config", str(cfg), "--events-out", str(events)]) == 0
    lines = read_jsonl(events)
    assert [(line["kind"], line["phase"]) for line in lines] == [("motion", "start"), ("motion", "end")]


def test_replay_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("vision:\n  detect: {detect_fps: fast}\n  sensitivity: extreme\n", encoding="utf-8")
    assert main(["replay", "synthetic:quiet", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "vision.detect.detect_fps: found 'fast', expected times per second 0.1..30" in err
    assert "vision.sensitivity: found 'extreme', expected one of low, medium, high" in err
    assert main(["replay", str(tmp_path / "missing.mp4")]) == 2
    assert "no such source" in capsys.readouterr().err
    assert main(["replay", "synthetic:nope"]) == 2
    assert "unknown synthetic scene" in capsys.readouterr().err


def test_vision_config_parsing() -> None:
    cfg = parse_vision(
        {
            "sensitivity": "high",
            "masks": [[[0, 0], [0.5, 0], [0.5, 0.5]]],
            "motion": {"threshold": 25},
            "detect": {"detect_fps": 2, "num_threads": 1},
            "events": {"end_after_s": 8, "motion_events": "auto"},
            "snapshot": {"max_bytes": 6000},
        }
    )
    assert cfg.motion.threshold == 25 and cfg.motion.min_area == 0.0015  # preset + override
    assert cfg.motion.masks == ([(0.0, 0.0), (0.5, 0.0), (0.5, 0.5)],)
    assert cfg.detect.detect_fps == 2.0 and cfg.detect.num_threads == 1
    assert cfg.events.end_after_s == 8.0 and cfg.events.motion_events is None and not cfg.motion_events
    assert cfg.snapshot.max_bytes == 6000  # not the default (10000)
    assert parse_vision(None) == VisionConfig() and parse_vision({}) == VisionConfig()
    assert describe(cfg)["motion"]["threshold"] == 25


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"motion": {"threshold": 0}}, "vision.motion.threshold: found 0, expected an integer 1..200"),
        ({"motion": {"treshold": 5}}, "vision.motion.treshold: found 5, expected one of the known keys"),
        ({"detect": {"enabled": "yes"}}, "vision.detect.enabled: found 'yes', expected true or false"),
        ({"detect": {"num_threads": 2.5}}, "vision.detect.num_threads: found 2.5, expected an integer 1..8"),
        ({"events": {"end_after_s": -1}}, "vision.events.end_after_s: found -1, expected seconds 0.5..600"),
        ({"masks": [[[0, 0], [2, 0], [1, 1]]]}, "vision.masks[0][1][0]: found 2, expected a list of polygons"),
        ({"masks": "all"}, "vision.masks: found 'all', expected a list of polygons"),
        ({"snapshot": []}, "vision.snapshot: found [], expected a mapping"),
        ({"zone": {}}, "vision.zone: found {}, expected one of the known keys"),
        ({"zones": {}}, "vision.zones: found {}, expected a list of at most 8 zones"),
    ],
)
def test_vision_config_errors_name_key_value_and_expectation(doc: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_vision(doc, "agent.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("agent.yaml: ")


def test_load_vision_config_file(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text("vision:\n  detect: {detect_fps: 4}\n", encoding="utf-8")
    assert load_vision_config(path).detect.detect_fps == 4.0
    path.write_text("vision: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_vision_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_vision_config(tmp_path / "absent.yaml")


REAL_CLIP = Path(__file__).resolve().parents[2] / "var" / "clips" / "vtest.avi"


@pytest.mark.slow
def test_replay_real_pedestrian_clip(tmp_path: Path) -> None:
    """OpenCV's vtest.avi (768x576, 10 fps, 79.5 s; pedestrians cross a plaza the
    whole time), fetched by tools/fetch-test-clips.sh from Debian's opencv-doc."""
    if not REAL_CLIP.is_file():
        if os.environ.get("CI"):  # `make test` fetches it; in CI a missing clip is a failure, not a skip
            pytest.fail(f"{REAL_CLIP} missing: tools/fetch-test-clips.sh did not run or failed")
        pytest.skip(f"{REAL_CLIP} not fetched (run tools/fetch-test-clips.sh)")
    events, summary = tmp_path / "e.jsonl", tmp_path / "s.json"
    assert main(["replay", str(REAL_CLIP), "--events-out", str(events), "--summary-json", str(summary)]) == 0
    s = json.loads(summary.read_text())
    assert s["frames"] == 795 and s["duration_s"] == pytest.approx(79.5) and s["size"] == [768, 576]
    assert s["inference_runs"] <= 3 * 80  # gated: never more than detect_fps
    lines = read_jsonl(events)
    starts = [line for line in lines if line["phase"] == "start"]
    # Someone is on the plaza from the first second to the last: a visit that
    # starts early, sees several people at once, and ends with a long duration.
    assert starts and starts[0]["kind"] == "person" and starts[0]["ts"] < 3.0
    assert max(line["count"] for line in lines) >= 3
    ends = [line for line in lines if line["phase"] == "end"]
    assert ends and max(line["duration_s"] for line in ends) >= 30
