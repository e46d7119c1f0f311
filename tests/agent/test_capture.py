"""The capture loop: a failing camera is reopened with backoff and health shows the error meanwhile."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import agent.capture as capture_mod
from agent.capture import Capture
from agent.clock import DeviceClock
from agent.outbox import Outbox
from agent.outbox_writer import OutboxWriter
from agent.vision.synthetic import SyntheticSource
from protocol.codec import decode_event, decode_snapshot
from protocol.messages import Event
from tests.support.wait import wait_for

DEVICE = "62062101011198000123"


class Flaky:
    """A real synthetic source that fails ``fail_opens`` opens, then dies after ``die_after`` reads."""

    opens = 0

    def __init__(self, fail_opens: int, die_after: int | None = None) -> None:
        self.inner = SyntheticSource("quiet", width=160, height=96, fps=50, seconds=60)
        self.fail_opens = fail_opens
        self.die_after = die_after
        self.reads = 0

    fps = property(lambda self: self.inner.fps)
    size = property(lambda self: self.inner.size)

    def open(self) -> None:
        Flaky.opens += 1
        if Flaky.opens <= self.fail_opens:
            raise OSError("Camera __init__ sequence did not complete")
        self.inner.open()

    def read(self) -> Any:
        self.reads += 1
        if self.die_after is not None and self.reads > self.die_after:
            raise RuntimeError("capture_request timed out")
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


class Emitting:
    """A stand-in pipeline that emits one person event with a snapshot on frame 3."""

    def __init__(self, writer: OutboxWriter) -> None:
        self.writer = writer
        self.stats = None

    def process(self, frame: Any, pir: bool = False) -> list[Any]:
        if frame.index != 3:
            return []
        from agent.vision.snapshot import make_snapshot
        from agent.vision.tracker import Emitted

        eid = self.writer.next_event_id()
        snap = make_snapshot(frame.rgb, event_id=eid, phase="start", time_ms=1, crop=False)
        ev = Event(event_id=eid, kind="person", phase="start", time_ms=1_764_138_000_000, score=80, has_snapshot=True)
        return [Emitted(ev, frame.ts, 0.8, None, snap)]

    def finish(self) -> list[Any]:
        return []


def test_camera_failure_reopens_with_backoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_mod, "REOPEN_BASE_S", 0.05)
    Flaky.opens = 0
    sources = iter([Flaky(2), Flaky(2), Flaky(0, die_after=20), Flaky(0)])
    box = Outbox(tmp_path / "o.sqlite3")
    cap = Capture(lambda: next(sources), None, OutboxWriter(DEVICE, box, 1, DeviceClock()), DeviceClock(), pace=True)
    cap.start()
    try:
        wait_for(lambda: cap.state == "error")
        assert cap.error is not None and "did not complete" in cap.error
        wait_for(lambda: cap.frames > 20 and cap.state == "ok")
        wait_for(lambda: cap.reopens >= 3)  # two failed opens and one dead stream
        wait_for(lambda: cap.state == "ok" and cap.fps is not None)
        before = cap.heartbeat
        time.sleep(0.1)
        assert cap.heartbeat > before  # the watchdog sees progress
    finally:
        cap.stop()
    assert not cap.alive()


def test_events_and_snapshots_go_to_the_outbox_with_unsynced_flag(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    clock = DeviceClock(probe=lambda: "unsynced")
    writer = OutboxWriter(DEVICE, box, 4, clock)
    cap = Capture(lambda: Flaky(0), lambda: Emitting(writer), writer, clock, pace=True)
    Flaky.opens = 0
    cap.start()
    try:
        wait_for(lambda: box.depth >= 2)
        assert cap.request_snapshot(320) is None
        wait_for(lambda: box.depth >= 3)
    finally:
        cap.stop()
    event, snap, asked = box.pending(10)[:3]
    ev = decode_event(event.payload)
    assert ev.clock_unsynced and ev.has_snapshot and ev.event_id >> 32 == 4
    assert decode_snapshot(snap.payload).event_id == ev.event_id  # the picture follows its event
    assert decode_snapshot(asked.payload).width <= 320


class Bright:
    """A source of bright random frames (a masked area must come out black)."""

    fps = 50.0
    size = (160, 96)

    def __init__(self) -> None:
        self.index = -1

    def open(self) -> None:
        pass

    def read(self) -> Any:
        import numpy as np

        from agent.vision.frame import Frame

        self.index += 1
        rgb = np.random.default_rng(self.index).integers(150, 255, (96, 160, 3), dtype=np.uint8)
        return Frame(self.index / self.fps, self.index, rgb[:, :, 1].copy(), (160, 96), rgb=rgb)

    def close(self) -> None:
        pass


class PushedDuringProcess:
    """A pipeline with masks whose frame 3 takes long enough for the command thread to act:
    a config push bringing a mask over the left half, then a snapshot command, both handled
    while the capture thread is inside ``process`` (commands queued for an offline device
    arrive back to back; detection on a Pi takes a few hundred ms)."""

    def __init__(self, cap: list[Capture]) -> None:
        from agent.vision.masks import MaskCache

        self.cap = cap
        self.masks = MaskCache([])
        self.stats = None

    def process(self, frame: Any, pir: bool = False) -> list[Any]:
        if frame.index == 3:
            self.cap[0].reconfigure([[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]])
            assert self.cap[0].request_snapshot(None) is None
        return []

    def reconfigure(self, masks: Any) -> None:
        from agent.vision.masks import MaskCache

        self.masks = MaskCache(masks)

    def finish(self) -> list[Any]:
        return []


def test_a_snapshot_asked_after_a_push_is_masked_even_mid_frame(tmp_path: Path) -> None:
    import simplejpeg

    box = Outbox(tmp_path / "o.sqlite3")
    clock = DeviceClock(probe=lambda: "synced")
    writer = OutboxWriter(DEVICE, box, 4, clock)
    holder: list[Capture] = []
    cap = Capture(Bright, lambda: PushedDuringProcess(holder), writer, clock, pace=True)
    holder.append(cap)
    cap.start()
    try:
        wait_for(lambda: box.depth >= 1)
    finally:
        cap.stop()
    img = simplejpeg.decode_jpeg(decode_snapshot(box.pending(1)[0].payload).jpeg)
    w = img.shape[1]
    assert img[:, w // 2 + 8 :].mean() > 150
    assert img[:, : w // 2 - 8].max() < 40  # the pushed mask, in force before the picture was taken


class RecordingPipeline:
    """Keeps every config it is reconfigured with."""

    def __init__(self) -> None:
        self.configs: list[Any] = []
        self.stats = None

    def process(self, frame: Any, pir: bool = False) -> list[Any]:
        return []

    def reconfigure(self, vision: Any) -> None:
        self.configs.append(vision)

    def finish(self) -> list[Any]:
        return []


class RacingCapture(Capture):
    """The command thread's second push lands just as the capture thread takes up the first:
    between ``_take_vision`` reading the pending config and clearing it."""

    second: threading.Thread | None = None

    @property
    def _vision(self) -> Any:
        value = self.__dict__.get("_pending")
        if value == "push-1" and self.second is None and sys._getframe(1).f_code.co_name == "_take_vision":
            self.second = threading.Thread(target=self.reconfigure, args=("push-2",))
            self.second.start()
            self.second.join(0.3)  # it gets in now, unless the take is atomic against it
        return value

    @_vision.setter
    def _vision(self, value: Any) -> None:
        self.__dict__["_pending"] = value


def test_a_push_landing_while_the_previous_is_taken_up_is_not_lost(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    clock = DeviceClock(probe=lambda: "synced")
    writer = OutboxWriter(DEVICE, box, 4, clock)
    pipeline = RecordingPipeline()
    cap = RacingCapture(Bright, lambda: pipeline, writer, clock, pace=True)
    cap.start()
    try:
        wait_for(lambda: cap.frames >= 2)
        cap.reconfigure("push-1")
        wait_for(lambda: pipeline.configs[-1:] == ["push-2"], timeout=5)
    finally:
        cap.stop()
    assert pipeline.configs == ["push-1", "push-2"]
