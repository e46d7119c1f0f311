"""Frame sources: synthetic scenes, video files, image folders, the picamera2 port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.vision.camera import CameraUnavailable, PicameraSource, yuv420_planes
from agent.vision.frame import Frame, FrameSource, chroma_of, luma_from_rgb, motion_step
from agent.vision.sources import ImageDirSource, VideoFileSource, open_source
from agent.vision.synthetic import SCENES, SyntheticSource
from tests.support.fake_camera import FakeCamera

cv2 = pytest.importorskip("cv2")


def read_all(source: FrameSource) -> list[Frame]:
    source.open()
    try:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
        return frames
    finally:
        source.close()


# -- luma -------------------------------------------------------------------
def test_luma_matches_bt601_and_strides() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    exact = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(luma_from_rgb(rgb).astype(np.float64) - exact).max() <= 1.0
    small = luma_from_rgb(rgb, step=4)
    assert small.shape == (12, 16)
    assert np.array_equal(small, luma_from_rgb(rgb)[::4, ::4])
    assert np.array_equal(luma_from_rgb(rgb[:, :, ::-1], bgr=True), luma_from_rgb(rgb))


def test_chroma_tells_grey_from_colour() -> None:
    grey = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16)[:, :, None], 3, axis=2)
    colour = grey.copy()
    colour[:, :, 0] = 200
    assert chroma_of(grey, step=1) == 0.0
    assert chroma_of(colour, step=1) > 40
    assert motion_step(1280) == 4 and motion_step(320) == 1 and motion_step(100) == 1


def test_frame_rgb_is_lazy_and_loaded_once() -> None:
    calls = []

    def load() -> np.ndarray:
        calls.append(1)
        return np.zeros((4, 6, 3), np.uint8)

    frame = Frame(1.5, 3, np.zeros((2, 3), np.uint8), (6, 4), load_rgb=load)
    assert not frame.rgb_loaded and calls == []
    assert frame.rgb.shape == (4, 6, 3)
    assert frame.rgb is frame.rgb and calls == [1]
    assert frame.size == (6, 4)
    with pytest.raises(ValueError):
        Frame(0.0, 0, np.zeros((2, 3), np.uint8), (6, 4))


# -- synthetic ----------------------------------------------------------------
def test_synthetic_timestamps_sizes_and_determinism() -> None:
    src = SyntheticSource.from_spec("synthetic:walkthrough?seconds=2&fps=5&width=640&height=360&seed=3")
    frames = read_all(src)
    assert [f.ts for f in frames] == pytest.approx([i / 5 for i in range(10)])
    assert [f.index for f in frames] == list(range(10))
    assert src.size == (640, 360) and src.fps == 5.0
    assert frames[0].luma.shape == (180, 320)
    assert frames[0].rgb.shape == (360, 640, 3)
    again = read_all(SyntheticSource("walkthrough", seconds=2, fps=5, width=640, height=360, seed=3))
    assert all(np.array_equal(a.luma, b.luma) for a, b in zip(frames, again, strict=True))
    other = read_all(SyntheticSource("walkthrough", seconds=2, fps=5, width=640, height=360, seed=4))
    assert not np.array_equal(frames[5].luma, other[5].luma)  # the seed drives the noise


def test_synthetic_luma_agrees_with_full_render() -> None:
    src = SyntheticSource("busy", seconds=5)
    src.open()
    for _ in range(40):
        frame = src.read()
    assert frame is not None
    from_full = luma_from_rgb(frame.rgb, step=4).astype(np.int16)
    # Two renders at two scales with their own noise: close, not identical.
    assert np.abs(from_full - frame.luma).mean() < 12


def test_synthetic_ir_switch_turns_grey_and_brighter() -> None:
    src = SyntheticSource("light_switch", seconds=10)
    frames = read_all(src)
    before, after = frames[75], frames[85]  # the switch is at 8 s
    assert before.chroma is not None and after.chroma is not None
    assert before.chroma > 20 and after.chroma < before.chroma / 4  # only sensor noise is left
    assert after.luma.mean() > before.luma.mean() + 15


def test_synthetic_scene_catalogue_and_errors() -> None:
    assert {"quiet", "walkthrough", "light_switch", "cat", "vegetation", "busy", "dusk"} <= set(SCENES)
    assert SyntheticSource("walkthrough").truth(7.0) == 1
    assert SyntheticSource("cat").truth(7.0) == 0
    with pytest.raises(KeyError, match="unknown synthetic scene"):
        SyntheticSource("nope")
    with pytest.raises(ValueError, match="unknown option 'speed'"):
        SyntheticSource.from_spec("synthetic:quiet?speed=2")
    with pytest.raises(ValueError, match="not a number"):
        SyntheticSource.from_spec("synthetic:quiet?fps=fast")


# -- video file ---------------------------------------------------------------
def write_video(path: Path, fps: float, n: int, size: tuple[int, int] = (320, 240)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), (20 * i) % 256, np.uint8))
    writer.release()


@pytest.mark.parametrize("backend", ["av", "cv2"])
def test_video_file_timestamps_come_from_the_file(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 8.0, 12)
    src = VideoFileSource(path, backend=backend)
    frames = read_all(src)
    assert len(frames) == 12
    assert src.fps == pytest.approx(8.0)
    assert [f.ts for f in frames] == pytest.approx([i / 8 for i in range(12)], abs=1e-3)
    assert frames[3].rgb.shape == (240, 320, 3)
    # Grey frames of value 60 in BGR come back as RGB 60 (JPEG codec: within a few levels).
    assert abs(int(frames[3].rgb.mean()) - 60) <= 3 and abs(int(frames[3].luma.mean()) - 60) <= 3
    overridden = read_all(VideoFileSource(path, fps=2.0, backend=backend))
    assert overridden[5].ts == pytest.approx(2.5)


@pytest.mark.parametrize("backend", ["av", "cv2"])
def test_video_file_errors(tmp_path: Path, backend: str) -> None:
    with pytest.raises(FileNotFoundError):
        VideoFileSource(tmp_path / "missing.mp4", backend=backend).open()
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video")
    with pytest.raises(RuntimeError, match="cannot open"):
        VideoFileSource(junk, backend=backend).open()
    with pytest.raises(ValueError, match="backend must be"):
        VideoFileSource(junk, backend="gstreamer")


VTEST = Path(__file__).resolve().parents[2] / "var" / "clips" / "vtest.avi"


@pytest.mark.skipif(not VTEST.is_file(), reason="tools/fetch-test-clips.sh fetches vtest.avi (make test does)")
def test_pyav_and_opencv_decode_a_real_clip_alike() -> None:
    """The file source moved from OpenCV to PyAV: same frames, same times, pixels within a level or two."""
    av_src, cv_src = VideoFileSource(VTEST, backend="av"), VideoFileSource(VTEST, backend="cv2")
    av_src.open()
    cv_src.open()
    try:
        assert av_src.fps == pytest.approx(cv_src.fps)
        n = 0
        while (a := av_src.read()) is not None:
            c = cv_src.read()
            assert c is not None, f"OpenCV ended at frame {n}, PyAV did not"
            assert a.ts == pytest.approx(c.ts, abs=1e-3)
            if n % 50 == 0:
                diff = np.abs(a.rgb.astype(np.int16) - c.rgb.astype(np.int16))
                assert a.rgb.shape == c.rgb.shape and float(diff.mean()) < 2.0, (n, float(diff.mean()))
                assert np.abs(a.luma.astype(np.int16) - c.luma.astype(np.int16)).mean() < 2.0
            n += 1
        assert cv_src.read() is None and n == 795
    finally:
        av_src.close()
        cv_src.close()


MEGAMIND = VTEST.with_name("Megamind.avi")


@pytest.mark.skipif(not MEGAMIND.is_file(), reason="tools/fetch-test-clips.sh fetches Megamind.avi (make test does)")
def test_an_avi_with_b_frames_is_timed_by_its_frame_count() -> None:
    """XviD packs B-frames: FFmpeg's guessed times come out of order (1, 2, 3, 5, 4, ...); AVI has
    one frame per chunk at a fixed rate, so frame i is at i / fps, as OpenCV gave it."""
    src = VideoFileSource(MEGAMIND, backend="av")
    frames = read_all(src)
    steps = np.diff([f.ts for f in frames])
    assert len(frames) > 200 and np.allclose(steps, 1 / src.fps, atol=1e-9)


def test_times_start_at_the_start_of_the_stream(tmp_path: Path) -> None:
    """An MPEG-TS (a camera's or a DVR's export) starts at any pts; the first frame is still 0 s."""
    import av

    path = tmp_path / "cam.ts"
    with av.open(str(path), "w", format="mpegts") as out:
        st = out.add_stream("mpeg2video", rate=10)
        st.width, st.height, st.pix_fmt = 160, 120, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 10 * i, np.uint8), format="rgb24")
            for packet in st.encode(frame):
                out.mux(packet)
        for packet in st.encode(None):
            out.mux(packet)
    with av.open(str(path)) as probe:
        assert probe.streams.video[0].start_time  # the muxer's offset: the case under test
    times = [f.ts for f in read_all(VideoFileSource(path, backend="av"))]
    assert len(times) == 20 and times[0] == pytest.approx(0.0)
    assert times == pytest.approx([i / 10 for i in range(20)], abs=1e-3)


def test_pyav_without_bit_exact_flags_still_decodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apt's python3-av (10.x), which a 32-bit Pi's venv sees, has no ACCURATE_RND or BITEXACT."""
    import enum

    import av.video.reformatter as reformatter

    old = enum.IntEnum("Interpolation", {"FAST_BILINEAR": 1, "BILINEAR": 2, "BICUBIC": 4})
    monkeypatch.setattr(reformatter, "Interpolation", old)
    path = tmp_path / "clip.avi"
    write_video(path, 8.0, 4)
    frames = read_all(VideoFileSource(path, backend="av"))
    assert len(frames) == 4 and abs(int(frames[3].rgb.mean()) - 60) <= 3


