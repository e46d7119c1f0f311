"""How long a device takes to come back after the broker does (issue 14, part 3).

Two parts:

1. A replay of the field's fault patterns against the reconnect policy
   (agent/reconnect.py, the class the link uses), on a simulated clock, 4,000
   devices each: the lag between the broker's return and the device's next
   successful connection, p50 / p90 / max, for today's policy (reset on an
   accepted connection unless flapping, cap 60 s) and the old one (reset
   only after 30 s connected, cap 300 s). Also the attempts a flapping
   broker gets from one device, and the connection rate the county's 3,312
   devices put on the broker in the worst second after a long outage.
2. A check of the replay against real processes: real agent Links over TLS
   to a real Mosquitto, through the issue's worst case (back from a long
   outage, then a broker restart 10 s later, down 5 s).

Printed and merged into bench/results.json as ``reconnect_*``.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _common  # noqa: F401  (puts the project on sys.path)
from _common import merge_results, print_table

from agent.link import Link, LinkSettings
from agent.outbox import Outbox
from agent.reconnect import Reconnect
from tests.support.broker import run_broker
from tests.support.county_pki import county_pki
from tests.support.tls import DEVICE, GROUP, tls_config
from tests.support.wait import wait_for

DEVICES = 4000
COUNTY = 3312


class OldReconnect(Reconnect):
    """The policy before issue 14: start over only after a connection lasted 30 s."""

    def connection_ended(self, lasted_s: float) -> None:
        if lasted_s >= self.stable_s:
            self.attempts = 0


Outages = Callable[[float | None], list[tuple[float, float]]]  # (down from, down to), given the first reconnect


def replay(
    policy: Reconnect,
    outages: list[tuple[float, float]],
    restart_after_s: float | None = None,
    restart_down_s: float = 5.0,
) -> tuple[float, int]:
    """One device through ``outages`` (broker down intervals, sorted); with
    ``restart_after_s``, a further restart that long after the device's first
    reconnection. Returns (lag after the last return, attempts made)."""
    downs = list(outages)
    t, connected_since, attempts = downs[0][0], -3600.0, 0  # connected for an hour when it starts
    policy.connection_ended(t - connected_since)
    reconnected_once = False
    while True:
        t += policy.next_delay()
        attempts += 1
        down = next(((a, b) for a, b in downs if a <= t < b), None)
        if down is not None:
            continue  # refused: the broker is not there
        last_return = max(b for a, b in downs if b <= t)
        following = [a for a, _ in downs if a > t]
        if restart_after_s is not None and not reconnected_once:
            reconnected_once = True
            downs.append((t + restart_after_s, t + restart_after_s + restart_down_s))
            downs.sort()
            following = [a for a, _ in downs if a > t]
        if not following:
            return t - last_return, attempts
        policy.connection_ended(following[0] - t)  # connected until the next outage
        t = following[0]


def lags(
    make: Callable[[random.Random], Reconnect], outages: list[tuple[float, float]], restart_after_s: float | None = None
) -> tuple[list[float], list[int]]:
    out, tries = [], []
    for seed in range(DEVICES):
        lag, n = replay(make(random.Random(seed)), outages, restart_after_s)
        out.append(lag)
        tries.append(n)
    return out, tries


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


POLICIES: dict[str, Callable[[random.Random], Reconnect]] = {
    "now": lambda rng: Reconnect(1.0, 60.0, rng),
    "old": lambda rng: OldReconnect(1.0, 300.0, rng),
}
FLAPPING = [(float(a), float(a) + 3.0) for a in range(0, 120, 5)]  # up 2 s, down 3 s, for 2 minutes
SCENARIOS: dict[str, tuple[list[tuple[float, float]], float | None]] = {
    "outage_5s": ([(0.0, 5.0)], None),
    "outage_5min": ([(0.0, 300.0)], None),
    "outage_1h": ([(0.0, 3600.0)], None),
    "outage_5min_then_restart": ([(0.0, 300.0)], 10.0),  # the case: back, then a restart 10 s later
    "flapping_2min": (FLAPPING, None),
}


def model() -> dict[str, float]:
    figures: dict[str, float] = {}
    rows = []
    for scenario, (outages, restart) in SCENARIOS.items():
        for name, make in POLICIES.items():
            got, tries = lags(make, outages, restart)
            key = f"reconnect_{scenario}_{name}"
            figures[f"{key}_p50_s"] = round(statistics.median(got), 1)
            figures[f"{key}_p90_s"] = round(pct(got, 0.9), 1)
            figures[f"{key}_max_s"] = round(max(got), 1)
            note = f"p90 {figures[f'{key}_p90_s']:.1f} s, max {figures[f'{key}_max_s']:.1f} s"
            if scenario.startswith("flapping"):
                figures[f"{key}_attempts_median"] = statistics.median(tries)
                note += f", {statistics.median(tries):.0f} attempts while it flapped"
            rows.append((f"{scenario} ({name})", figures[f"{key}_p50_s"], note))
        # The county after a long outage: connections per second in the busiest second.
        for name, make in POLICIES.items():
            if scenario != "outage_1h":
                continue
            got, _ = lags(make, outages)
            rate = max(sum(1 for g in got[:COUNTY] if s <= g < s + 1) for s in range(0, 300))
            figures[f"reconnect_county_peak_per_s_{name}"] = rate
            rows.append((f"county peak after 1 h ({name})", rate, "connections/s at the broker"))
    print_table(f"Lag after the broker returns, s (median; simulated, {DEVICES} devices a case)", rows)
    return figures


def real(links_n: int = 6) -> dict[str, float]:
    """The issue's worst case with real processes: connected 35 s, a 40 s outage
    (long enough to grow the backoff), then a restart 10 s after they are all
    back, down 5 s. The lag is from the second return."""
    with tempfile.TemporaryDirectory(prefix="xl-bench-reconnect-") as tmp:
        ids = [f"{DEVICE[:-2]}{i:02d}" for i in range(links_n)]
        cp = county_pki(Path(tmp) / "pki", ids)  # a certificate each: the broker takes the client id from it
        with run_broker(tls_config(cp.base)) as broker:
            links = []
            for i, dev in enumerate(ids):
                cert, key = cp.devices[dev]
                settings = LinkSettings(dev, GROUP, "127.0.0.1", broker.port, cp.base.ca, cert, key)
                link = Link(settings, Outbox(Path(tmp) / f"ob{i}.sqlite3"), rng=random.Random(i))
                link.start()
                links.append(link)
            wait_for(lambda: all(lk.connected for lk in links), 20, "the links to connect")
            time.sleep(35)  # connected for a while, as a device is before an outage (the replay's hour)
            broker.process.terminate()
            broker.process.wait(10)
            time.sleep(40)
            broker.start_again()
            wait_for(lambda: all(lk.connected for lk in links), 120, "the links to reconnect")
            time.sleep(10)
            broker.process.terminate()
            broker.process.wait(10)
            time.sleep(5)
            broker.start_again()
            back = time.monotonic()
            lag: dict[int, float] = {}
            while len(lag) < links_n and time.monotonic() - back < 120:
                for i, lk in enumerate(links):
                    if lk.connected and i not in lag:
                        lag[i] = time.monotonic() - back
                time.sleep(0.05)
            for lk in links:
                lk.stop()
    values = sorted(lag.values())
    figures = {
        "reconnect_real_restart_after_return_max_s": round(max(values), 1),
        "reconnect_real_restart_after_return_median_s": round(statistics.median(values), 1),
    }
    print_table(
        f"Real links ({links_n}) back 10 s before a 5 s broker restart",
        [
            ("median lag", figures["reconnect_real_restart_after_return_median_s"], "s after the broker returned"),
            ("max lag", figures["reconnect_real_restart_after_return_max_s"], "s (the issue measured 62 s before)"),
        ],
    )
    return figures


def run() -> dict[str, float]:
    figures = model()
    figures.update(real())
    merge_results(figures)
    return figures


if __name__ == "__main__":
    run()
