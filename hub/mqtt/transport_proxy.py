"""The hub's side of the MQTT transport process (``hub/mqtt/transport.py``).

Starts the process, restarts it if it dies, turns its chunks of raw messages
into ``Inbound`` lists, and carries acknowledgements and publications to it.
Acknowledgements name the connection ("link") a message came in on: a message
received before a transport restart is never acknowledged on the new
connection, where its packet id may by then mean another message; the broker
re-sends it instead, and storage is idempotent.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from hub.config import MqttConfig
from hub.core.inbound import Inbound
from hub.mqtt import transport as wire
from hub.mqtt.client import make_client

log = logging.getLogger("xl.hub.ingest")

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class TransportProcess:
    def __init__(
        self,
        cfg: MqttConfig,
        client_id: str,
        on_messages: Callable[[list[Inbound]], None],
        on_confirmed: Callable[[Any, bool, int], None],
        on_restart: Callable[[], None] = lambda: None,
    ) -> None:
        self.cfg = cfg
        self.on_restart = on_restart
        self.client_id = client_id
        self.on_messages = on_messages
        self.on_confirmed = on_confirmed
        self.subscribed = threading.Event()
        self.link = 0  # bumped at every (re)start of the process
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._send_lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._refs = itertools.count(1)
        self._replies: dict[int, list[int] | None] = {}
        self._reply_cv = threading.Condition()
        self._reader: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        make_client(self.cfg, self.client_id)  # unreadable TLS files fail here, in the caller, not in the child
        self._spawn()
        self._reader = threading.Thread(target=self._read_loop, name="xl-hub-transport", daemon=True)
        self._reader.start()

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        # The child must import this very checkout, also when the hub runs from
        # a source tree that is not installed.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.mqtt.transport", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            env=env,
            close_fds=True,
        )
        theirs.close()
        conn = Connection(ours.detach())
        conn.send((self.cfg, self.client_id, logging.getLogger().getEffectiveLevel()))
        with self._send_lock:
            self._proc, self._conn = proc, conn
            self.link += 1

    def stop(self, *, retire: bool = False, timeout: float = 10.0) -> None:
        """Disconnect (ending the session if ``retire``) and wait for the process to exit."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._send((wire.STOP, retire))
        self._stopped.wait(timeout)
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("MQTT transport did not exit in %.0fs: killing it", timeout)
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(timeout)
        self.subscribed.clear()
        with self._reply_cv:
            self._reply_cv.notify_all()

    def kill(self, *, restart: bool = True) -> None:
        """SIGKILL the transport, as a crash would (tests of redelivery and restart)."""
        if not restart:
            self._stopping.set()
        if self._proc is not None:
            self._proc.kill()

    # -- requests --------------------------------------------------------------

    def _send(self, record: tuple[Any, ...]) -> None:
        with self._send_lock:
            if self._conn is None:
                raise OSError("the MQTT transport is not running")
            self._conn.send(record)

    def ack(self, batch: Sequence[Inbound], receipts: Sequence[tuple[str, bytes, int]] = ()) -> int:
        """Acknowledge the QoS 1/2 messages of ``batch`` that came in on the current link,
        and publish the batch's end-to-end receipts (on any link: a commit is a commit)."""
        link = self.link
        items = [(m.mid, m.qos) for m in batch if m.qos > 0 and m.link == link]
        if items or receipts:
            try:
                self._send((wire.ACK, items, list(receipts)))
            except OSError:
                return 0  # the transport died: the broker re-sends these
        return len(items)

    def publish(self, items: Sequence[tuple[str, bytes, int, Any]], timeout: float = 5.0) -> list[int]:
        """Queue (topic, payload, qos, track) publications; returns paho's result code for each.

        A non-None ``track`` comes back through ``on_confirmed`` once the broker
        has acknowledged that publication."""
        if not items:
            return []
        ref = next(self._refs)
        with self._reply_cv:
            self._replies[ref] = None
        try:
            self._send((wire.PUBLISH, ref, list(items)))
        except OSError:
            with self._reply_cv:
                self._replies.pop(ref, None)
            return [int(mqtt.MQTT_ERR_NO_CONN)] * len(items)
        with self._reply_cv:
            self._reply_cv.wait_for(lambda: self._replies.get(ref) is not None or self._stopped.is_set(), timeout)
            codes = self._replies.pop(ref, None)
        return codes if codes is not None else [int(mqtt.MQTT_ERR_NO_CONN)] * len(items)

    def is_connected(self) -> bool:
        return self.subscribed.is_set()

    # -- reader thread ---------------------------------------------------------

    def _read_loop(self) -> None:
        backoff = 1.0
        while True:
            clean = self._read_until_gone()
            self.subscribed.clear()
            if self._stopping.is_set() or clean:
                break
            log.error("MQTT transport (pid %s) exited unexpectedly; restarting in %.0fs", self.pid, backoff)
            if self._stopping.wait(backoff):
                break
            backoff = min(backoff * 2, 30.0)
            try:
                self._spawn()
                self.restarts += 1
                self.on_restart()
            except OSError:
                log.exception("could not restart the MQTT transport")
        self._stopped.set()
        with self._reply_cv:
            self._reply_cv.notify_all()

    def _read_until_gone(self) -> bool:
        """Dispatch records until the process closes the socket; True if it said STOPPED."""
        conn, link = self._conn, self.link
        assert conn is not None
        try:
            while True:
                record = conn.recv()
                tag = record[0]
                if tag == wire.MESSAGES:
                    self.on_messages([Inbound(t, p, mid, qos, ms, ret, link) for t, p, mid, qos, ms, ret in record[1]])
                elif tag == wire.QUEUED:
                    with self._reply_cv:
                        if record[1] in self._replies:
                            self._replies[record[1]] = record[2]
                            self._reply_cv.notify_all()
                elif tag == wire.CONFIRMED:
                    self.on_confirmed(record[1], record[2], record[3])
                elif tag == wire.UP:
                    self.subscribed.set()
                elif tag == wire.DOWN:
                    self.subscribed.clear()
                elif tag == wire.STOPPED:
                    return True
        except (EOFError, OSError):
            return False
        finally:
            with self._send_lock:
                if self._conn is conn:
                    self._conn = None
            conn.close()
