"""Person detection with the packaged SSDLite TFLite model, numpy-only around it.

The models in ``agent/models`` are built by ``tools/model/build.sh``. Their
contract, which this module relies on:

* one input ``[1, H, W, 3]`` of RGB pixels 0..255, uint8 (quantisation scale 1,
  zero point 0) or float32; normalisation to [-1, 1] happens inside the model;
* four float32 outputs from ``TFLite_Detection_PostProcess``: boxes ``[1, N, 4]``
  (ymin, xmin, ymax, xmax normalised to the model input), classes ``[1, N]``,
  scores ``[1, N]`` and count ``[1]``. Class 0 is person (it is also person in
  the common COCO SSD TFLite models, so those work too).

Resizing is a 2x2-supersampled nearest neighbour in numpy: each output pixel
averages four source pixels spread over its source cell. It costs about the
same as plain nearest (~1.5 ms for 1080p on x86) but aliases far less when a
whole HD frame is shrunk to 300x300; OpenCV/PIL would be extra Pi dependencies.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "person_ssdlite_uint8.tflite"
FLOAT_MODEL = MODELS_DIR / "person_ssdlite_float32.tflite"


def default_model(prefix: Path | None = None) -> Path:
    """The model to load when the config names none.

    An agent installed by an over-the-air update runs from
    ``/opt/xueliang/releases/<v>/venv``, and its release carries the model as
    a target of its own in ``releases/<v>/model/`` (docs/ota.md): that one is
    loaded, so a release that changes only the model takes effect. Anywhere
    else (a pip install, a checkout) it is the packaged model.
    """
    venv = Path(sys.prefix if prefix is None else prefix)
    release = venv.parent
    candidate = release / "model" / DEFAULT_MODEL.name
    if venv.name == "venv" and (release / "manifest.json").is_file() and candidate.is_file():
        return candidate
    return DEFAULT_MODEL


Region = tuple[int, int, int, int]
Box = tuple[float, float, float, float]


class DetectorUnavailable(RuntimeError):
    """No TFLite interpreter package can be imported on this machine."""


@dataclass(frozen=True, slots=True)
class Detection:
    score: float
    box: Box  # x1, y1, x2, y2 normalised to the full frame (0..1)


def load_interpreter_class() -> tuple[Any, str]:
    """Return (Interpreter class, runtime name), preferring LiteRT."""
    errors: list[str] = []
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError as exc:
        errors.append(f"ai-edge-litert: {exc}")
    try:
        # 32-bit Pi OS has no LiteRT wheel; tflite-runtime 2.14 covers it but
        # is built against numpy 1, so a numpy 2 install fails to import here.
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError as exc:
        errors.append(f"tflite-runtime: {exc}")
    raise DetectorUnavailable(
        "person detection needs a TFLite interpreter, but neither package imports "
        f"({'; '.join(errors)}). Install one: `pip install ai-edge-litert` "
        "(64-bit Linux/aarch64) or `pip install tflite-runtime 'numpy<2'` "
        "(32-bit Raspberry Pi OS), e.g. via `pip install .[agent]`."
    )


def resize_rgb(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resize HxWx3 uint8 to out_h x out_w x 3 (2x2-supersampled nearest)."""
    h, w = image.shape[:2]
    if (h, w) == (out_h, out_w):
        return image  # the sampling below is the identity here; skip ~2 ms
    # Sample points at 1/4 and 3/4 of each output pixel's source cell.
    r1 = (np.arange(out_h) * 4 + 1) * h // (4 * out_h)
    r3 = (np.arange(out_h) * 4 + 3) * h // (4 * out_h)
    c1 = (np.arange(out_w) * 4 + 1) * w // (4 * out_w)
    c3 = (np.arange(out_w) * 4 + 3) * w // (4 * out_w)
    rows = image[r1].astype(np.uint16) + image[r3]  # gather rows first: fewer pixels to touch
    summed = rows[:, c1] + rows[:, c3]
    out: np.ndarray = ((summed + 2) >> 2).astype(np.uint8)
    return out


def square_region_around(
    box_norm: Box,
    frame_w: int,
    frame_h: int,
    min_side: int = 300,
    margin: float = 0.25,
    whole_frame_fraction: float = 0.5,
) -> Region:
    """Square pixel crop (x1, y1, x2, y2) around a normalised motion box.

    The square is the box's longer side plus ``margin`` of it on each side
    (motion boxes often cover only the moving limb), never smaller than
    ``min_side`` so the model is not fed an upscaled blur, and shifted to lie
    inside the frame. The whole frame is returned when the motion covers more
    than ``whole_frame_fraction`` of it or cannot fit in a square crop.
    """
    x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in box_norm)
    bw, bh = (x2 - x1) * frame_w, (y2 - y1) * frame_h
    limit = min(frame_w, frame_h)
    whole: Region = (0, 0, frame_w, frame_h)
    if bw * bh > whole_frame_fraction * frame_w * frame_h or max(bw, bh) > limit or min_side >= limit:
        return whole
    side = round(min(max(max(bw, bh) * (1 + 2 * margin), min_side), limit))
    cx, cy = (x1 + x2) / 2 * frame_w, (y1 + y2) / 2 * frame_h
    left = round(min(max(cx - side / 2, 0), frame_w - side))
    top = round(min(max(cy - side / 2, 0), frame_h - side))
    return (left, top, left + side, top + side)


