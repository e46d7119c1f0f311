"""The hub process: wires storage, ingest, health, alerts and metrics together.

Later parts (the platform forwarder, the web console) plug in as
``Extension``s: anything with ``start()`` and ``stop()``, started after ingest
and stopped before it, so they never see a half-stopped hub.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Protocol

from sqlalchemy import Engine

from hub.alerts.engine import AlertEngine
from hub.config import ConfigError, HubConfig
from hub.core.directory import Directory
from hub.core.forwarding import ForwardSink, MemoryForwardSink
from hub.db import make_engine, schema_problem
from hub.health.watcher import Watcher
from hub.ingest.batch import BatchProcessor
from hub.ingest.worker import IngestWorker
from hub.metrics import HubMetrics

log = logging.getLogger("xl.hub")


class Extension(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class SchemaNotReady(RuntimeError):
    pass


# Where each plug-in section of the config is turned into running parts. The
# module must provide ``create(engine, section: dict) -> (sink | None, [Extension, ...])``;
# the forwarder returns its ForwardSink adapter and itself as an Extension.
# The console is attached by ``xl-hub run`` itself (it needs the hub's MQTT client).
PLUGIN_ENTRY_POINTS = {"forward": "hub.forward.plugin"}


def plugins_from_config(config: HubConfig, engine: Engine) -> tuple[ForwardSink | None, list[Extension]]:
    import importlib

    sink: ForwardSink | None = None
    extensions: list[Extension] = []
    for name, section in config.plugins.items():
        if name not in PLUGIN_ENTRY_POINTS:
            continue
        module_name = PLUGIN_ENTRY_POINTS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            raise ConfigError(f"{name}: this hub has no {module_name} module to run it") from None
        got_sink, got_ext = module.create(engine, section)
        if got_sink is not None:
            if sink is not None:
                raise ConfigError(f"{name}: a forward sink is already provided by another section")
            sink = got_sink
        extensions.extend(got_ext)
    return sink, extensions


def ota_extensions(config: HubConfig, hub: Hub) -> list[Extension]:
    """Issue 17's and 18's parts of ``xl-hub run``: the devices' mTLS server when
    updates or clips are on, serving the TUF repository (``updates.enabled``,
    with its online signer) and the clip uploads (``clips.enabled``), each only
    when enabled; and the rollout engine, sending through the hub's transport."""
    out: list[Extension] = []
    server = None
    if config.updates.enabled:
        from hub.updates.service import create

        server, signer = create(hub.engine, config.updates)
        out += [server, signer]
    elif config.clips.enabled:
        from hub.updates.service import create_server

        server = create_server(hub.engine, config.updates, repo=False)  # no /tuf/: nothing to update from
        out.append(server)
    if config.clips.enabled:
        assert server is not None
        from hub.clips.service import create as create_clips
        from hub.core.clips import hand_over_clips

        # A stored clip goes to the platform through the forwarder's port, in the index's transaction.
        on_stored = hand_over_clips(hub.sink)
        out.extend(create_clips(hub.engine, config.clips, server, hub.worker.transport, on_stored)[1])
    if config.rollout.enabled:
        from hub.rollout.runner import RolloutRunner

        out.append(RolloutRunner(hub.engine, hub.worker.transport, config.rollout, config.alerts.timezone))
    return out


def config_push_extensions(hub: Hub, interval_s: float = 1.0) -> list[Extension]:
    """Issue 20's pushes written by ``xl-hub config push``, sent through the hub's own
    connection: the broker names a client after its certificate, so the command cannot
    connect as the hub without closing the hub's connection."""
    from hub.commands import send_command
    from hub.configs.service import send_queued
    from hub.periodic import Periodic

    def send(device_id: str, op: str, args: dict[str, Any]) -> str:
        return send_command(hub.engine, hub.worker.transport, device_id, op, args)

    return [Periodic("xl-config-pushes", interval_s, lambda: send_queued(hub.engine, send), at_start=True)]