def test_replaying_a_file_does_not_load_opencv(tmp_path: Path) -> None:
    """OpenCV's own FFmpeg cost the running agent ~20 MB of RSS beside PyAV's (README): auto must not import it."""
    path = tmp_path / "clip.avi"
    write_video(path, 5.0, 3)
    probe = (
        "import sys; from agent.vision.sources import open_source; s = open_source(sys.argv[1]); s.open(); "
        "n = sum(1 for _ in iter(s.read, None)); print(n, 'cv2' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", probe, str(path)], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "False"]


# -- image folder -------------------------------------------------------------
def test_image_dir_sorted_with_fps_timestamps(tmp_path: Path) -> None:
    import simplejpeg
    from PIL import Image

    for i in range(4):
        image = np.full((120, 160, 3), 50 * i, np.uint8)
        if i % 2:
            Image.fromarray(image).save(tmp_path / f"f{i:02d}.png")
        else:
            (tmp_path / f"f{i:02d}.jpg").write_bytes(simplejpeg.encode_jpeg(image, quality=95))
    (tmp_path / "notes.txt").write_text("ignored")
    frames = read_all(ImageDirSource(tmp_path, fps=4))
    assert [f.ts for f in frames] == [0.0, 0.25, 0.5, 0.75]
    assert [round(float(f.rgb.mean()) / 50) for f in frames] == [0, 1, 2, 3]
    assert frames[0].luma.shape == (120, 160)


