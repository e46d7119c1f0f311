"""hub.periodic: the hub's background jobs survive a failing pass and stop when asked."""

from __future__ import annotations

import threading

from hub.periodic import Periodic
from tests.support.wait import wait_for


def test_a_failing_pass_is_logged_and_the_next_one_still_runs() -> None:
    calls: list[int] = []

    def job() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("the database went away")

    p = Periodic("xl-test", 0.02, job, at_start=True)
    p.start()
    try:
        wait_for(lambda: len(calls) >= 3)
    finally:
        p.stop()
    assert not any(t.name == "xl-test" for t in threading.enumerate())


def test_without_at_start_the_first_pass_waits_an_interval() -> None:
    ran = threading.Event()
    p = Periodic("xl-test-wait", 30.0, ran.set)
    p.start()
    p.stop()
    assert not ran.is_set()
