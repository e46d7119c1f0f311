"""Running the console: inside ``xl-hub run`` (an Extension on the hub's MQTT
client) or alone (``xl-hub console``, with its own MQTT client for commands)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import uvicorn
from sqlalchemy import Engine

from hub.commands import PahoPublisher, Publisher
from hub.config import ConfigError, HubConfig
from hub.config_console import ConsoleSection, ConsoleSettings
from hub.console.app import create_app
from hub.console.clip_source import ClipSource, HubClips
from hub.console.context import ConsoleContext
from xlconfig import validate

log = logging.getLogger("xl.hub.console")


def parse_settings(section: ConsoleSection | Mapping[str, Any] | None) -> ConsoleSettings | None:
    """The ``console:`` config section; None when it is absent or ``enabled: false``.

    ``load_config`` has validated it already; a raw mapping is validated here.
    """
    if section is None:
        return None
    if not isinstance(section, ConsoleSection):
        section = validate(ConsoleSection, section, "console.")
    return section if section.enabled else None


class MqttPublisher:
    """Sends commands through hub/commands.py on an already running paho client."""

    def __init__(self, engine: Engine, client: Publisher) -> None:
        self.engine = engine
        self.client = client

    def send(self, device_id: str, op: str, args: dict[str, Any] | None, expires_ms: int | None = None) -> str:
        from hub.commands import CommandError, send_command

        if not self.client.is_connected():
            raise CommandError("not connected to the MQTT broker")
        return send_command(self.engine, self.client, device_id, op, args, expires_ms)


class ConsoleServer:
    """uvicorn in a background thread; ``start()``/``stop()`` as a hub Extension."""

    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self.app = create_app(ctx)
        config = uvicorn.Config(
            self.app,
            host=ctx.settings.host,
            port=ctx.settings.port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="xl-console", daemon=True)
        # Bulk jobs nobody is watching still end at their expiry, with their "done" audit row (issue 21).
        self._bulk = bulk_settler(ctx.engine)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        self._bulk.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"console did not start on {self.ctx.settings.host}:{self.ctx.settings.port}")
            time.sleep(0.05)
        log.info("console on http://%s:%d/", self.ctx.settings.host, self.ctx.settings.port)

    def stop(self) -> None:
        self._bulk.stop()
        self.server.should_exit = True
        self._thread.join(10)


def bulk_settler(engine: Engine, interval_s: float = 10.0) -> Any:
    from hub.console.bulk import settle_waiting
    from hub.periodic import Periodic

    return Periodic("xl-bulk-settle", interval_s, lambda: settle_waiting(engine))


def for_hub(config: HubConfig, engine: Engine, client: Publisher) -> ConsoleServer | None:
    """The console Extension for ``xl-hub run``, sharing the hub's engine and MQTT client."""
    settings = parse_settings(config.plugins.get("console"))
    if settings is None:
        return None
    clips = clip_source(config, engine, client)
    ctx = ConsoleContext(engine, settings, MqttPublisher(engine, client), clips, link_key(config), config.escalation)
    return ConsoleServer(ctx)


def link_key(config: HubConfig) -> bytes | None:
    """The key of the clip links the webhook sends (``clips: link``); None: the console accepts no links."""
    from hub.forward.plugin import clip_link_key

    return clip_link_key(config.plugins.get("forward"))


def clip_source(config: HubConfig, engine: Engine, client: Publisher) -> ClipSource | None:
    """The clip store the event pages show, when this hub keeps clips (``clips.enabled``)."""
    if not config.clips.enabled:
        return None
    return HubClips(engine, config.clips.path, client)


def run_standalone(config: HubConfig) -> int:
    """``xl-hub console``: the console alone, with its own MQTT client for commands."""
    import signal

    from hub.db import make_engine, schema_problem
    from hub.mqtt.client import make_client

    settings = parse_settings(config.plugins.get("console") or {})
    if settings is None:
        raise ConfigError("console.enabled is false")
    engine = make_engine(config.database_url)
    problem = schema_problem(engine)
    if problem is not None:
        log.error("%s", problem)
        return 1
    # A client id of its own: sharing the hub's would make the broker kick one of them off.
    client = make_client(config.mqtt, f"{config.mqtt.client_id}-console"[:64])
    cfg = config.mqtt
    client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
    client.loop_start()
    publisher = PahoPublisher(client)
    server = ConsoleServer(
        ConsoleContext(
            engine,
            settings,
            MqttPublisher(engine, publisher),
            clip_source(config, engine, publisher),
            link_key(config),
            config.escalation,
        )
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    server.start()
    try:
        done.wait()
    finally:
        server.stop()
        client.disconnect()
        client.loop_stop()
        engine.dispose()
    return 0