def retention_extensions(config: HubConfig, hub: Hub) -> list[Extension]:
    """Issue 21's hourly pruning of events, snapshots, health history and the audit
    logs (clips have their own job, started with the clip server)."""
    if not config.retention.enabled:
        return []
    from hub.retention.job import RetentionJob

    return [RetentionJob(hub.engine, config.retention, hub.metrics)]


def escalation_extensions(config: HubConfig, hub: Hub) -> list[Extension]:
    """Issue 21's escalation of unacknowledged alerts (docs/escalation.md): its own forwarder
    (the role webhooks, the 治安户长 devices) and the periodic pass that takes due steps."""
    if not config.escalation.enabled:
        return []
    from hub.escalation.service import build

    _escalator, parts = build(
        hub.engine,
        config.escalation,
        forward=config.plugins.get("forward"),
        publisher=hub.worker.transport,
        publish=hub.worker.publish,
        platform=hub.sink,
        alerts_engine=hub.alerts,
    )
    return list(parts)


class Hub:
    def __init__(
        self,
        config: HubConfig,
        *,
        engine: Engine | None = None,
        sink: ForwardSink | None = None,
        client_id: str | None = None,
        extensions: list[Extension] | None = None,
    ) -> None:
        self.config = config
        self.engine = engine or make_engine(config.database_url)
        self.sink: ForwardSink = sink if sink is not None else MemoryForwardSink()
        self.metrics = HubMetrics()
        self.directory = Directory(self.engine, ttl_s=config.ingest.registry_ttl_s)
        self.alerts = AlertEngine(self.directory, config.alerts, self.sink)
        processor = BatchProcessor(self.engine, self.directory, self.alerts, self.sink, config.health)
        self.worker = IngestWorker(config, processor, self.metrics, client_id=client_id)
        self.watcher = Watcher(
            self.engine,
            self.directory,
            self.alerts,
            config.health,
            self.metrics,
            self.sink,
            self.worker.publish,
            self.worker.take_confirmed,
        )
        self.extensions = list(extensions or [])
        self._stop_metrics: object = None

    def check_schema(self) -> None:
        """Refuse a database that is not at every migration head (every room's branch)."""
        problem = schema_problem(self.engine, upgrade_command="xl-hub db upgrade --config FILE")
        if problem is not None:
            raise SchemaNotReady(problem)

    def start(self) -> None:
        self.check_schema()
        self.directory.reload()
        if self.config.metrics.enabled:
            self._stop_metrics = self.metrics.serve(self.config.metrics.host, self.config.metrics.port)
        self.worker.start()
        self.watcher.start()
        for ext in self.extensions:
            ext.start()
        log.info("hub started: %d devices in the registry", len(self.directory.all_devices()))

    def stop(self, *, retire: bool = False) -> None:
        for ext in reversed(self.extensions):
            try:
                ext.stop()
            except Exception:
                log.exception("extension %r failed to stop", ext)
        self.watcher.stop()
        self.worker.stop(retire=retire)
        if callable(self._stop_metrics):
            self._stop_metrics()
        log.info("hub stopped")

    @classmethod
    def from_config(cls, config: HubConfig) -> Hub:
        """The hub ``xl-hub run`` starts: plug-ins (forwarder, console) from their config sections."""
        engine = make_engine(config.database_url)
        sink, extensions = plugins_from_config(config, engine)
        return cls(config, engine=engine, sink=sink, extensions=extensions)

    def run_forever(self, *, retire: bool = False) -> None:
        """Run until SIGTERM or SIGINT, then stop cleanly (flush, ack, disconnect)."""
        done = threading.Event()

        def _signal(signum: int, _frame: object) -> None:
            log.info("signal %s: stopping", signal.Signals(signum).name)
            done.set()

        signal.signal(signal.SIGTERM, _signal)
        signal.signal(signal.SIGINT, _signal)
        self.start()
        try:
            done.wait()
        finally:
            self.stop(retire=retire)
