"""Applying a bsdiff4 delta without trusting its header (agent.update.tuf_client uses it)."""

from __future__ import annotations

import bz2
from typing import Any


def bounded_patch(bsdiff4: Any, old: bytes, patch: bytes, length: int) -> bytes:
    """bsdiff4.patch, but never building more than the signed target's ``length``.

    bsdiff4 itself allocates whatever its header says and bunzips each block in
    full before anything is checked; a delta is a signed target, so only the
    office's key could make a bomb, but a device should not trust even that with
    its 512 MB. The header's output size must equal the signed length, and no
    block may inflate past what that size allows.
    """
    if patch[:8] != b"BSDIFF40" or len(patch) < 32:
        raise ValueError("not a bsdiff4 patch")
    decode = bsdiff4.core.decode_int64
    len_control, len_diff, len_dst = (decode(patch[8 + 8 * i : 16 + 8 * i]) for i in range(3))
    if len_dst != length:
        raise ValueError(f"the patch builds {len_dst} bytes, the signed target has {length}")
    if len_control < 0 or len_diff < 0 or 32 + len_control + len_diff > len(patch):
        raise ValueError("truncated patch")
    blocks = (patch[32 : 32 + len_control], patch[32 + len_control : 32 + len_control + len_diff])
    extra = patch[32 + len_control + len_diff :]
    # A control triple (24 bytes) moves at least one byte, or the patch loops: at most len_dst + 1 of them.
    control = _bunzip(blocks[0], 24 * (len_dst + 1), "control")
    if len(control) % 24:
        raise ValueError("invalid control block")
    return bytes(bsdiff4.core.patch(old, len_dst, control, _bunzip(blocks[1], len_dst, "diff"),
                                    _bunzip(extra, len_dst, "extra")))  # fmt: skip


def _bunzip(block: bytes, limit: int, what: str) -> bytes:
    decompressor = bz2.BZ2Decompressor()
    out = decompressor.decompress(block, max_length=limit + 1)
    if len(out) > limit:
        raise ValueError(f"the {what} block inflates past the target's {limit} bytes")
    if not decompressor.eof:
        raise ValueError(f"the {what} block is truncated")
    return out
