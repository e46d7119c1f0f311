"""The systemd notify protocol, implemented here (no libsystemd on the Pi image).

``NOTIFY_SOCKET`` names a unix datagram socket; a leading ``@`` means Linux's
abstract namespace (a NUL byte on the wire). With ``WatchdogSec=`` in the unit,
systemd sets ``WATCHDOG_USEC`` and restarts the agent unless ``WATCHDOG=1``
arrives within it; we pet at half that period, and only while ``progress()``
says the agent is really working, so a hung agent is restarted rather than kept
alive by a thread that pets blindly.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)
NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def child_env() -> dict[str, str]:
    """The environment for a tool the agent runs: without systemd's notify variables, because
    systemd's own tools report their exit status to NOTIFY_SOCKET. Seen under systemd in the
    arm64 container (tests/pi): every clock probe's failing timedatectl sent EXIT_STATUS= as
    the agent, and systemd logged a refused notification every 30 s."""
    return {k: v for k, v in os.environ.items() if k not in NOTIFY_VARS}


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s: float | None = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), target)
        except OSError as exc:
            log.debug("sd_notify %s: %s", fields, exc)
            return False
        return True

    def ready(self, status: str = "running") -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")

    def pet(self) -> bool:
        return self.send("WATCHDOG=1")


class Watchdog:
    """Pets systemd's watchdog while ``progress()`` is true."""

    def __init__(self, notifier: Notifier, progress: Callable[[], bool], period_s: float | None = None) -> None:
        self.notifier = notifier
        self.progress = progress
        self.period_s = period_s or (notifier.watchdog_s / 2 if notifier.watchdog_s else None)
        self.pets = 0
        self.withheld = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.period_s is None or not self.notifier.enabled:
            return
        self._thread = threading.Thread(target=self._run, name="xl-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.period_s is not None
        while not self._stop.wait(self.period_s):
            self.check()

    def check(self) -> bool:
        try:
            ok = self.progress()
        except Exception:
            log.exception("watchdog progress check failed")
            ok = False
        if ok:
            self.pets += self.notifier.pet()
        else:
            self.withheld += 1
            self.notifier.status("no progress: withholding the watchdog")
        return ok

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
