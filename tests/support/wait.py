"""The one way tests wait for something to become true: poll, then fail with what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(check: Callable[[], object], timeout: float = 10.0, what: str = "condition", step: float = 0.05) -> None:
    """Poll ``check`` every ``step`` s until it is truthy; AssertionError naming ``what`` after ``timeout`` s.

    It checks once more at the deadline, so a condition that came true during
    the last sleep is not reported as a timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)
