"""Person detector: the real packaged models on a real TFLite interpreter.

Images come from scikit-image's wheel (no download). Person boxes below were
labelled by hand on the original 512x512 images, as normalised x1, y1, x2, y2.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agent.vision import detector as det
from agent.vision.detector import (
    DEFAULT_MODEL,
    FLOAT_MODEL,
    Detection,
    DetectorUnavailable,
    PersonDetector,
    resize_rgb,
    square_region_around,
)

skdata = pytest.importorskip("skimage.data")

ASTRONAUT_BOX = (0.04, 0.03, 0.70, 1.0)  # Eileen Collins, down to the frame's bottom edge
CAMERAMAN_BOX = (0.0, 0.12, 0.65, 1.0)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image)


@pytest.fixture(scope="module", params=[DEFAULT_MODEL, FLOAT_MODEL], ids=["uint8", "float32"])
def detector(request: pytest.FixtureRequest) -> Iterator[PersonDetector]:
    yield PersonDetector(model_path=request.param, num_threads=2, score_threshold=0.5)


def test_default_model_is_packaged_uint8() -> None:
    assert DEFAULT_MODEL.name == "person_ssdlite_uint8.tflite"
    assert DEFAULT_MODEL.is_file()
    loaded = PersonDetector()
    assert loaded.model_path == DEFAULT_MODEL
    assert (loaded.input_h, loaded.input_w) == (300, 300)
    assert loaded.runtime_name in ("ai-edge-litert", "tflite-runtime")
    assert loaded.last_inference_ms is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [("astronaut", ASTRONAUT_BOX), ("camera", CAMERAMAN_BOX)],
)
def test_person_images_give_one_person_with_a_plausible_box(
    detector: PersonDetector, name: str, expected: tuple[float, ...]
) -> None:
    found = detector.detect(rgb(getattr(skdata, name)()))
    assert found, f"no person found in {name}"
    best = found[0]
    assert isinstance(best, Detection)
    assert best.score >= 0.5
    assert iou(best.box, expected) >= 0.7, best.box
    # One person in the picture: NMS must not leave a second confident box.
    assert len(found) == 1, found
    assert detector.last_inference_ms is not None and detector.last_inference_ms > 0


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket", "grass", "brick", "gravel", "noise"])
def test_scenes_without_people_give_no_person(detector: PersonDetector, name: str) -> None:
    if name == "noise":
        image = np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    else:
        image = rgb(getattr(skdata, name)())
    assert detector.detect(image) == []


def test_region_boxes_map_back_to_the_full_frame(detector: PersonDetector) -> None:
    frame = np.full((720, 1280, 3), 90, np.uint8)
    side, left, top = 400, 820, 260
    frame[top : top + side, left : left + side] = resize_rgb(skdata.astronaut(), side, side)
    expected = (
        (left + ASTRONAUT_BOX[0] * side) / 1280,
        (top + ASTRONAUT_BOX[1] * side) / 720,
        (left + ASTRONAUT_BOX[2] * side) / 1280,
        (top + ASTRONAUT_BOX[3] * side) / 720,
    )
    region = (left - 50, top - 60, left + side + 40, top + side + 30)
    found = detector.detect(frame, region=region)
    assert found, "astronaut not found inside its region"
    assert iou(found[0].box, expected) >= 0.7, (found[0].box, expected)
    # Inside the region, not merely inside the frame.
    x1, y1, x2, y2 = found[0].box
    assert x1 * 1280 >= region[0] - 1 and x2 * 1280 <= region[2] + 1
    assert y1 * 720 >= region[1] - 1 and y2 * 720 <= region[3] + 1
    # The same frame cropped where nobody stands must be empty.
    assert detector.detect(frame, region=(0, 0, 600, 600)) == []


def test_exact_model_size_region_is_not_resized_yet_maps_back(detector: PersonDetector) -> None:
    # square_region_around usually returns exactly 300x300: the no-resize path.
    frame = np.full((480, 640, 3), 40, np.uint8)
    frame[100:400, 250:550] = resize_rgb(skdata.camera()[:, :, None].repeat(3, axis=2), 300, 300)
    found = detector.detect(frame, region=(250, 100, 550, 400))
    expected = tuple(
        (offset + v * 300) / size
        for v, offset, size in zip(CAMERAMAN_BOX, (250, 100, 250, 100), (640, 480, 640, 480), strict=True)
    )
    assert found and iou(found[0].box, expected) >= 0.7, (found, expected)


def test_region_is_clamped_and_empty_regions_are_rejected(detector: PersonDetector) -> None:
    frame = rgb(skdata.astronaut())
    clamped = detector.detect(frame, region=(-100, -100, 10_000, 10_000))
    assert clamped and iou(clamped[0].box, ASTRONAUT_BOX) >= 0.7
    with pytest.raises(ValueError, match="empty"):
        detector.detect(frame, region=(600, 0, 700, 100))


def test_rejects_frames_that_are_not_rgb_uint8(detector: PersonDetector) -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector.detect(skdata.camera())
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector.detect(rgb(skdata.camera()).astype(np.float32))


def test_per_call_threshold_overrides_default(detector: PersonDetector) -> None:
    image = rgb(skdata.astronaut())
    assert detector.detect(image, score_threshold=0.999) == []
    assert detector.detect(image, score_threshold=0.3)


def test_resize_keeps_geometry_and_flat_colour() -> None:
    flat = np.full((1080, 1920, 3), (10, 200, 30), np.uint8)
    out = resize_rgb(flat, 300, 300)
    assert out.shape == (300, 300, 3) and out.dtype == np.uint8
    assert (out == (10, 200, 30)).all()
    # A bright block at 25-50% of each axis must land at 25-50% of the output.
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[180:360, 320:640] = 255
    out = resize_rgb(frame, 300, 300)
    ys, xs = np.nonzero(out[:, :, 0] == 255)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (75, 149, 75, 149)
    # Upscaling a small crop works too (regions can be smaller than 300 px).
    assert resize_rgb(frame[:100, :120], 300, 300).shape == (300, 300, 3)


class TestSquareRegion:
    def test_small_motion_gets_a_min_side_square_around_it(self) -> None:
        x1, y1, x2, y2 = square_region_around((0.45, 0.45, 0.5, 0.55), 1280, 720)
        assert x2 - x1 == y2 - y1 == 300
        assert x1 <= 0.45 * 1280 and x2 >= 0.5 * 1280 and y1 <= 0.45 * 720 and y2 >= 0.55 * 720
        # Centred on the motion box.
        assert abs((x1 + x2) / 2 - 0.475 * 1280) <= 1 and abs((y1 + y2) / 2 - 0.5 * 720) <= 1

    def test_square_is_shifted_inside_the_frame_at_edges(self) -> None:
        assert square_region_around((0.0, 0.0, 0.02, 0.02), 1280, 720) == (0, 0, 300, 300)
        assert square_region_around((0.98, 0.97, 1.0, 1.0), 1280, 720) == (980, 420, 1280, 720)

    def test_larger_motion_gets_margin(self) -> None:
        x1, y1, x2, y2 = square_region_around((0.4, 0.3, 0.5, 0.7), 1280, 720, margin=0.25)
        side = round(0.4 * 720 * 1.5)
        assert (x2 - x1, y2 - y1) == (side, side)

    def test_large_or_unfittable_motion_gives_whole_frame(self) -> None:
        assert square_region_around((0.0, 0.0, 0.9, 0.8), 1280, 720) == (0, 0, 1280, 720)
        # Wider than the frame is tall: no square crop can hold it.
        assert square_region_around((0.1, 0.4, 0.8, 0.5), 1280, 720) == (0, 0, 1280, 720)
        # Frame smaller than the model input: nothing to crop.
        assert square_region_around((0.4, 0.4, 0.5, 0.5), 320, 240) == (0, 0, 320, 240)

    def test_margin_is_capped_by_the_frame(self) -> None:
        x1, y1, x2, y2 = square_region_around((0.3, 0.05, 0.6, 0.95), 1280, 720)
        assert (x2 - x1, y2 - y1) == (720, 720) and (y1, y2) == (0, 720)


def _block_imports(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    # A None entry in sys.modules makes `import` raise ImportError.
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_missing_runtimes_raise_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _block_imports(monkeypatch, "ai_edge_litert", "ai_edge_litert.interpreter")
    _block_imports(monkeypatch, "tflite_runtime", "tflite_runtime.interpreter")
    with pytest.raises(DetectorUnavailable) as info:
        PersonDetector()
    message = str(info.value)
    assert "ai-edge-litert" in message and "tflite-runtime" in message
    assert "pip install ai-edge-litert" in message


def test_falls_back_to_tflite_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    interpreter_cls, _ = det.load_interpreter_class()
    fake_pkg = types.ModuleType("tflite_runtime")
    fake_mod = types.ModuleType("tflite_runtime.interpreter")
    fake_mod.Interpreter = interpreter_cls  # type: ignore[attr-defined]
    fake_pkg.interpreter = fake_mod  # type: ignore[attr-defined]
    _block_imports(monkeypatch, "ai_edge_litert", "ai_edge_litert.interpreter")
    monkeypatch.setitem(sys.modules, "tflite_runtime", fake_pkg)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake_mod)
    fallback = PersonDetector()
    assert fallback.runtime_name == "tflite-runtime"
    assert fallback.detect(rgb(skdata.astronaut()))


def test_missing_model_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="person model not found"):
        PersonDetector(model_path=tmp_path / "nope.tflite")


def test_an_ota_release_loads_its_own_model(tmp_path: Path) -> None:
    """An agent running from releases/<v>/venv loads releases/<v>/model/ (docs/ota.md), else the packaged one."""
    from agent.vision.detector import default_model

    release = tmp_path / "releases" / "1.2.0"
    (release / "venv").mkdir(parents=True)
    assert default_model(release / "venv") == DEFAULT_MODEL  # no manifest, no model: not a release
    (release / "manifest.json").write_text("{}")
    (release / "model").mkdir()
    assert default_model(release / "venv") == DEFAULT_MODEL  # a release without its model file
    (release / "model" / DEFAULT_MODEL.name).write_bytes(DEFAULT_MODEL.read_bytes())
    assert default_model(release / "venv") == release / "model" / DEFAULT_MODEL.name
    assert default_model(tmp_path / "elsewhere" / "venv") == DEFAULT_MODEL
