"""Hub configs for tests: the real schema's parse, with fast batches and checks, no metrics port."""

from __future__ import annotations

import uuid
from dataclasses import replace

from hub.config import HubConfig, parse_config


def hub_config(db_url: str, port: int, **sections: dict[str, object]) -> HubConfig:
    raw: dict[str, object] = {
        "database": {"url": db_url},
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": f"hub-{uuid.uuid4().hex[:8]}"},
        "ingest": {"batch_ms": 10},
        "health": {"check_interval_s": 0.5},
        "metrics": {"enabled": False},
    }
    for name, values in sections.items():
        merged = dict(raw.get(name, {}))  # type: ignore[call-overload]
        merged.update(values)
        raw[name] = merged
    return parse_config(raw)


def with_client_id(cfg: HubConfig, client_id: str) -> HubConfig:
    return replace(cfg, mqtt=replace(cfg.mqtt, client_id=client_id))
