"""The agent's two example configs, generated from its schema (agent/config.py).

- ``agent/examples/agent.yaml``: a complete example for a person reading it.
- ``firmware_config/agent.yaml``: the template ``xl-provision`` renders into
  each device's SD-card bundle (``@{...}`` placeholders, see provisioning/templates.py).

``python -m agent.config_example`` rewrites both; ``--check`` fails when a
committed file differs from what the schema gives (tests/agent/test_config_example.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from agent.config import AgentFile
from agent.vision.motion import MotionSettings
from xlconfig.example import render

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "agent" / "examples" / "agent.yaml"
TEMPLATE = ROOT / "firmware_config" / "agent.yaml"

# What an installer would uncomment: the county harness's pins, a motion tweak.
SAMPLES = {
    "outbox.path": "/var/lib/xueliang/outbox.sqlite3",
    "gpio.pir": 22,
    "gpio.led": 17,
    "gpio.buzzer": 18,
    "gpio.button": 27,
    "gpio.pin_factory": "lgpio",
    "vision.detect.model": "/etc/xueliang/person.tflite",
    "vision.events.motion_events": "auto",
    "simulate.panic_at_s": 30,
    "simulate.ack_after_s": 5,
    # The medium preset's values: the motion defaults live in agent.vision.motion, not here.
    **{
        f"vision.motion.{f.name}": getattr(MotionSettings(), f.name)
        for f in dataclasses.fields(MotionSettings)
        if f.name != "masks"
    },
}

_TLS = {
    "broker.ca": "/etc/xueliang/tls/ca.crt",
    "broker.cert": "/etc/xueliang/tls/device.crt",
    "broker.key": "/etc/xueliang/tls/device.key",
}

EXAMPLE_VALUES = {
    "device.id": '"62062101011198000123"',
    "device.group": "g0101-03",
    "device.household": "HH0123",
    "broker.url": "mqtts://hub.minqin.example:8883",
    **_TLS,
    "schedule.from": '"21:00"',
    "schedule.to": '"06:00"',
    "schedule.timezone": '"Asia/Shanghai"',
}
EXAMPLE_HEADER = """
xl-agent configuration: /etc/xueliang/agent.yaml (or `xl-agent run --config FILE`).
Generated from the schema (python -m agent.config_example): every key, its default and what it accepts.
A commented key has the default shown; uncomment it to change it.
Checked at start: any mistake is reported with its key, e.g.
  broker.url: found 'mqtt://hub:1883', expected mqtts://host:port (TLS only; ...)
Run `xl-agent check --config FILE` after editing it.
"""

# Placeholders provisioning/bundle.py fills; household comes already quoted (a JSON string).
TEMPLATE_VALUES = {
    "device.id": '"@{device_id}"',
    "device.group": '"@{group}"',
    "device.household": "@{household}",
    "broker.url": '"@{broker_url}"',
    **_TLS,
    "update.url": '"@{update_url}"',
    "schedule.from": '"@{armed_from}"',
    "schedule.to": '"@{armed_to}"',
    "schedule.timezone": '"Asia/Shanghai"',  # the county's, stated rather than left to a default
}
TEMPLATE_HEADER = """
xl-agent configuration for ONE device, written by `xl-provision` on @{issued_date}.
Installed to /etc/xueliang/agent.yaml by first-boot.sh; check it with
  xl-agent check --config /etc/xueliang/agent.yaml
The device section must match the certificate (CN = device id): re-provision, do not edit it.
Generated from the schema (python -m agent.config_example); a commented key shows its default.
"""


def example() -> str:
    return render(AgentFile, EXAMPLE_VALUES, SAMPLES, EXAMPLE_HEADER)


def template() -> str:
    return render(AgentFile, TEMPLATE_VALUES, SAMPLES, TEMPLATE_HEADER)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) the agent's example configs.")
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is out of date")
    args = parser.parse_args(argv)
    stale = 0
    for path, text in ((EXAMPLE, example()), (TEMPLATE, template())):
        if path.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            print(f"{path.relative_to(ROOT)} is out of date: run python -m agent.config_example", file=sys.stderr)
            stale = 1
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
