"""The MQTT transport process: restarts after a crash, stale acks are held back,
and it does not outlive the hub process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hub.core.inbound import Inbound
from hub.db import make_engine
from hub.service import Hub
from protocol.topics import event_topic
from tests.support.broker import run_broker
from tests.support.events import motion_payload
from tests.support.hub_config import hub_config, with_client_id
from tests.support.hub_db import count_rows, make_fleet
from tests.support.mqtt_clients import Peer
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; it has exited all the same.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[1].split()[0] != "Z"


def test_a_killed_transport_is_restarted_and_nothing_is_lost(db_url: str) -> None:
    engine = make_engine(db_url)
    dev = make_fleet(engine, groups=1, per_group=1)["g000"][0]
    with run_broker() as broker:
        hub = Hub(with_client_id(hub_config(db_url, broker.port), "hub-restart"), engine=engine)
        hub.start()
        agent = Peer(broker.port, dev)
        try:
            assert hub.worker.subscribed.wait(10)
            for i in range(10):
                agent.publish(event_topic(dev), motion_payload(i))
            wait_for(lambda: count_rows(engine) == 10, what="first events")
            first_pid = hub.worker.transport.pid
            hub.worker.transport.kill()
            wait_for(lambda: not hub.worker.subscribed.is_set(), what="the hub to notice the crash")
            for i in range(10, 30):  # published while the hub has no MQTT connection
                agent.publish(event_topic(dev), motion_payload(i))
            wait_for(lambda: count_rows(engine) == 30, timeout=20, what="events after the restart")
            assert hub.worker.transport.restarts == 1
            assert hub.metrics.transport_restarts._value.get() == 1
            assert hub.worker.transport.pid != first_pid
            # The broker delivers the session's queued events as soon as the new connection is up,
            # which may be before the worker has seen its SUBACK: subscribed follows, not leads.
            wait_for(hub.worker.subscribed.is_set, 5, "the restarted transport's subscription")
        finally:
            agent.close()
            hub.stop()
    engine.dispose()


def test_a_batch_from_before_a_restart_is_stored_but_not_acked_on_the_new_link(db_url: str) -> None:
    engine = make_engine(db_url)
    dev = make_fleet(engine, groups=1, per_group=1)["g000"][0]
    with run_broker() as broker:
        hub = Hub(with_client_id(hub_config(db_url, broker.port), "hub-stale"), engine=engine)
        release = threading.Event()
        held = threading.Event()
        original = hub.worker.processor.process

        def slow_first(batch):  # type: ignore[no-untyped-def]
            if not held.is_set():
                held.set()
                release.wait(20)
            return original(batch)

        hub.worker.processor.process = slow_first  # type: ignore[method-assign]
        acked: list[int] = []  # how many messages each ack call sent to the broker
        real_ack = hub.worker.transport.ack

        def counting_ack(batch, receipts=()):  # type: ignore[no-untyped-def]
            acked.append(real_ack(batch, receipts))
            return acked[-1]

        hub.worker.transport.ack = counting_ack  # type: ignore[method-assign]
        hub.start()
        agent = Peer(broker.port, dev)
        try:
            assert hub.worker.subscribed.wait(10)
            for i in range(5):
                agent.publish(event_topic(dev), motion_payload(i))
            assert held.wait(10)
            hub.worker.transport.kill()  # the batch in hand now belongs to a dead connection
            wait_for(
                lambda: hub.worker.transport.restarts == 1 and hub.worker.subscribed.is_set(),
                timeout=20,
                what="the restarted transport",
            )
            release.set()
            # The broker re-sends the unacknowledged five on the new link; they are
            # duplicates by then, stored once, and acknowledged there.
            wait_for(lambda: hub.metrics.duplicates._value.get() >= 1, timeout=20, what="the redelivery")
            assert acked[0] == 0
            assert count_rows(engine) == 5
        finally:
            release.set()
            agent.close()
            hub.stop()
    engine.dispose()


def test_heartbeats_are_shed_but_qos1_is_kept_when_the_writer_is_far_behind(sqlite_url: str) -> None:
    hub = Hub(hub_config(sqlite_url, 1), engine=make_engine(sqlite_url))  # never started: the writer never takes
    hub.worker.PENDING_LIMIT = 5  # type: ignore[misc]

    def chunk(qos: int, n: int) -> list[Inbound]:
        return [Inbound(f"xl/v1/{'6' * 20}/health", b"{}", i, qos, 0) for i in range(n)]

    hub.worker._on_messages(chunk(0, 6))  # under the limit when it arrives: kept
    hub.worker._on_messages(chunk(0, 4) + chunk(1, 3))
    hub.worker._on_messages(chunk(1, 2))
    waiting = [m for c in list(hub.worker.inbox.queue) for m in c]
    assert [m.qos for m in waiting] == [0] * 6 + [1] * 5
    assert hub.metrics.shed._value.get() == 4
    assert hub.worker._pending == 11


def test_the_transport_exits_when_the_hub_process_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    with run_broker() as broker:
        script = textwrap.dedent(f"""
            import sys, time
            from hub.db import make_engine, upgrade
            from hub.service import Hub
            from tests.support.hub_config import hub_config
            engine = make_engine({url!r})
            upgrade(engine)
            hub = Hub(hub_config({url!r}, {broker.port}), engine=engine)
            hub.start()
            assert hub.worker.subscribed.wait(10)
            print(hub.worker.transport.pid, flush=True)
            time.sleep(600)
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            child = int(proc.stdout.readline())
            assert _alive(child)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            deadline = time.monotonic() + 10
            while _alive(child) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _alive(child), "the MQTT transport outlived the hub"
        finally:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_process_group_still_acks_the_last_batch(tmp_path: Path, signum: int) -> None:
    """Ctrl-C in a terminal, or systemd's SIGTERM, reaches the transport too. The
    hub must still finish the batch in hand, have it acknowledged and stop the
    transport itself: otherwise the broker re-sends the batch at the next start."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    engine = make_engine(url)
    dev = make_fleet(engine, groups=1, per_group=1)["g000"][0]
    with run_broker() as broker:
        script = textwrap.dedent(f"""
            import threading, time
            from hub.db import make_engine
            from hub.service import Hub
            from tests.support.hub_config import hub_config, with_client_id
            hub = Hub(with_client_id(hub_config({url!r}, {broker.port}), "hub-signal"), engine=make_engine({url!r}))
            original = hub.worker.processor.process
            def slow(batch):
                print("batch", len(batch), flush=True)
                time.sleep(1.0)  # the signal lands while this batch is in hand
                return original(batch)
            hub.worker.processor.process = slow
            def report():
                assert hub.worker.subscribed.wait(10)
                print("up", flush=True)
            threading.Thread(target=report, daemon=True).start()
            hub.run_forever()
            print("restarts", hub.worker.transport.restarts, flush=True)
        """)
        proc = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        agent = Peer(broker.port, dev)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "up"
            for i in range(5):
                agent.publish(event_topic(dev), motion_payload(i))
            assert proc.stdout.readline().startswith("batch")
            os.killpg(proc.pid, signum)
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert "restarts 0" in out
            assert "exited unexpectedly" not in err
            assert count_rows(engine) == 5
            # A second start resumes the session: an unacknowledged batch would come back now.
            hub = Hub(with_client_id(hub_config(url, broker.port), "hub-signal"), engine=engine)
            hub.start()
            try:
                assert hub.worker.subscribed.wait(10)
                time.sleep(1.5)
                assert hub.metrics.duplicates._value.get() == 0
                assert hub.metrics.messages.labels("event")._value.get() == 0
            finally:
                hub.stop()
        finally:
            agent.close()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    engine.dispose()
