"""``updates:`` of the hub config → the running parts: the repository server and the online signer."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from hub.config_updates import UpdatesConfig
from hub.updates.access import DeviceGate
from hub.updates.counters import ByteCounter
from hub.updates.online import OnlineSigner, Signing
from hub.updates.server import UpdateServer, tls_context


def create(engine: Engine, cfg: UpdatesConfig, signing: Signing | None = None) -> tuple[UpdateServer, OnlineSigner]:
    """Both parts, not started (``start()``/``stop()`` are the hub's Extension calls).

    The config was checked at load (``updates_problems``): every path is set when enabled."""
    assert cfg.repo and cfg.keys_dir and cfg.ca and cfg.cert and cfg.key
    server = UpdateServer(
        cfg.repo,
        tls_context(cfg.ca, cfg.cert, cfg.key),
        DeviceGate(engine),
        ByteCounter(engine),
        host=cfg.host,
        port=cfg.port,
    )
    signer = OnlineSigner(Path(cfg.repo), Path(cfg.keys_dir), cfg.timestamp_refresh_s, signing)
    return server, signer
