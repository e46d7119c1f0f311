"""glibc malloc settings for the long-running agent.

By default glibc raises its mmap threshold each time a large block is freed,
so after the first few frames every 1280x720x3 buffer (2.7 MB) comes from the
heap or a per-thread arena instead of its own mapping. Freed, those blocks
stay resident as fragmentation: on the busy synthetic scene the process grew
by about 28 MB that nothing used (bench/agent_footprint.py). A fixed
threshold keeps big buffers in their own mappings, which go back to the
kernel when freed, and two arenas are enough for an agent whose threads do
little allocation besides the capture thread.

A value set in the environment (``MALLOC_MMAP_THRESHOLD_`` and friends, read
by glibc at start) is left alone, so an operator can still override.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

# mallopt(3) parameter numbers (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

SETTINGS = (
    (_M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 128 * 1024),
    (_M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 256 * 1024),
    (_M_ARENA_MAX, "MALLOC_ARENA_MAX", 2),
)


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt  # noqa: B018 - glibc only; musl and others have no mallopt
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def tune() -> list[str]:
    """Apply the settings glibc was not given in the environment; returns what was set.

    Call before the agent starts its threads: arenas are chosen per thread at
    its first allocation.
    """
    libc = _libc()
    if libc is None:
        return []
    done = []
    for param, env, value in SETTINGS:
        if env in os.environ:
            continue
        if libc.mallopt(param, value) == 1:
            done.append(f"{env.rstrip('_')}={value}")
        else:
            log.debug("mallopt(%d, %d) refused", param, value)
    return done


def trim() -> None:
    """Give the heap's free tail and free whole pages back to the kernel (start-up leaves many)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
