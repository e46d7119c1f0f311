"""``clips:`` of the hub config → the running parts: the upload route on the
devices' mTLS server (the update server, with or without its TUF repository),
retention, and the policy pusher."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine

from hub.clips.policy import PolicyPusher
from hub.clips.receive import PREFIX, ClipReceiver, OnStored
from hub.clips.retention import Retention
from hub.commands import Publisher
from hub.config_clips import ClipsConfig
from hub.updates.server import UpdateServer


class Part(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def create(
    engine: Engine,
    cfg: ClipsConfig,
    server: UpdateServer,
    publisher: Publisher,
    on_stored: OnStored | None = None,
) -> tuple[ClipReceiver, list[Part]]:
    """Mounts ``/clips/`` on ``server`` (not yet started); the parts to start and stop."""
    root = Path(cfg.path)
    root.mkdir(parents=True, exist_ok=True)
    receiver = ClipReceiver(engine, root, on_stored)
    server.mount(PREFIX, receiver)
    parts: list[Part] = [
        Retention(
            engine, root, cfg.keep_days, cfg.max_bytes, cfg.retention_interval_s, keep_days_alert=cfg.keep_days_alert
        ),
        PolicyPusher(engine, publisher, cfg),
    ]
    return receiver, parts
