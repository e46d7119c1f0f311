"""clips.encoder: which encoder a device gets (a fake device-tree root), and the hardware path's masks and wiring
against a fake picamera2 (no camera, no V4L2 codec here: what only a real Pi shows is in docs/clips.md)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.clips.encoder import EncodedFrame, Picamera2Encoder, PyAvEncoder, to_yuv
from agent.clips.recorder import Recorder
from agent.clips.select import choose, hardware_h264
from agent.config import ClipsConfig
from agent.vision.camera import PicameraSource
from agent.vision.masks import rasterize
from agent.vision.synthetic import SyntheticSource
from tests.support.clip_device import EPOCH_MS, decode, emitted, feed, make_recorder
from tests.support.fake_camera import FakeCamera

PI4 = "Raspberry Pi 4 Model B Rev 1.4"
PI5 = "Raspberry Pi 5 Model B Rev 1.0"
MASK = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]  # the top-left quarter
TRIANGLE = [(0.6, 0.2), (0.95, 0.9), (0.6, 0.9)]


def pi_root(tmp_path: Path, model: str | None, encoder: str | None = "bcm2835-codec-encode") -> Path:
    """A fake / with a device-tree model string and, optionally, the V4L2 encoder /dev/video11."""
    root = tmp_path / "root"
    if model is not None:
        (root / "proc/device-tree").mkdir(parents=True)
        (root / "proc/device-tree/model").write_bytes(model.encode() + b"\x00")  # as the kernel gives it
    if encoder is not None:
        (root / "dev").mkdir(parents=True)
        (root / "dev/video11").touch()
        (root / "sys/class/video4linux/video11").mkdir(parents=True)
        (root / "sys/class/video4linux/video11/name").write_text(encoder + "\n")
    root.mkdir(parents=True, exist_ok=True)
    return root


def test_auto_picks_hardware_on_a_pi4_with_the_encoder_device(tmp_path: Path) -> None:
    root = pi_root(tmp_path, PI4)
    choice = choose("auto", "picamera2", root)
    assert choice.kind == "hardware" and PI4 in choice.reason and "video11" in choice.reason
    assert choose("auto", "picamera2:1", root).kind == "hardware"
    assert choose("hardware", "picamera2", root).kind == "hardware"
    assert choose("software", "picamera2", root).kind == "software"  # asked for: libx264 even here


def test_auto_picks_software_on_a_pi5_and_on_a_pi4_without_the_codec(tmp_path: Path) -> None:
    # The Pi 5 has no encoder block, whatever /dev/video11 there may be.
    pi5 = choose("auto", "picamera2", pi_root(tmp_path / "5", PI5))
    assert pi5.kind == "software" and "Raspberry Pi 5" in pi5.reason and "no hardware" in pi5.reason
    no_dev = choose("auto", "picamera2", pi_root(tmp_path / "4", PI4, encoder=None))
    assert no_dev.kind == "software" and "/dev/video11" in no_dev.reason
    other = choose("auto", "picamera2", pi_root(tmp_path / "d", PI4, encoder="rpi-hevc-dec"))
    assert other.kind == "software" and "rpi-hevc-dec" in other.reason
    # The model may come from /sys/firmware instead of /proc.
    root = tmp_path / "sysfs"
    (root / "sys/firmware/devicetree/base").mkdir(parents=True)
    (root / "sys/firmware/devicetree/base/model").write_bytes(PI5.encode() + b"\x00")
    assert hardware_h264(root) == (False, f"{PI5}: no hardware H.264 encoder")


def test_auto_picks_software_for_files_and_synthetic_scenes_even_on_a_pi4(tmp_path: Path) -> None:
    root = pi_root(tmp_path, PI4)
    for source in ("synthetic:walkthrough", "/var/clips/vtest.avi"):
        choice = choose("auto", source, root)
        assert choice.kind == "software" and "not the Pi camera" in choice.reason
    assert choose("auto", "picamera2", pi_root(tmp_path / "pc", None, encoder=None)).kind == "software"


def test_hardware_where_there_is_none_is_an_error_naming_clips_encoder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^clips\.encoder: hardware, but Raspberry Pi 5 .*no hardware"):
        choose("hardware", "picamera2", pi_root(tmp_path / "5", PI5))
    with pytest.raises(ValueError, match=r"^clips\.encoder: hardware, but not a Raspberry Pi"):
        choose("hardware", "picamera2", pi_root(tmp_path / "x86", None, encoder=None))
    with pytest.raises(ValueError, match=r"^clips\.encoder: hardware needs camera.source picamera2"):
        choose("hardware", "synthetic:quiet", pi_root(tmp_path / "4", PI4))


# -- the hardware path, against a fake picamera2 --------------------------------------------------
class FakeMappedArray:
    """picamera2.MappedArray over a fake request: ``array`` is the request's main buffer itself (no copy)."""

    def __init__(self, request: Any, stream: str) -> None:
        self.array = request.buffers[stream]

    def __enter__(self) -> FakeMappedArray:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Request:
    def __init__(self, width: int, height: int) -> None:
        main = np.full((height, width, 3), 200, np.uint8)
        self.buffers = {"main": main, "lores": np.full((height // 2 * 3 // 2, width // 2), 77, np.uint8)}


def test_pre_callback_blacks_out_exactly_the_mask_pixels_of_main(tmp_path: Path) -> None:
    enc = Picamera2Encoder(64, 36, 5.0, 4.0, masks=[MASK, TRIANGLE], mapped_array=FakeMappedArray)
    req = Request(64, 36)
    before = req.buffers["main"].copy()
    enc.mask_main(req)
    main = req.buffers["main"]
    inside = rasterize([MASK, TRIANGLE], 64, 36)
    assert inside.sum() > 0 and (~inside).sum() > 0
    assert (main[inside] == 0).all()  # every masked pixel black ...
    assert (main[~inside] == before[~inside]).all()  # ... and nothing else touched
    assert main[0, 0].tolist() == [0, 0, 0] and main[35, 0].tolist() == [200, 200, 200]
    assert main[17, 31].tolist() == [0, 0, 0] and main[18, 32].tolist() == [200, 200, 200]  # the quarter's corner
    assert (req.buffers["lores"] == 77).all()  # lores (motion) untouched: motion ignores masks itself
    # Another stream size gets its own grid, rasterised once.
    big = Request(128, 72)
    enc.mask_main(big)
    assert (big.buffers["main"][rasterize([MASK, TRIANGLE], 128, 72)] == 0).all()
    assert set(enc.masks._grids) == {(64, 36), (128, 72)}


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Modules picamera2, picamera2.encoders and picamera2.outputs, recording what the encoder asks of them."""
    seen: dict[str, Any] = {}

    class H264Encoder:
        def __init__(self, **kwargs: Any) -> None:
            seen["encoder_kwargs"] = kwargs
            self.frame_skip_count = 1

    class Output:
        pass

    pkg = types.ModuleType("picamera2")
    pkg.MappedArray = FakeMappedArray  # type: ignore[attr-defined]
    encoders = types.ModuleType("picamera2.encoders")
    encoders.H264Encoder = H264Encoder  # type: ignore[attr-defined]
    outputs = types.ModuleType("picamera2.outputs")
    outputs.Output = Output  # type: ignore[attr-defined]
    for name, mod in (("picamera2", pkg), ("picamera2.encoders", encoders), ("picamera2.outputs", outputs)):
        monkeypatch.setitem(sys.modules, name, mod)
    return seen


class Picam2:
    def __init__(self) -> None:
        self.pre_callback: Any = None
        self.started: list[tuple[Any, Any, str]] = []
        self.stopped: list[Any] = []

    def start_encoder(self, encoder: Any, output: Any, name: str = "main") -> None:
        self.started.append((encoder, output, name))

    def stop_encoder(self, encoder: Any) -> None:
        self.stopped.append(encoder)


def test_attach_starts_the_main_stream_encoder_with_the_mask_callback(fake_picamera2: dict[str, Any]) -> None:
    enc = Picamera2Encoder(1280, 720, 5.0, 4.0, frame_skip=2, masks=[MASK])
    cam = Picam2()
    enc.attach(cam)
    ((encoder, output, name),) = cam.started
    assert name == "main" and encoder.frame_skip_count == 2
    kw = fake_picamera2["encoder_kwargs"]
    assert kw["iperiod"] == 20 and kw["repeat"] is True and kw["bitrate"] == 500_000  # a keyframe per 4 s segment
    assert cam.pre_callback == enc.mask_main
    req = Request(1280, 720)
    cam.pre_callback(req)  # what picamera2 does with each completed request
    assert req.buffers["main"][0, 0].tolist() == [0, 0, 0] and req.buffers["main"][719, 1279].tolist() == [200] * 3
    output.outputframe(b"\x00\x00\x00\x01\x65", keyframe=True)
    output.outputframe(b"audio", keyframe=True, audio=True)  # never in the ring
    got = enc.encode(None, 0.0, False)
    assert [(u.data, u.key) for u in got] == [(b"\x00\x00\x00\x01\x65", True)] and enc.encode(None, 0.0, False) == []
    enc.detach(cam)
    assert cam.stopped == [encoder] and cam.pre_callback is None
    # No masks: no callback, so picamera2 does no work per frame.
    Picamera2Encoder(1280, 720, 5.0, 4.0).attach(bare := Picam2())
    assert bare.pre_callback is None and len(bare.started) == 1


def test_the_camera_source_attaches_and_detaches_the_encoder(fake_picamera2: dict[str, Any]) -> None:
    enc = Picamera2Encoder(1280, 720, 5.0, 4.0, masks=[MASK])
    cam = FakeCamera(0)
    calls: list[str] = []
    src = PicameraSource(camera_factory=lambda n: cam)

    def on_start(c: Any) -> None:
        calls.append("attach")
        enc.attach(c)

    def on_stop(c: Any) -> None:
        calls.append("detach")
        enc.detach(c)

    src.on_start, src.on_stop = on_start, on_stop
    cam.start_encoder = lambda e, o, name="main": calls.append(f"start_encoder {name}")  # type: ignore[attr-defined]
    cam.stop_encoder = lambda e: calls.append("stop_encoder")  # type: ignore[attr-defined]
    src.open()
    assert cam.calls == ["create", "configure", "start"] and calls == ["attach", "start_encoder main"]
    assert cam.pre_callback == enc.mask_main  # type: ignore[attr-defined]
    src.close()
    assert calls[2:] == ["detach", "stop_encoder"] and cam.calls[-2:] == ["stop", "close"]


class CameraFed:
    """A self-fed encoder as Picamera2Encoder is, whose 'camera' is libx264 fed from a synthetic scene:
    the recorder's hardware path (collect, ring, cut) with real H.264, keyframes every 20 frames."""

    self_fed = True

    def __init__(self) -> None:
        self.width, self.height = 320, 180
        self._x264 = PyAvEncoder(320, 180, 5.0)
        self._n = 0
        self.pending: list[EncodedFrame] = []

    def camera_frame(self, rgb: np.ndarray, ts: float) -> None:
        self.pending += self._x264.encode(to_yuv(rgb, 320, 180), ts, self._n % 20 == 0)
        self._n += 1

    def encode(self, yuv: Any, ts: float, keyframe: bool) -> list[EncodedFrame]:
        assert yuv is None  # the recorder neither scales nor converts for a self-fed encoder
        out, self.pending = self.pending, []
        return out

    def flush(self) -> list[EncodedFrame]:
        return self.encode(None, 0.0, False)

    def close(self) -> None:
        pass


def test_recorder_cuts_clips_from_a_self_fed_encoder(tmp_path: Path) -> None:
    fed = CameraFed()
    rec = Recorder(
        ClipsConfig(fps=5.0),
        tmp_path,
        2,
        masks=[MASK],
        wall_ms=lambda: EPOCH_MS,
        make_encoder=lambda w, h, f: fed,
        encoder_kind="hardware",
        encoder_reason="test",
    )
    rec.start()
    src = SyntheticSource("walkthrough", width=320, height=180, fps=5)

    class Tap:  # the camera feeds the encoder on its own, as picamera2 does before the frame reaches us
        def open(self) -> None:
            src.open()

        def read(self) -> Any:
            frame = src.read()
            if frame is not None:
                fed.camera_frame(frame.rgb, frame.ts)
            return frame

        def close(self) -> None:
            src.close()

    visits = {6.0: [emitted(3, "start", 4.0)], 11.0: [emitted(3, "end", 10.0)]}
    feed(rec, Tap(), visits)
    rec.stop(close=False)
    assert rec.store.get(3) is not None and rec.clips_cut == 1
    frames, _duration, _stream = decode(tmp_path / "clips" / "3.mp4")
    assert len(frames) == 80 and frames[0].key_frame and frames[0].width == 320
    stats = rec.stats()
    assert stats["encoder"] == "hardware" and stats["frames"] == 100 and stats["width"] == 320
    rec.store.close()


def test_the_software_recorder_reports_its_encoder(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path)
    feed(rec, SyntheticSource("walkthrough", width=640, height=360, fps=10), {}, limit=20)
    rec.stop(close=False)
    stats = rec.stats()
    assert stats["encoder"] == "software" and stats["frames"] == 10 and (stats["width"], stats["height"]) == (640, 360)
    rec.store.close()


def test_the_agent_refuses_to_start_with_hardware_where_there_is_none(tmp_path: Path) -> None:
    import threading

    from agent.config import ConfigError, load
    from agent.runtime import Agent
    from tests.support.agent_yaml import write_config
    from tests.support.tls import make_pki

    if hardware_h264()[0]:
        pytest.skip("this machine has the Pi's hardware encoder")
    p = make_pki(tmp_path / "pki")
    cfg = load(write_config(tmp_path, p, 8883, clips={"encoder": "hardware"}))
    with pytest.raises(ConfigError) as err:
        Agent(cfg, threading.Event())
    assert err.value.problems[0].startswith("clips.encoder: hardware")
    # auto on the same machine: libx264, and the recorder says so.
    cfg = load(write_config(tmp_path, p, 8883, clips={"encoder": "auto"}))
    agent = Agent(cfg, threading.Event())
    try:
        assert agent.clips is not None and agent.clips.stats()["encoder"] == "software"
        assert "not the Pi camera" in agent.clips.encoder_reason
    finally:
        agent.clips.store.close()
        agent.outbox.close()
