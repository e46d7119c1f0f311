"""The county path end to end, small: provision → TLS Mosquitto → xl-hub → xl-sim.

200 devices for about 20 s through the same code as ``bench/fleet.py`` (real
``xl-provision``, ``mosquitto``, ``xl-hub run`` and ``xl-sim`` processes):
every event the simulator sent is stored exactly once, every QoS 1 message is
acknowledged, and a device that dies silently (no FIN, no DISCONNECT) is shown
offline in the hub's database once the broker's keepalive expires.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import fleet  # noqa: E402  (bench/fleet.py)

pytestmark = pytest.mark.skipif(not Path(fleet.MOSQUITTO).exists(), reason="mosquitto is not installed")


def test_small_fleet_stores_every_event_once_and_sees_a_silent_death(tmp_path: Path) -> None:
    keepalive = 4  # the broker publishes the will 7..13 s after the last packet (Mosquitto checks every ~6 s)
    args = fleet.parse_args(
        [
            "--devices",
            "200",
            "--seconds",
            "20",
            "--rate",
            "8",
            "--connect-allow",
            "4",
            "--keepalive",
            str(keepalive),
            "--compare-keepalive",
            str(keepalive),
            "--work",
            str(tmp_path),
            "--no-results",
        ]
    )
    try:
        r = fleet.fleet_run(args)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)

    sim = r["sim"]
    assert sim["connected"] == 200 and sim["connect_failures"] == 0
    assert r["events_sent"] > 100
    assert r["qos1_acked"] == r["qos1_sent"], (sim["sent"], sim["acked"])
    assert r["events_stored"] == r["events_sent"] == r["events_distinct"]
    assert r["rejections"] == 0
    for probe in r["probes"]:
        assert not probe.error, probe
        assert probe.offline_s is not None
    silent = [p for p in r["probes"] if p.mode == "silent"]
    closed = [p for p in r["probes"] if p.mode == "closed"]
    # Silent: no sooner than 1.5 x keepalive (the broker cannot know earlier), and not much later.
    assert all(1.5 * keepalive - 1 <= p.offline_s <= 1.5 * keepalive + 10 for p in silent), silent
    assert all(p.offline_s < 5 for p in closed), closed
