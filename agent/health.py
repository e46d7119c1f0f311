"""The heartbeat: a full ``protocol.messages.Health`` every interval, a delta on significant change.

Health is QoS 0 and never stored (protocol.qos): the next heartbeat replaces a
lost one, and replaying old numbers after an outage would only mislead.

Liveness is not the heartbeat's job: the MQTT keepalive is cheaper (a 2-byte
ping) and the broker's will says offline within 1.5x of it (agent.link). So the
full report comes rarely (``health.interval_s``, 30 minutes), and in between
only what an operator acts on is sent, when it changes: the camera state,
arming, the clock, throttling bits, the error text, the update state. That
message is a delta (``"d":1``): the keys that changed since the last report,
which the hub merges into what it has. A key that went away (an error
cleared) cannot be said as a change, so that makes a full report. Changes
are sent at most every ``MIN_GAP_S`` so a flapping camera cannot flood a
metered link.
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
    config_rev: Callable[[], int] | None = None  # agent.config_push.ConfigPusher.rev
    root: Path = sysinfo.ROOT  # tests point /proc and /sys elsewhere
    vcgencmd: str | None = "auto"


class HealthReporter:
    def __init__(self, sources: HealthSources, publish: Callable[[Health], bool]) -> None:
        self.s = sources
        self.publish = publish
        self.started = time.monotonic()
        self._last_sent = -1e9
        self._last_full = -1e9
        self._last_key: tuple[Any, ...] | None = None
        self._last_wire: dict[str, Any] | None = None  # what the hub has: the last full report with deltas merged
        self.sent = 0
        self.deltas = 0

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
            profile=getattr(pipeline, "profile", None),
            config_rev=(s.config_rev() or None) if s.config_rev else None,
        )

    def tick(self) -> Health | None:
        """Send when the interval is up (full) or something significant changed (a delta); returns what was sent."""
        health = self.build()
        # The update state too: the hub's rollout waits on it (docs/ota.md section 2); and the
        # profile and config revision, which say which rules judge the device's events now.
        key = (
            health.camera,
            health.armed,
            health.clock,
            health.throttled,
            health.error,
            health.update_state,
            health.profile,
            health.config_rev,
        )
        now = time.monotonic()
        due = now - self._last_full >= self.s.interval_s
        changed = key != self._last_key and now - self._last_sent >= MIN_GAP_S
        if not (due or changed):
            return None
        wire = health.to_wire()
        out = health if due else self._delta(wire) or health
        if not self.publish(out):
            return None
        self._last_sent = now
        self._last_key = key
        self.sent += 1
        if out.delta:
            self.deltas += 1
            assert self._last_wire is not None
            self._last_wire.update({k: v for k, v in out.to_wire().items() if k != "d"})
        else:
            self._last_full = now
            self._last_wire = wire
        return out

    def _delta(self, wire: dict[str, Any]) -> Health | None:
        """The keys that changed since the last report, or None when only a full report can say it."""
        last = self._last_wire
        if last is None or any(k not in wire for k in last):
            return None
        changed = {k: v for k, v in wire.items() if k not in _NOT_IN_DELTAS and last.get(k) != v}
        return Health.from_wire({"v": wire["v"], "t": wire["t"], "d": 1, **changed})


# Counters that change every time, and the boot facts the hub has from the full report and the state message.
_NOT_IN_DELTAS = frozenset({"v", "t", "up", "ver", "boot", "hi", "memt"})
