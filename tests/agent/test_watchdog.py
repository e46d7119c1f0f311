"""sd_notify over a real unix datagram socket, abstract namespace included."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from agent.watchdog import Notifier, Watchdog


def _listen(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    sock.settimeout(2)
    return sock


def test_notify_on_a_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    sock = _listen(path)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.enabled and n.watchdog_s == 20.0
    assert n.ready("device x")
    assert sock.recv(256) == b"READY=1\nSTATUS=device x"
    sock.close()


def test_watchdog_pets_only_while_progressing() -> None:
    address = f"@xl-test-{uuid.uuid4().hex}"
    sock = _listen(address)
    progress = [True]
    dog = Watchdog(Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}), lambda: progress[0])
    assert dog.period_s == 0.5
    assert dog.check()
    assert sock.recv(64) == b"WATCHDOG=1"
    progress[0] = False
    assert not dog.check()
    assert sock.recv(128) == b"STATUS=no progress: withholding the watchdog"
    assert dog.pets == 1 and dog.withheld == 1
    sock.close()


def test_no_socket_no_watchdog() -> None:
    n = Notifier({})
    assert not n.enabled and not n.ready() and n.watchdog_s is None
    other_pid = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_s is None  # meant for another process


def test_tools_the_agent_runs_do_not_inherit_the_notify_socket(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """systemd's tools send EXIT_STATUS= to NOTIFY_SOCKET; a child must not speak for the agent."""
    from agent.clock import probe_sync

    seen = tmp_path / "env"
    tool = tmp_path / "timedatectl"
    tool.write_text(f"#!/bin/sh\nenv > {seen}\necho yes\n")
    tool.chmod(0o755)
    monkeypatch.setenv("NOTIFY_SOCKET", "@xl-test")
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert probe_sync(tmp_path / "no-flag", timedatectl=str(tool)) == "synced"
    env = seen.read_text()
    assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env and "PATH=" in env
