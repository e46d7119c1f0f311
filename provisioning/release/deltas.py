"""Binary deltas between two versions of a target (bsdiff4).

bsdiff4 works well on what changes between releases here: the agent wheel is
a zip whose unchanged members keep their compressed bytes (the two models are
99 % of it), so a code-only change of a 14.7 MB wheel made a 48 KB delta
(3.4 s to diff on the office machine, 0.1 s to apply). Diffing holds both
files and a suffix array in memory, which the office can spare; applying
holds old + new + patch, which a Pi can.
"""

from __future__ import annotations

import hashlib

import bsdiff4

SUFFIX = ".bsdiff4"


def delta_path(from_sha256: str, to_path: str) -> str:
    """The target path of the delta from the file with ``from_sha256`` to the target ``to_path`` (docs/ota.md)."""
    return f"deltas/{from_sha256}/{to_path}{SUFFIX}"


def make_delta(old: bytes, new: bytes) -> bytes:
    patch: bytes = bsdiff4.diff(old, new)
    return patch


def apply_delta(old: bytes, patch: bytes, expected_sha256: str) -> bytes:
    """The new file from ``old`` and ``patch``; refuses a result whose hash is not ``expected_sha256``."""
    new: bytes = bsdiff4.patch(old, patch)
    got = hashlib.sha256(new).hexdigest()
    if got != expected_sha256:
        raise ValueError(f"delta applied to the wrong base or corrupted: sha256 {got}, expected {expected_sha256}")
    return new
