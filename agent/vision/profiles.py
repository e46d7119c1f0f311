"""Which profile (day, night) is in force, and the rules it makes (docs/zones.md).

``ir`` follows the picture: night while it is monochrome, i.e. the IR light
is on (agent.vision.motion tells). ``schedule`` follows the local time of
the agent's ``schedule.timezone`` through ``night_hours``. The time is the
pipeline's own clock applied to the frame's source time, so a live camera
uses the wall clock and a replay its reproducible replay clock.
"""

from __future__ import annotations

import datetime as dt

from agent.config_vision import VisionConfig
from agent.config_zones import Profiles, Rules, apply_profile
from agent.schedule import in_hours, zone

DEFAULT_TIMEZONE = "Asia/Shanghai"  # agent.config ScheduleConfig.timezone's default


class ProfileSelector:
    def __init__(self, profiles: Profiles | None, tz: dt.tzinfo | None = None) -> None:
        self.profiles = profiles
        self.tz = tz or zone(DEFAULT_TIMEZONE)

    def choose(self, monochrome: bool | None, wall_ms: int) -> str | None:
        """The profile for now; None without profiles. An unknown IR state (no colour
        information yet, or a grey-only camera) counts as day, the rules of the file."""
        p = self.profiles
        if p is None:
            return None
        ir = bool(monochrome) and p.select in ("ir", "ir_or_schedule")
        scheduled = p.select in ("schedule", "ir_or_schedule") and self._at_night(wall_ms)
        return "night" if ir or scheduled else "day"

    def _at_night(self, wall_ms: int) -> bool:
        assert self.profiles is not None
        if self.profiles.night_hours is None:
            return False
        local = dt.datetime.fromtimestamp(wall_ms / 1000, self.tz)
        return in_hours(local, *self.profiles.night_hours)


def rules_for(config: VisionConfig, profile: str | None) -> Rules:
    """The top-level rules with ``profile``'s overrides applied."""
    if profile is None or config.profiles is None:
        return config.rules
    return apply_profile(config.rules, config.profiles.get(profile))
