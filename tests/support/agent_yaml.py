"""An agent.yaml for tests that run the whole agent against a test broker (tests/support/tls.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.tls import DEVICE, GROUP, Pki


def write_config(tmp_path: Path, p: Pki, port: int, **sections: Any) -> Path:
    doc: dict[str, Any] = {
        "device": {"id": DEVICE, "group": GROUP, "household": "HH0123"},
        "broker": {
            "url": f"mqtts://127.0.0.1:{port}",
            "ca": str(p.ca),
            "cert": str(p.cert),
            "key": str(p.key),
            "keepalive": 10,
            "backoff_base_s": 0.2,
            "backoff_cap_s": 1.0,
        },
        "outbox": {"path": str(tmp_path / "state" / "outbox.sqlite3")},
        "health": {"interval_s": 5},
        "camera": {"source": "synthetic:quiet", "width": 320, "height": 180, "fps": 10},
        "vision": {"detect": {"enabled": False}},
        "state_dir": str(tmp_path / "state"),
    }
    doc.update(sections)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path
