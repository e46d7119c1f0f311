"""The heartbeat: a ``protocol.messages.Health`` every interval and on significant change.

Health is QoS 0 and never stored (protocol.qos): the next heartbeat replaces a
lost one, and replaying old numbers after an outage would only mislead.
"Significant" is what an operator acts on: the camera state, arming, the clock,
throttling bits and the error text. Changes are sent at most every
``MIN_GAP_S`` so a flapping camera cannot flood a metered link.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import __version__, sysinfo
from agent.clock import DeviceClock
from agent.outbox import Outbox
from agent.update.progress import Progress
from protocol.messages import Health

MIN_GAP_S = 5.0


@dataclass
class HealthSources:
    """Where each number comes from; any of them may be missing."""

    outbox: Outbox
    clock: DeviceClock
    state_dir: Path
    boot: int
    interval_s: int
    capture: Any = None  # agent.capture.Capture
    armed: Callable[[], bool] | None = None
    errors: Callable[[], str | None] | None = None  # the most recent operator-facing error
    update: Callable[[], Progress | None] | None = None  # agent.update.runner.UpdateRunner.health
    clips: Any = None  # agent.clips.recorder.Recorder
    clip_upload: Callable[[], int] | None = None  # agent.clips.upload.ClipUploader.uploaded_today
    root: Path = sysinfo.ROOT  # tests point /proc and /sys elsewhere
    vcgencmd: str | None = "auto"


class HealthReporter:
    def __init__(self, sources: HealthSources, publish: Callable[[Health], bool]) -> None:
        self.s = sources
        self.publish = publish
        self.started = time.monotonic()
        self._last_sent = -1e9
        self._last_key: tuple[Any, ...] | None = None
        self.sent = 0

    def build(self) -> Health:
        s = self.s
        mem_avail, mem_total = sysinfo.memory_mb(s.root)
        cap = s.capture
        pipeline = getattr(cap, "pipeline", None)
        stats = getattr(pipeline, "stats", None)
        camera = getattr(cap, "state", None) if cap is not None else "off"
        error = s.outbox.error or (s.errors() if s.errors else None) or getattr(cap, "error", None)
        up = s.update() if s.update else None
        store = getattr(s.clips, "store", None)
        return Health(
            time_ms=s.clock.now_ms(),
            uptime_s=int(time.monotonic() - self.started),
            agent_version=__version__,
            boot=s.boot,
            interval_s=s.interval_s,
            cpu_temp_c=sysinfo.cpu_temp_c(s.root),
            throttled=sysinfo.throttled(s.vcgencmd),
            load1=sysinfo.load1(s.root),
            mem_avail_mb=mem_avail,
            mem_total_mb=mem_total,
            disk_free_mb=sysinfo.disk_free_mb(s.state_dir),
            camera=camera,
            camera_fps=cap.fps if cap is not None else None,
            motion_fps=stats.motion_fps if stats is not None else None,
            inference_ms_p50=stats.inference_ms_p50 if stats is not None else None,
            outbox_depth=s.outbox.depth,
            outbox_dropped=s.outbox.dropped,
            armed=s.armed() if s.armed else None,
            rssi_dbm=sysinfo.wifi_rssi_dbm(s.root),
            clock=s.clock.state,
            error=error[:200] if error else None,
            update_version=up.uv if up else None,
            update_state=up.us if up else None,
            update_error=up.ue if up else None,
            update_bytes=up.ub if up and up.ub else None,
            update_rollout=up.ro if up else None,
            clips=store.count if store is not None else None,
            clip_bytes=store.bytes if store is not None else None,
            clip_upload_bytes=s.clip_upload() if s.clip_upload else None,
        )

    def tick(self) -> Health | None:
        """Send when the interval is up or something significant changed; returns what was sent."""
        health = self.build()
        # The update state too: the hub's rollout waits on it (docs/ota.md section 2).
        key = (health.camera, health.armed, health.clock, health.throttled, health.error, health.update_state)
        now = time.monotonic()
        due = now - self._last_sent >= self.s.interval_s
        changed = key != self._last_key and now - self._last_sent >= MIN_GAP_S
        if not (due or changed):
            return None
        if self.publish(health):
            self._last_sent = now
            self._last_key = key
            self.sent += 1
            return health
        return None
