"""``xl-agent`` under tracemalloc, for bench/agent_footprint.py --tracemalloc.

SIGUSR1 writes the 20 largest live Python allocation sites (file:line, MB,
count) to $XL_TRACEMALLOC_OUT. Tracing slows the agent and adds its own memory,
so the RSS and CPU of a traced run are not the footprint; only the ranking is.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from types import FrameType


def _dump(_sig: int, _frame: FrameType | None) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    with open(os.environ["XL_TRACEMALLOC_OUT"], "w") as out:
        out.write(f"total {total / 2**20:.1f} MB traced\n")
        for s in stats[:20]:
            frame = s.traceback[0]
            out.write(f"{s.size / 2**20:8.2f} MB {s.count:8d}  {frame.filename}:{frame.lineno}\n")


if __name__ == "__main__":
    tracemalloc.start(1)
    signal.signal(signal.SIGUSR1, _dump)
    from agent.cli import main

    sys.exit(main(sys.argv[1:]))
