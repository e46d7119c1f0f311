"""`make demo` end to end, shortened: provisioning, TLS broker, hub with console
and forwarding, real agents on synthetic scenes, a panic and its acknowledgement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.broker import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_shows_everything() -> None:
    env = {**os.environ, "DEMO_SECONDS": "45", "DEMO_CONSOLE_PORT": str(free_port())}
    out = subprocess.run([sys.executable, "-m", "sim.demo"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=240)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "result               OK" in text
    assert "neighbour acks, first after" in text
    summary = text[text.index("demo summary"):]
    online = summary.split("devices online")[1].split()
    assert online[0] == online[2] == "30", summary  # every household's device is online at the end
