"""`make demo` end to end, shortened: provisioning, TLS broker, hub with console
and forwarding, real agents on synthetic scenes, a panic and its acknowledgement."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sim.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_shows_everything() -> None:
    port = free_port()
    env = {**os.environ, "DEMO_SECONDS": "45", "DEMO_CONSOLE_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The console is served by the hub that `xl-hub run` started, not by a test server.
        deadline, page = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=True, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        if page is None:
            if proc.poll() is None:
                proc.kill()
            out, _ = proc.communicate(timeout=30)
            hub_log = ROOT / "var" / "demo" / "logs" / "hub.log"
            tail = hub_log.read_text(errors="replace")[-2000:] if hub_log.exists() else "(no hub log)"
            raise AssertionError(f"the console never answered\n--- demo output\n{out[-3000:]}\n--- hub log\n{tail}")
        assert page.status_code == 200
        assert "/login" in str(page.url)  # no session: the overview redirects to the login page
        text, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, text[-3000:]
    assert "result               OK" in text
    assert "neighbour acks, first after" in text
    summary = text[text.index("demo summary") :]
    online = summary.split("devices online")[1].split()
    assert online[0] == online[2] == "30", summary  # every household's device is online at the end
