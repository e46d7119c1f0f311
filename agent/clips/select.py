"""Which ClipEncoder a device uses (``clips.encoder``: auto, hardware, software), and why.

The hardware encoder is picamera2's ``H264Encoder`` over the V4L2 codec
``/dev/video11`` (``bcm2835-codec-encode``), which the Pi Zero 2 W, 3 and 4
have and the Pi 5 does not. picamera2 tells the same way in spirit:
``picamera2.platform`` queries the V4L2 devices for the ISP ("pispbe" is the
Pi 5's, "bcm2835-isp" the older Pis'), ``picamera2.encoders`` uses the
hardware ``H264Encoder`` only on that older platform (VC4) and aliases it to
the software ``LibavH264Encoder`` on the Pi 5, and its ``V4L2Encoder`` opens
``/dev/video11`` by name. We read the device-tree model string (a Pi 5 is
never given the hardware path, whatever devices it has) and look for that
encoder device (by its sysfs name, which needs no ioctl).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MODEL_PATHS = ("proc/device-tree/model", "sys/firmware/devicetree/base/model")
ENCODER_DEVICE = "dev/video11"
ENCODER_NAME_PATH = "sys/class/video4linux/video11/name"
ENCODER_NAME = "bcm2835-codec-encode"
NO_HARDWARE = ("Raspberry Pi 5", "Raspberry Pi 500", "Compute Module 5")  # BCM2712: no H.264 encoder block


@dataclass(frozen=True, slots=True)
class Choice:
    kind: str  # "hardware" (picamera2 H264Encoder) or "software" (libx264 through PyAV)
    reason: str


def model(root: Path = Path("/")) -> str | None:
    """The device-tree model string ("Raspberry Pi 4 Model B Rev 1.4"), or None off a Pi/DT machine."""
    for rel in MODEL_PATHS:
        try:
            return (root / rel).read_bytes().rstrip(b"\x00\n").decode("utf-8", "replace").strip()
        except OSError:
            continue
    return None


def hardware_h264(root: Path = Path("/")) -> tuple[bool, str]:
    """(this machine has the Pi's hardware H.264 encoder, why we think so)."""
    m = model(root)
    if m is None or "Raspberry Pi" not in m:
        return False, f"not a Raspberry Pi (device-tree model {m!r})"
    if any(name in m for name in NO_HARDWARE):
        return False, f"{m}: no hardware H.264 encoder"
    if not (root / ENCODER_DEVICE).exists():
        return False, f"{m}: no /{ENCODER_DEVICE} (the bcm2835-codec V4L2 encoder is not loaded)"
    try:
        name = (root / ENCODER_NAME_PATH).read_text().strip()
    except OSError:
        name = None
    if name is not None and name != ENCODER_NAME:
        return False, f"{m}: /{ENCODER_DEVICE} is {name!r}, not {ENCODER_NAME}"
    return True, f"{m}: hardware encoder /{ENCODER_DEVICE} ({name or 'name unread'})"


def choose(mode: str, source: str, root: Path = Path("/")) -> Choice:
    """The encoder for ``clips.encoder`` = ``mode`` and ``camera.source`` = ``source``.

    Raises ValueError (naming ``clips.encoder``) when ``hardware`` is asked for and cannot be had."""
    if mode == "software":
        return Choice("software", "clips.encoder is software")
    camera = source == "picamera2" or source.startswith("picamera2:")
    has, why = hardware_h264(root)
    if mode == "hardware":
        if not camera:
            raise ValueError(f"clips.encoder: hardware needs camera.source picamera2, not {source!r}")
        if not has:
            raise ValueError(f"clips.encoder: hardware, but {why}; set clips.encoder to auto or software")
        return Choice("hardware", f"clips.encoder is hardware; {why}")
    if not camera:
        return Choice("software", f"source {source!r} is not the Pi camera")
    if has:
        return Choice("hardware", why)
    return Choice("software", why)
