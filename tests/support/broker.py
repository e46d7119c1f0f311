"""Start a real Mosquitto on a free loopback port for a test.

Tests never use the machine's shared broker on 1883: each gets its own
instance with the configuration under test (plain, or the TLS/ACL config that
provisioning generates), so tests cannot see each other's messages.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sim.ports import free_port, wait_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@dataclass
class Broker:
    port: int
    config: Path
    workdir: Path
    process: subprocess.Popen[bytes]

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads ACL, CRL-independent settings and passwords."""
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill_hard(self) -> None:
        """SIGKILL, as a crash or power cut would: nothing since the last autosave is kept."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def start_again(self, *, hard: bool = False) -> None:
        """Restart on the same port and config (for outage tests); ``hard``: SIGKILL first."""
        if hard:
            self.kill_hard()
        self.stop()
        self.process = _spawn(self.config, self.workdir)
        wait_port(self.port)

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _spawn(config: Path, workdir: Path) -> subprocess.Popen[bytes]:
    out = open(workdir / "mosquitto.stdout", "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=out, stderr=subprocess.STDOUT)


@contextmanager
def run_broker(config_body: str = "", *, port: int | None = None, workdir: Path | None = None) -> Iterator[Broker]:
    """Run Mosquitto with ``config_body`` plus a listener line on a free port.

    ``config_body`` may use ``{port}`` and ``{workdir}`` placeholders. With an
    empty body the broker is a plain anonymous one (for tests of our MQTT
    logic that do not care about TLS).
    """
    own_dir = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="xl-mosq-")) if workdir is None else workdir
    port = port or free_port()
    if not config_body:
        config_body = "listener {port} 127.0.0.1\nallow_anonymous true\n"
    body = config_body.replace("{port}", str(port)).replace("{workdir}", str(wd))
    if os.geteuid() == 0 and "\nuser " not in "\n" + body:
        # Mosquitto started as root drops to the 'mosquitto' user and then
        # cannot read 0600 keys owned by root; stay root for the test.
        body = "user root\n" + body
    body += f"\nlog_dest file {wd / 'mosquitto.log'}\nlog_type all\n"
    config = wd / "mosquitto.conf"
    config.write_text(body)
    broker = Broker(port=port, config=config, workdir=wd, process=_spawn(config, wd))
    try:
        wait_port(port)
        yield broker
    finally:
        broker.stop()
        if own_dir:
            shutil.rmtree(wd, ignore_errors=True)