class PersonDetector:
    """Runs the person model on a frame or a pixel region of it.

    One interpreter is not safe to share between threads, so calls are
    serialised with a lock; create one detector per thread for parallelism.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        num_threads: int = 2,
        score_threshold: float = 0.5,
        person_class: int = 0,
    ) -> None:
        interpreter_cls, self.runtime_name = load_interpreter_class()
        self.model_path = Path(model_path) if model_path is not None else default_model()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"person model not found: {self.model_path}")
        self.score_threshold = score_threshold
        self.person_class = person_class
        self.num_threads = num_threads
        self.last_inference_ms: float | None = None  # interpreter.invoke() only

        self._interpreter = interpreter_cls(model_path=str(self.model_path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._lock = threading.Lock()

        (inp,) = self._interpreter.get_input_details()
        _, self.input_h, self.input_w, channels = (int(v) for v in inp["shape"])
        if channels != 3:
            raise ValueError(f"{self.model_path.name}: expected an RGB input, got shape {inp['shape']}")
        self._input_index = inp["index"]
        self._input_dtype = np.dtype(inp["dtype"])
        scale, zero_point = inp["quantization"]
        # Our uint8 models take raw pixels (scale 1, zero point 0); quantise
        # only for a foreign model whose calibration chose other parameters.
        raw_pixels = self._input_dtype != np.uint8 or (float(scale), int(zero_point)) in ((1.0, 0), (0.0, 0))
        self._quant = None if raw_pixels else (float(scale), int(zero_point))
        outputs = self._interpreter.get_output_details()
        if len(outputs) != 4:
            raise ValueError(
                f"{self.model_path.name}: expected the 4 TFLite_Detection_PostProcess outputs, got {len(outputs)}"
            )
        self._out_boxes, self._out_classes, self._out_scores, self._out_count = (o["index"] for o in outputs)

    def _prepare(self, crop: np.ndarray) -> np.ndarray:
        resized = resize_rgb(crop, self.input_h, self.input_w)
        if self._quant is not None:
            scale, zero_point = self._quant
            resized = np.clip(np.round(resized / scale + zero_point), 0, 255).astype(np.uint8)
        # An exact-size region comes back as a strided view of the frame; the
        # interpreter wants a dense buffer.
        return np.ascontiguousarray(resized[None], dtype=self._input_dtype)

    def detect(
        self,
        rgb: np.ndarray,
        region: Region | None = None,
        score_threshold: float | None = None,
    ) -> list[Detection]:
        """Persons in ``rgb`` (HxWx3 uint8), optionally only inside ``region``.

        ``region`` is a pixel crop (x1, y1, x2, y2), clamped to the frame;
        returned boxes are always normalised to the full frame, best first.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
        frame_h, frame_w = rgb.shape[:2]
        x1, y1, x2, y2 = region if region is not None else (0, 0, frame_w, frame_h)
        x1, x2 = max(0, int(x1)), min(frame_w, int(x2))
        y1, y2 = max(0, int(y1)), min(frame_h, int(y2))
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"region {region} is empty inside a {frame_w}x{frame_h} frame")
        threshold = self.score_threshold if score_threshold is None else score_threshold

        tensor = self._prepare(rgb[y1:y2, x1:x2])
        with self._lock:
            self._interpreter.set_tensor(self._input_index, tensor)
            start = time.perf_counter()
            self._interpreter.invoke()
            self.last_inference_ms = (time.perf_counter() - start) * 1000.0
            boxes = self._interpreter.get_tensor(self._out_boxes)[0]
            classes = self._interpreter.get_tensor(self._out_classes)[0]
            scores = self._interpreter.get_tensor(self._out_scores)[0]
            count = int(self._interpreter.get_tensor(self._out_count)[0])

        crop_w, crop_h = x2 - x1, y2 - y1
        found: list[Detection] = []
        for i in range(min(count, len(scores))):
            score = float(scores[i])
            if score < threshold or int(classes[i]) != self.person_class:
                continue
            ymin, xmin, ymax, xmax = np.clip(boxes[i], 0.0, 1.0)
            found.append(
                Detection(
                    score=score,
                    box=(
                        (x1 + float(xmin) * crop_w) / frame_w,
                        (y1 + float(ymin) * crop_h) / frame_h,
                        (x1 + float(xmax) * crop_w) / frame_w,
                        (y1 + float(ymax) * crop_h) / frame_h,
                    ),
                )
            )
        found.sort(key=lambda d: d.score, reverse=True)
        return found
