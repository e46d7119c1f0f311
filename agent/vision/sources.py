"""Frame sources for replay and tests: video files, image folders, synthetic scenes.

``open_source(spec)`` picks the implementation from a spec string:
``picamera2`` (the Pi camera, see agent.vision.camera), ``synthetic:<scene>``,
a directory of images or a video file (agent.vision.video_file: PyAV, else
OpenCV). Pillow (non-JPEG images) is optional: it is imported only when such a
source is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent.vision.frame import Frame, FrameSource, SourceBase, chroma_of, luma_from_rgb, motion_step
from agent.vision.video_file import VideoFileSource

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def _decode_image(path: Path) -> np.ndarray:
    data = path.read_bytes()
    if path.suffix.lower() in (".jpg", ".jpeg"):
        import simplejpeg

        rgb: np.ndarray = simplejpeg.decode_jpeg(data, colorspace="RGB")
        return rgb
    try:
        from PIL import Image
    except ImportError:
        try:
            import imageio.v3 as iio
        except ImportError as exc:
            raise RuntimeError(f"{path.name}: non-JPEG images need Pillow or imageio installed") from exc
        image = np.asarray(iio.imread(path))
    else:
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"))
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3]).astype(np.uint8, copy=False)


class ImageDirSource(SourceBase):
    """Sorted images in a folder, one frame each, ``ts = index / fps``."""

    def __init__(self, path: str | Path, fps: float = 10.0) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self._fps = float(fps)
        self._files: list[Path] = []
        self._size = (0, 0)
        self._index = 0

    def open(self) -> None:
        if not self.path.is_dir():
            raise FileNotFoundError(f"image directory not found: {self.path}")
        self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {self.path}")
        self._index = 0
        self._size = (0, 0)

    def read(self) -> Frame | None:
        if self._index >= len(self._files):
            return None
        index = self._index
        self._index += 1
        path = self._files[index]
        rgb = _decode_image(path)
        h, w = rgb.shape[:2]
        if self._size == (0, 0):
            self._size = (w, h)
        elif self._size != (w, h):
            raise ValueError(f"{path.name} is {w}x{h}, the first image was {self._size[0]}x{self._size[1]}")
        step = motion_step(w)
        return Frame(
            index / self._fps,
            index,
            luma_from_rgb(rgb, step),
            (w, h),
            rgb=rgb,
            chroma=chroma_of(rgb[::step, ::step]),
        )

    def close(self) -> None:
        self._files = []


def open_source(spec: str, *, fps: float | None = None, **options: Any) -> FrameSource:
    """Build (not open) the source a spec names."""
    if spec.startswith("synthetic:"):
        from agent.vision.synthetic import SyntheticSource

        return SyntheticSource.from_spec(spec, fps=fps, **options)
    if spec == "picamera2" or spec.startswith("picamera2:"):
        from agent.vision.camera import PicameraSource

        camera_num = int(spec.split(":", 1)[1]) if ":" in spec else 0
        return PicameraSource(camera_num=camera_num, fps=fps or 10.0, **options)
    path = Path(spec)
    if path.is_dir():
        return ImageDirSource(path, fps=fps or 10.0)
    if path.is_file():
        return VideoFileSource(path, fps=fps)
    raise FileNotFoundError(
        f"no such source {spec!r}: expected picamera2, synthetic:<scene>, an image folder or a video file"
    )
