"""agent.update.delta: a bsdiff4 delta is applied only within the signed target's size."""

from __future__ import annotations

import bz2
import importlib
import os
import random

import pytest

from agent.update.delta import bounded_patch

bsdiff4 = importlib.import_module("bsdiff4")


def _pair() -> tuple[bytes, bytes]:
    rng = random.Random(5)
    old = bytes(rng.randrange(256) for _ in range(50_000))
    new = bytearray(old)
    for i in rng.sample(range(len(new)), 500):
        new[i] = rng.randrange(256)
    return old, bytes(new) + b"appended"


def test_a_good_delta_rebuilds_the_target() -> None:
    old, new = _pair()
    assert bounded_patch(bsdiff4, old, bsdiff4.diff(old, new), len(new)) == new


def test_a_header_that_promises_another_size_is_refused_before_anything_is_built() -> None:
    old, new = _pair()
    patch = bsdiff4.diff(old, new)
    with pytest.raises(ValueError, match=r"builds 50008 bytes, the signed target has 100"):
        bounded_patch(bsdiff4, old, patch, 100)
    # The same patch with a header claiming 8 GB: refused without allocating it.
    huge = patch[:24] + bsdiff4.core.encode_int64(8 << 30) + patch[32:]
    with pytest.raises(ValueError, match="the signed target has 50008"):
        bounded_patch(bsdiff4, old, huge, len(new))


def test_a_bz2_bomb_in_a_block_is_refused() -> None:
    old, new = _pair()
    control = bsdiff4.core.encode_int64(0) * 3  # one triple, well formed
    bomb = bz2.compress(b"\0" * (64 << 20))  # 64 MB of zeros in a few dozen bytes
    blocks = [bz2.compress(control), bomb, bz2.compress(b"")]
    header = b"BSDIFF40" + b"".join(bsdiff4.core.encode_int64(n) for n in (len(blocks[0]), len(blocks[1]), len(new)))
    with pytest.raises(ValueError, match="the diff block inflates past"):
        bounded_patch(bsdiff4, old, header + b"".join(blocks), len(new))


def test_garbage_is_a_value_error() -> None:
    old, new = _pair()
    for junk in (b"", b"BSDIFF40", os.urandom(200), b"BSDIFF40" + os.urandom(200)):
        with pytest.raises(ValueError):
            bounded_patch(bsdiff4, old, junk, len(new))
