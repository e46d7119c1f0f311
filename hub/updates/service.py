"""``updates:`` of the hub config → the running parts: the repository server and the online signer
(or the server alone, without the repository, for clip uploads when updates are off)."""

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
    assert cfg.repo and cfg.keys_dir
    server = create_server(engine, cfg, repo=True)
    signer = OnlineSigner(Path(cfg.repo), Path(cfg.keys_dir), cfg.timestamp_refresh_s, signing)
    return server, signer


def create_server(engine: Engine, cfg: UpdatesConfig, *, repo: bool) -> UpdateServer:
    """The devices' HTTPS server, not started: with the TUF repository (``repo``) or
    without it, for the routes other rooms mount (clip uploads with updates off).
    The same TLS, registry gate and connection limits either way."""
    assert cfg.ca and cfg.cert and cfg.key and (cfg.repo or not repo)
    return UpdateServer(
        cfg.repo if repo else None,
        tls_context(cfg.ca, cfg.cert, cfg.key),
        DeviceGate(engine),
        ByteCounter(engine),
        host=cfg.host,
        port=cfg.port,
    )
