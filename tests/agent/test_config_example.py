"""The agent's example configs are generated from the schema: committed as generated, and they load."""

from __future__ import annotations

from pathlib import Path

import yaml

from agent import config, config_example
from provisioning.templates import placeholders, render


def test_committed_examples_are_what_the_schema_generates() -> None:
    # Fails when a default, range or description changed without `python -m agent.config_example`.
    assert config_example.EXAMPLE.read_text(encoding="utf-8") == config_example.example()
    assert config_example.TEMPLATE.read_text(encoding="utf-8") == config_example.template()
    assert config_example.main(["--check"]) == 0


def test_example_loads_with_the_schema_defaults() -> None:
    cfg = config.load(config_example.EXAMPLE)
    assert cfg.broker.keepalive == 50 and cfg.outbox.max_rows == 20_000 and cfg.vision.motion.threshold == 20
    assert cfg.outbox.path == Path("/var/lib/xueliang/outbox.sqlite3")


def test_template_renders_to_a_config_the_agent_accepts() -> None:
    values = {
        "device_id": "62062101011198000123",
        "group": "g0101",
        "household": '"张家 HH1"',
        "broker_url": "mqtts://hub.minqin.example:8883",
        "update_url": "https://hub.minqin.example:8443/tuf/",
        "issued_date": "2026-12-01",
        "armed_from": "22:00",
        "armed_to": "06:00",
    }
    assert placeholders("agent.yaml") == set(values)
    cfg = config.parse(yaml.safe_load(render("agent.yaml", values)), "bundle agent.yaml")
    assert cfg.device.household == "张家 HH1" and cfg.schedule.armed_from == "22:00"
    assert cfg.broker.keepalive == config.BrokerConfig.__dataclass_fields__["keepalive"].default
    assert cfg.update.url == "https://hub.minqin.example:8443/tuf/"


def test_every_commented_default_is_the_schema_default() -> None:
    # The example shows defaults as comments; uncommenting them all must change nothing.
    lines = []
    for line in config_example.example().splitlines():
        stripped = line.lstrip()
        key = stripped[2:].split(":", 1)[0]
        inside_optional = line.startswith(("# simulate", "  # panic_at_s", "  # ack_after_s"))
        if (
            stripped.startswith("# ")
            and key.isidentifier()
            and key.isascii()
            and ":" in stripped
            and not inside_optional
            and key not in ("pir", "led", "buzzer", "button", "pin_factory", "model", "path")
        ):
            line = line.replace("# ", "", 1)
        lines.append(line)
    uncommented = yaml.safe_load("\n".join(lines))
    assert uncommented["broker"]["keepalive"] == 50 and uncommented["vision"]["motion"]["alpha"] == 0.0625
    assert config.parse(uncommented) == config.parse(yaml.safe_load(config_example.example()))
