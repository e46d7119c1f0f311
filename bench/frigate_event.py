"""The `frigate/events` message as Frigate's MQTT documentation shows it
(docs/docs/integrations/mqtt.md, MIT-licensed Frigate project), used only as
a size reference: the comparison the county cares about is bytes per event
on a metered 4G link."""

from __future__ import annotations

import json
from typing import Any


def _state(
    frame_time: float, score: float, box: list[int], area: int, region: list[int], zones: list[str]
) -> dict[str, Any]:
    return {
        "id": "1607123955.475377-mxklsc",
        "camera": "front_door",
        "frame_time": frame_time,
        "snapshot_time": 1607123961.837752,
        "label": "person",
        "top_score": 0.958984375,
        "false_positive": False,
        "start_time": 1607123955.475377,
        "end_time": None,
        "score": score,
        "box": box,
        "area": area,
        "region": region,
        "current_zones": zones,
        "entered_zones": ["yard", "driveway"],
        "thumbnail": None,
        "has_snapshot": False,
        "has_clip": False,
        "stationary": False,
        "motionless_count": 0,
        "position_changes": 2,
    }


def frigate_event_payload() -> bytes:
    """Serialised the way Frigate does it (json.dumps with default separators)."""
    message = {
        "type": "update",
        "before": _state(1607123961.837752, 0.7890625, [424, 500, 536, 712], 23744, [264, 450, 667, 853], ["driveway"]),
        "after": _state(
            1607123962.082975, 0.87890625, [432, 496, 544, 854], 40096, [218, 440, 693, 915], ["yard", "driveway"]
        ),
    }
    return json.dumps(message).encode()


FRIGATE_TOPIC = "frigate/events"
