"""What systemd does with firmware_config/xueliang-agent.service, for one device in a test.

The unit's lines it plays::

    ExecStartPre=-/usr/bin/python3 /opt/xueliang/guard.py     the crash-loop guard, failures ignored
    ExecStart=/opt/xueliang/current/venv/bin/xl-agent run --config …
    WorkingDirectory=/var/lib/xueliang
    Restart=always, RestartSec=…

under a test's own root (``--root``/``--state-dir`` for the guard, as the unit
would pass for non-default paths). ``current`` is resolved at every start, so
a switch of release or a rollback takes effect through a real restart of a
real process. The guard runs with ``-I`` (no current directory, no
PYTHONPATH, no user site): like /usr/bin/python3 on a device, it cannot see
the agent. Each start is recorded (the release ``current`` named, the exit
status) so a test can see a crash loop happen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Start:
    release: str | None  # what ``current`` named when the agent was started
    guard: str  # what the guard printed
    started: float  # time.monotonic()
    exit_code: int | None = None


@dataclass
class Unit:
    root: Path  # update.root: releases/, current, guard.py
    state_dir: Path  # update.state_dir
    config: Path
    workdir: Path  # WorkingDirectory=
    log: Path
    env: dict[str, str] = field(default_factory=dict)  # added to the environment of both commands
    restart_sec: float = 0.5
    python: str = sys.executable  # /usr/bin/python3 on a device
    starts: list[Start] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"unit-{self.config.parent.name}", daemon=True)

    def start(self) -> Unit:
        self._thread.start()
        return self

    def release(self) -> str | None:
        try:
            return os.readlink(self.root / "current").rpartition("/")[2]
        except OSError:
            return None

    def _environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(self.env)
        return env

    def _loop(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            while not self._stop.is_set():
                guard = subprocess.run(
                    [self.python, "-I", str(self.root / "guard.py"), "--root", str(self.root),
                     "--state-dir", str(self.state_dir)],
                    capture_output=True, text=True, timeout=60, cwd="/", env=self._environ(), check=False,
                )  # fmt: skip
                said = (guard.stdout + guard.stderr).strip()
                if said:
                    out.write(f"--- guard: {said}\n".encode())
                entry = Start(self.release(), said, time.monotonic())
                out.write(f"--- start {len(self.starts) + 1} on {entry.release}\n".encode())
                out.flush()
                with self._lock:
                    if self._stop.is_set():
                        return
                    self._proc = subprocess.Popen(
                        [str(self.root / "current" / "venv" / "bin" / "xl-agent"), "run", "--config", str(self.config)],
                        stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, env=self._environ(),
                        start_new_session=True,
                    )  # fmt: skip
                    self.starts.append(entry)
                entry.exit_code = self._proc.wait()
                out.write(f"--- exited with status {entry.exit_code}\n".encode())
                out.flush()
                self._stop.wait(self.restart_sec)

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self._thread.join(timeout)