def test_image_dir_rejects_mixed_sizes_and_empty(tmp_path: Path) -> None:
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="no images"):
        ImageDirSource(tmp_path).open()
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(tmp_path / "b.png")
    src = ImageDirSource(tmp_path)
    src.open()
    src.read()
    with pytest.raises(ValueError, match="first image"):
        src.read()


def test_open_source_dispatch(tmp_path: Path) -> None:
    assert isinstance(open_source("synthetic:quiet?seconds=1"), SyntheticSource)
    assert isinstance(open_source(str(tmp_path), fps=5), ImageDirSource)
    path = tmp_path / "clip.avi"
    write_video(path, 5.0, 2)
    assert isinstance(open_source(str(path)), VideoFileSource)
    assert isinstance(open_source("picamera2"), PicameraSource)
    with pytest.raises(FileNotFoundError, match="no such source"):
        open_source(str(tmp_path / "nothing-here"))


# -- picamera2 (faked: no camera or libcamera here, tests/support/fake_camera.py) --


def test_picamera_configures_main_and_lores_and_takes_the_y_plane() -> None:
    cams: list[FakeCamera] = []

    def factory(num: int) -> FakeCamera:
        cams.append(FakeCamera(num))
        return cams[-1]

    ticks = iter([100.0, 100.1, 100.2])
    src = PicameraSource((1280, 720), (320, 180), fps=10, camera_factory=factory, clock=lambda: next(ticks))
    src.open()
    cam = cams[0]
    assert cam.calls == ["create", "configure", "start"]
    assert cam.config["main"] == {"size": (1280, 720), "format": "BGR888"}
    assert cam.config["lores"] == {"size": (320, 180), "format": "YUV420"}
    assert cam.config["controls"]["FrameRate"] == 10

    f0 = src.read()
    assert f0 is not None and f0.ts == 100.0 and f0.index == 0
    assert f0.luma.shape == (180, 320) and int(f0.luma.max()) == 0  # Y only: no padding, no chroma
    assert f0.chroma == pytest.approx(60.0)
    assert cam.made == ["lores"]  # main is not copied unless asked
    f1 = src.read()
    assert f1 is not None and int(f1.luma.min()) == 1
    assert cam.requests[0].released and not cam.requests[1].released
    assert f1.rgb[0, 0].tolist() == [10, 0, 200]  # BGR888 arrays are already R, G, B
    with pytest.raises(RuntimeError, match="until the next read"):
        _ = f0.rgb
    src.close()
    assert cam.requests[1].released and cam.calls[-2:] == ["stop", "close"]


def test_picamera_rgb888_is_flipped_and_grey_has_no_chroma() -> None:
    cam = FakeCamera(0)
    cam.colour = 0
    src = PicameraSource(main_format="RGB888", camera_factory=lambda n: cam)
    src.open()
    frame = src.read()
    assert frame is not None
    assert frame.rgb[0, 0].tolist() == [200, 0, 10]
    assert frame.chroma == 0.0


def test_yuv420_plane_slicing_without_padding() -> None:
    w, h = 8, 4
    buf = np.arange(w * h * 3 // 2, dtype=np.uint8).reshape(h * 3 // 2, w)
    y, u, v = yuv420_planes(buf, w, h)
    assert np.array_equal(y, buf[:h])
    assert u.ravel().tolist() == list(range(32, 40)) and v.ravel().tolist() == list(range(40, 48))


def test_picamera_missing_gives_a_clear_error() -> None:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(CameraUnavailable, match="python3-picamera2"):
            PicameraSource().open()
    else:  # pragma: no cover - only on a Pi
        pytest.skip("picamera2 is installed here")
