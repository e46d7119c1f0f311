"""The engine in ``xl-hub run``: a thread that ticks every ``rollout.tick_s``,
sending through the hub's own MQTT transport (``hub.commands.send_command``)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine

from hub.commands import Publisher, send_command
from hub.config_updates import RolloutConfig
from hub.periodic import Periodic
from hub.rollout.engine import RolloutEngine


def _now_ms() -> int:
    return int(time.time() * 1000)


class CommandSender:
    """``engine.Sender`` over the hub's commands table and MQTT publisher."""

    def __init__(self, engine: Engine, publisher: Publisher) -> None:
        self.engine = engine
        self.publisher = publisher

    def send(self, device_id: str, op: str, args: dict[str, Any] | None) -> str:
        return send_command(self.engine, self.publisher, device_id, op, args)


class RolloutRunner:
    def __init__(self, engine: Engine, publisher: Publisher, cfg: RolloutConfig, timezone: str) -> None:
        self.cfg = cfg
        self.engine = RolloutEngine(
            engine,
            CommandSender(engine, publisher),
            timezone=timezone,
            resend_after_s=cfg.resend_after_s,
            clock=_now_ms,
        )
        self._periodic = Periodic("xl-hub-rollout", self.cfg.tick_s, self._pass)

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def _pass(self) -> None:
        self.engine.tick()  # a failing rollout is logged inside and retried next tick
