"""When the backoff starts over (agent/reconnect.py)."""

from __future__ import annotations

import random

from agent.reconnect import Reconnect


def grown(r: Reconnect, n: int) -> Reconnect:
    for _ in range(n):
        r.next_delay()
    return r


def test_a_connection_the_broker_accepted_starts_the_backoff_over() -> None:
    # The field case: back 10 s before a broker restart, the old rule kept the grown delay.
    r = grown(Reconnect(1.0, 60.0, random.Random(1)), 6)
    r.connection_ended(lasted_s=10.0)
    assert r.attempts == 0
    assert r.next_delay() <= 1.0


def test_two_young_deaths_in_a_row_are_a_flap_and_the_delay_keeps_growing() -> None:
    r = Reconnect(1.0, 60.0, random.Random(2))
    r.connection_ended(lasted_s=3.0)  # the first young death still starts over ...
    grown(r, 4)
    r.connection_ended(lasted_s=3.0)  # ... the second, right after it, does not
    assert r.attempts == 4
    r.connection_ended(lasted_s=45.0)  # a stable connection ends the flap
    assert r.attempts == 0


def test_the_delay_is_capped() -> None:
    r = grown(Reconnect(1.0, 60.0, random.Random(3)), 40)
    assert all(r.next_delay() <= 60.0 for _ in range(500))
