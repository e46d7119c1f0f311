"""The ``clips:`` section: its defaults (docs/clips.md) and the ring-versus-pre-roll rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from agent import config, config_example


def example() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(config_example.EXAMPLE.read_text(encoding="utf-8"))
    return doc


def test_defaults_are_the_contract() -> None:
    c = config.parse(example()).clips
    assert c.enabled and (c.width, c.height, c.fps) == (640, 360, 5.0)
    assert (c.segment_s, c.ring_s, c.pre_s, c.post_s) == (4.0, 30.0, 5.0, 5.0)
    assert c.max_bytes == 2 << 30 and c.upload_bytes_per_s == 65_536 and c.daily_upload_bytes == 20_000_000


def test_a_ring_shorter_than_the_pre_roll_is_refused() -> None:
    doc = copy.deepcopy(example())
    doc["clips"] = {"ring_s": 6, "pre_s": 5, "segment_s": 2}
    with pytest.raises(config.ConfigError) as err:
        config.parse(doc)
    assert any(p.startswith("clips.ring_s: found 6") for p in err.value.problems), err.value.problems
    doc["clips"] = {"ring_s": 6, "pre_s": 5, "segment_s": 2, "enabled": False}  # off: no ring to fit
    assert not config.parse(doc).clips.enabled


def test_upload_rate_says_bytes_per_second() -> None:
    doc = copy.deepcopy(example())
    doc["clips"] = {"upload_bytes_per_s": 10}
    with pytest.raises(config.ConfigError) as err:
        config.parse(doc)
    assert "bytes per second" in err.value.problems[0]
