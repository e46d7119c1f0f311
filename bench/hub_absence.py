"""Upload bytes per minute of a busy device while the hub is away (issue 14, part 2).

A real agent Link + Outbox over TLS, through a counting TCP proxy, to a real
Mosquitto. A receipting subscriber stands in for the hub (it answers every
numbered message with a receipt, as the hub does after its commit). The
device makes the issue's busy load: an event every 2 s and a 12 kB snapshot
every 20 s (about 620 B/s).

Minute 1: the hub is there. Then the hub goes away and Mosquitto restarts
(SIGTERM), so every publication gets PUBACK 0x10 "no matching subscribers",
for ``ABSENT_MIN`` minutes; then the hub returns. Printed: bytes per minute,
and each absent minute as a ratio of the normal one (target: at most 3).
Agent settings are the shipped defaults (receipt timeout 30 s, probe 2→60 s).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common  # noqa: F401  (puts the project on sys.path)
from _common import merge_results, print_table

from agent import outbox as ob
from agent.link import Link
from agent.outbox import Outbox
from protocol.codec import Snapshot, encode, encode_snapshot
from protocol.messages import Event
from protocol.topics import event_topic, snap_topic
from tests.support.broker import run_broker
from tests.support.proxy import CountingProxy
from tests.support.tls import DEVICE, Hub, link_settings, make_pki, tls_config

ABSENT_MIN = int(os.environ.get("XL_BENCH_ABSENT_MIN", "3"))
MINUTE_S = float(os.environ.get("XL_BENCH_MINUTE_S", "60"))
JPEG = b"\xff\xd8" + bytes(12_000) + b"\xff\xd9"


def produce(box: Outbox, stop: threading.Event) -> None:
    n = 0
    while not stop.wait(2.0):
        n += 1
        ev = Event(
            event_id=(1 << 32) + n,
            kind="person",
            phase="start",
            time_ms=int(time.time() * 1000),
            score=80,
            bbox=(112, 204, 331, 912),
            count=1,
            has_snapshot=n % 10 == 0,
        )
        box.put(event_topic(DEVICE), encode(ev), priority=ob.PERSON, kind="person")
        if n % 10 == 0:
            snap = encode_snapshot(Snapshot(ev.event_id, "start", ev.time_ms, 640, 360, JPEG))
            box.put(snap_topic(DEVICE), snap, priority=ob.PERSON_SNAP, kind="snap")


def run() -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="xl-absence-"))
    p = make_pki(tmp / "pki")
    with run_broker(tls_config(p)) as broker:
        # Shared, as the hub subscribes: Mosquitto does not restore them after a restart.
        topics = ["$share/xlhub/xl/v1/+/event", "$share/xlhub/xl/v1/+/snap"]
        hub = Hub(p, broker, topics, client_id="hub")
        proxy = CountingProxy(broker.port).start()
        box = Outbox(tmp / "ob.sqlite3")
        link = Link(
            link_settings(p, proxy.port, keepalive=45, boot=1),
            box,
        )
        stop = threading.Event()
        producer = threading.Thread(target=produce, args=(box, stop), daemon=True)
        link.start()
        producer.start()
        per_minute: list[int] = []

        def minute() -> None:
            before = proxy.up_bytes
            time.sleep(MINUTE_S)
            per_minute.append(proxy.up_bytes - before)
            print(f"minute {len(per_minute)}: {per_minute[-1]} B up, outbox {box.depth}", flush=True)

        minute()  # normal
        hub.close()
        broker.start_again()  # the shared subscriptions are gone: every publication gets 0x10 now
        for _ in range(ABSENT_MIN):
            minute()
        hub = Hub(p, broker, topics, client_id="hub")
        minute()  # recovery: the backlog and the held messages go out
        stop.set()
        link.stop()
        hub.close()
        proxy.close()
        depth = box.depth
        box.close()
    normal, absent, recovery = per_minute[0], per_minute[1:-1], per_minute[-1]
    ratios = [round(b / normal, 2) for b in absent]
    figures = {
        "hub_absence_normal_bytes_per_min": normal,
        "hub_absence_bytes_per_min": absent,
        "hub_absence_ratio_max": max(ratios),
        "hub_absence_recovery_bytes": recovery,
        "hub_absence_outbox_left": depth,
        "hub_absence_probes": link.deliveries.probes,
    }
    print_table(
        "upload while the hub is away (bytes per minute, device → broker)",
        [
            ("normal minute", normal, "B"),
            *[
                (f"absent minute {i + 1}", b, f"B ({r}× normal)")
                for i, (b, r) in enumerate(zip(absent, ratios, strict=True))
            ],
            ("minute after the hub returned", recovery, "B"),
            ("probes sent", link.deliveries.probes, ""),
            ("outbox rows left at the end", depth, ""),
        ],
    )
    merge_results(figures)
    return figures


if __name__ == "__main__":
    sys.exit(0 if run()["hub_absence_ratio_max"] <= 3 else 1)  # type: ignore[operator]
