"""A village's labels on A4 sheets of 3 x 8 (Avery L7159 layout, 63.5 x 33.9 mm), as PDF or PNG.

One label per card, in the order ``xl-provision sd-card --village`` lists the
cards, and each label carries its place (``3/24``) so the installer sticks the
right one on the right Pi. Rendered at 300 dpi with Pillow: the QR modules are
drawn as exact squares, and a CJK font from the system draws the names
(fonts-wqy-microhei or Noto CJK; ``tools/ensure-system.sh`` installs one).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

from provisioning.label import qr_payload

DPI = 300
PAGE_MM = (210.0, 297.0)
COLS, ROWS = 3, 8
LABEL_MM = (63.5, 33.9)
PITCH_MM = (66.0, 33.9)
MARGIN_MM = (7.25, 12.9)  # left, top: centres the grid on the page
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)


class LabelSheetError(RuntimeError):
    pass


@dataclass(frozen=True)
class LabelInfo:
    device_id: str
    household: str
    group: str
    install_date: str
    name: str | None = None


def px(mm: float) -> int:
    return round(mm * DPI / 25.4)


def find_cjk_font() -> str:
    for path in FONT_CANDIDATES:
        if Path(path).is_file():
            return path
    if shutil.which("fc-match"):
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", "sans:lang=zh-cn"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found and Path(found).is_file() and ("wqy" in found.lower() or "cjk" in found.lower()):
            return found
    raise LabelSheetError("no CJK font for the labels' Chinese text: apt install fonts-wqy-microhei")


def _draw_label(draw: ImageDraw.ImageDraw, x0: int, y0: int, info: LabelInfo, place: str, font_path: str) -> None:
    qr = segno.make(qr_payload(info.device_id, info.household, info.group), error="m")
    matrix = [list(row) for row in qr.matrix]
    side = px(LABEL_MM[1] - 5)  # a square a little under the label's height
    border = 2
    n = len(matrix) + 2 * border
    module = side // n
    qx, qy = x0 + px(2), y0 + (px(LABEL_MM[1]) - module * n) // 2
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                left, top = qx + (c + border) * module, qy + (r + border) * module
                draw.rectangle([left, top, left + module - 1, top + module - 1], fill=0)
    bold = ImageFont.truetype(font_path, px(3.0))
    regular = ImageFont.truetype(font_path, px(2.6))
    small = ImageFont.truetype(font_path, px(2.0))
    tx = qx + module * n + px(1.5)
    lines = [
        ("雪亮 Xueliang", bold),
        (info.device_id[:10] + " " + info.device_id[10:], bold),  # 20 digits in two groups, easier to read out
        (f"户 {info.household}" + (f" {info.name}" if info.name else ""), regular),
        (f"组 {info.group}", regular),
        (f"装 {info.install_date}", regular),
    ]
    y: float = y0 + px(3)
    for text, font in lines:
        draw.text((tx, y), text, fill=0, font=font)
        y += font.size + px(1.4)
    right = x0 + px(LABEL_MM[0]) - px(2)
    draw.text((right, y0 + px(LABEL_MM[1]) - px(2.5)), place, fill=0, font=small, anchor="rd")


def render_pages(labels: list[LabelInfo], title: str, font_path: str | None = None) -> list[Image.Image]:
    """One greyscale A4 page per 24 labels; ``title`` (the village) goes in each label's place mark."""
    if not labels:
        raise LabelSheetError("no labels to print")
    font = font_path or find_cjk_font()
    per_page = COLS * ROWS
    pages = []
    for start in range(0, len(labels), per_page):
        page = Image.new("L", (px(PAGE_MM[0]), px(PAGE_MM[1])), 255)
        draw = ImageDraw.Draw(page)
        for i, info in enumerate(labels[start : start + per_page]):
            col, row = i % COLS, i // COLS
            x0, y0 = px(MARGIN_MM[0] + col * PITCH_MM[0]), px(MARGIN_MM[1] + row * PITCH_MM[1])
            _draw_label(draw, x0, y0, info, f"{title} {start + i + 1}/{len(labels)}", font)
        pages.append(page)
    return pages


def write_sheet(labels: list[LabelInfo], title: str, out: Path) -> list[Path]:
    """PDF (all pages in one file) or PNG (``out``, then ``out-2.png`` ...). Returns the files written."""
    pages = render_pages(labels, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".pdf":
        pages[0].save(out, "PDF", resolution=DPI, save_all=True, append_images=pages[1:])
        return [out]
    if suffix == ".png":
        paths = [out if i == 0 else out.with_name(f"{out.stem}-{i + 1}.png") for i in range(len(pages))]
        for page, path in zip(pages, paths, strict=True):
            page.save(path, "PNG", dpi=(DPI, DPI))
        return paths
    raise LabelSheetError(f"{out}: write .pdf or .png")
