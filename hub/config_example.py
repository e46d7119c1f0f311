"""The hub's example config, hub/examples/hub.yaml, generated from its schema (hub/config.py).

``python -m hub.config_example`` rewrites it; ``--check`` fails when the
committed file differs from what the schema gives (tests/hub/test_config_example.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub.config import HubFile
from xlconfig.example import render

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "hub" / "examples" / "hub.yaml"

VALUES = {
    "database.url": '"sqlite:///var/hub.sqlite3"',
    "mqtt.host": '"hub.minqin.example"',
}
# Shown commented: what a county's hub.yaml would uncomment (paths as `xl-provision` writes them).
SAMPLES = {
    "mqtt.tls.ca": "/srv/xl/ca/ca.crt",
    "mqtt.tls.cert": "/srv/xl/ca/clients/hub.crt",
    "mqtt.tls.key": "/srv/xl/ca/clients/hub.key",
    "updates.repo": "/srv/xl/tuf/repo",
    "updates.keys_dir": "/srv/xl/tuf/online",
    "updates.ca": "/srv/xl/ca/ca.crt",
    "updates.cert": "/srv/xl/ca/server.crt",
    "updates.key": "/srv/xl/ca/server.key",
    "forward.viid.base_url": "http://10.62.6.21:8080",
    "forward.viid.gateway_id": "62062100002000000001",
    "forward.viid.password_file": "/etc/xueliang/viid.password",
    "forward.webhook.url": "https://zz.minqin.example/xl/events",
    "forward.webhook.secret_file": "/etc/xueliang/webhook.secret",
}
HEADER = """
xl-hub configuration (`xl-hub run --config FILE`).
Generated from the schema (python -m hub.config_example): every key, its default and what it accepts.
A commented key has the default shown; uncomment it to change it. Only database.url is required.
Any mistake stops the hub at start with one line per key, e.g.
  xl-hub: config error: hub.yaml: mqtt.port: found 70000, expected an integer 1..65535
"""


def example() -> str:
    return render(HubFile, VALUES, SAMPLES, HEADER)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) the hub's example config.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is out of date")
    args = parser.parse_args(argv)
    text = example()
    if EXAMPLE.exists() and EXAMPLE.read_text(encoding="utf-8") == text:
        return 0
    if args.check:
        print(f"{EXAMPLE.relative_to(ROOT)} is out of date: run python -m hub.config_example", file=sys.stderr)
        return 1
    EXAMPLE.write_text(text, encoding="utf-8")
    print(f"wrote {EXAMPLE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
