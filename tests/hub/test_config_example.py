"""The hub's example config is generated from the schema: committed as generated, and it loads."""

from __future__ import annotations

from hub import config_example
from hub.config import HealthConfig, load_config


def test_committed_example_is_what_the_schema_generates() -> None:
    # Fails when a default, range or description changed without `python -m hub.config_example`.
    assert config_example.EXAMPLE.read_text(encoding="utf-8") == config_example.example()
    assert config_example.main(["--check"]) == 0


def test_example_loads_with_the_schema_defaults() -> None:
    cfg = load_config(config_example.EXAMPLE)
    assert cfg.database_url == "sqlite:///var/hub.sqlite3" and cfg.mqtt.host == "hub.minqin.example"
    assert cfg.health == HealthConfig() and cfg.plugins == {}
    assert "# keepalive_s: 30" in config_example.example() and "# offline_grace_s: 30.0" in config_example.example()
