"""What a VideoSlice says about its MP4, read from the file's own boxes (ISO/IEC 14496-12).

Duration (``mvhd``), the video track's pixel size (``tkhd``) and its codec
(the first ``stsd`` entry: ``avc1``/``avc3`` for H.264). Read here rather than
trusted from the device or decoded with PyAV: the hub does not depend on
FFmpeg, and the platform must be told what the file really holds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mp4Info:
    duration_s: float
    width: int
    height: int
    codec: str  # the sample entry's four characters, e.g. "avc1"


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in ``data[start:end]``."""
    out = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            if pos + 16 > end:
                raise ValueError("truncated 64-bit box size")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            head = 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            raise ValueError(f"box {kind!r} at {pos} runs past its parent")
        out.append((kind, pos + head, pos + size))
        pos += size
    return out


def _find(data: bytes, start: int, end: int, kind: bytes) -> list[tuple[int, int]]:
    return [(s, e) for k, s, e in _boxes(data, start, end) if k == kind]


def mp4_info(data: bytes) -> Mp4Info:
    """ValueError unless ``data`` is an MP4 with a movie header and a video track."""
    top = _boxes(data, 0, len(data))
    if not top or top[0][0] != b"ftyp":
        raise ValueError("not an MP4: the file does not start with an ftyp box")
    moov = [(s, e) for k, s, e in top if k == b"moov"]
    if not moov:
        raise ValueError("MP4 without a moov box (an unfinished recording?)")
    m_start, m_end = moov[0]
    mvhd = _find(data, m_start, m_end, b"mvhd")
    if not mvhd:
        raise ValueError("MP4 without a movie header")
    pos = mvhd[0][0]
    if data[pos] == 1:
        timescale, duration = struct.unpack_from(">IQ", data, pos + 20)
    else:
        timescale, duration = struct.unpack_from(">II", data, pos + 12)
    if timescale == 0:
        raise ValueError("MP4 movie header with timescale 0")
    for t_start, t_end in _find(data, m_start, m_end, b"trak"):
        tkhd = _find(data, t_start, t_end, b"tkhd")
        if not tkhd:
            continue
        pos = tkhd[0][0]
        at = pos + (88 if data[pos] == 1 else 76)  # past the version-dependent times and the matrix
        width, height = (v >> 16 for v in struct.unpack_from(">II", data, at))  # 16.16 fixed point
        if width <= 0 or height <= 0:
            continue  # an audio or data track
        codec = _codec(data, t_start, t_end)
        return Mp4Info(duration_s=duration / timescale, width=width, height=height, codec=codec)
    raise ValueError("MP4 without a video track")


def _codec(data: bytes, start: int, end: int) -> str:
    span = (start, end)
    for kind in (b"mdia", b"minf", b"stbl", b"stsd"):
        found = _find(data, span[0], span[1], kind)
        if not found:
            return ""
        span = found[0]
    # stsd: version/flags (4) and entry count (4), then the first sample entry box.
    entries = _boxes(data, span[0] + 8, span[1])
    return entries[0][0].decode("latin-1") if entries else ""
