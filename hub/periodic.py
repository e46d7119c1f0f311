"""A job the hub runs on its own daemon thread every few seconds.

The health watcher, rollouts, the online TUF signer, clip policy pushes and
clip retention all run this way. A failing pass is logged and the next one
comes on time: a database hiccup must never end one of them for good.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("xl.hub")


class Periodic:
    """``start()`` / ``stop()``, as the hub's extensions have; ``job`` runs every ``interval_s``."""

    def __init__(self, name: str, interval_s: float, job: Callable[[], object], *, at_start: bool = False) -> None:
        self.name = name
        self.interval_s = interval_s
        self.job = job
        self.at_start = at_start  # one pass at once, before the first interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        if self.at_start:
            self._pass()
        while not self._stop.wait(self.interval_s):
            self._pass()

    def _pass(self) -> None:
        try:
            self.job()
        except Exception:
            log.exception("%s failed; next try in %.0f s", self.name, self.interval_s)
