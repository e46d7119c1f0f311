"""``xl-agent run``: wire the parts together and keep them running.

Threads: capture (camera → pipeline → outbox), the MQTT link, gpiozero's
callbacks (button, PIR), the watchdog, and this supervisor, which sends the
heartbeat, keeps the status LED in step with the link, and stops everything
cleanly on SIGTERM. ``reload`` re-reads the config and rebuilds every part in
the same process (the ack is already in the outbox, so it is sent after).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from agent import __version__, memory
from agent.alerts import AlertDesk
from agent.bootcount import next_boot
from agent.capture import Capture, source_factory
from agent.certs import check_tls_files
from agent.clock import DeviceClock
from agent.commands import ACK_LATER, CommandPorts, Commands
from agent.config import AgentConfig, ConfigError, load_isolated
from agent.config_push import ConfigPusher
from agent.gpio import Panel
from agent.health import HealthReporter, HealthSources
from agent.household_sim import SimulatedHousehold
from agent.link import Link, LinkSettings
from agent.outbox import Outbox
from agent.outbox_writer import OutboxWriter
from agent.schedule import Arming
from agent.update.commit import ROLLBACK_EXIT, gate_for, restart_blocker, runtime_probes
from agent.update.layout import Layout
from agent.update.runner import UpdateRunner
from agent.watchdog import Notifier, Watchdog
from protocol.codec import encode
from protocol.topics import alert_topic, cmd_topic, health_topic
from xlconfig.isolated import ValidatorFailed

log = logging.getLogger(__name__)

STALL_S = 30.0  # no frame and no reopen attempt for this long: the capture is hung
FLUSH_S = 3.0  # on a clean stop, give the link this long to send what is waiting
SWITCH_EXIT = 75  # as ROLLBACK_EXIT: any exit restarts the unit, on whatever ``current`` names now
TRIM_S = 60.0  # malloc_trim: cheap, and freed frame buffers and SQLite pages go back to the kernel


def build_detector(cfg: AgentConfig) -> tuple[Any, str | None]:
    """The person detector, or (None, why) — the agent still runs without it."""
    if cfg.vision is None or not cfg.vision.detect.enabled:
        return None, None
    try:
        from agent.vision.replay import build_detector as build

        return build(cfg.vision), None
    except Exception as exc:
        return None, f"detector: {type(exc).__name__}: {exc}"[:200]


class Agent:
    def __init__(self, cfg: AgentConfig, stop: threading.Event, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.stop = stop
        self.reload_requested = False
        self.notifier = notifier or Notifier()
        report = check_tls_files(cfg.broker.ca, cfg.broker.cert, cfg.broker.key)
        for warning in report.warnings:
            log.warning("%s", warning)
        if report.errors:
            raise ConfigError(report.errors, str(cfg.path or "config"))
        self.warning = report.warnings[0] if report.warnings else None

        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        assert cfg.outbox.path is not None, "agent.config.load fills the outbox path from state_dir"
        self.outbox = Outbox(cfg.outbox.path, cfg.outbox.max_rows, cfg.outbox.max_bytes)
        # The outbox keeps a copy of the boot counter: if the counter file is lost
        # or corrupted, event IDs still never go back to an ID already used.
        self.boot = next_boot(cfg.state_dir / "boot", floor=self.outbox.last_boot)
        self.outbox.set_boot(self.boot)
        self.clock = DeviceClock()
        self.writer = OutboxWriter(cfg.device.id, self.outbox, self.boot, self.clock)
        self.arming = Arming(
            cfg.state_dir / "arming.json",
            cfg.schedule.armed_from,
            cfg.schedule.armed_to,
            cfg.schedule.timezone,
        )
        # Masks, zones and profiles pushed from the console, kept over the file's (agent.config_push).
        self.pusher = ConfigPusher(cfg.vision_doc, cfg.state_dir, self._apply_vision)
        self.vision = self.pusher.restore() or cfg.vision
        self.detector, self.detector_error = build_detector(cfg)
        self.capture = Capture(
            self._with_clip_encoder(source_factory(cfg.camera)),
            self._pipeline if cfg.vision is not None else None,
            self.writer,
            self.clock,
            pace=not cfg.camera.source.startswith("picamera2"),
        )
        self.clips = self._recorder()
        self.uploader = self._uploader()
        self.capture.clips = self.clips
        self.desk: AlertDesk | None = None
        self.panel = Panel(
            cfg.gpio,
            on_press=lambda: self.desk.on_press() if self.desk else None,
            on_hold=lambda: self.desk.on_hold() if self.desk else None,
            on_pir=self.capture.pir,
        )
        self.desk = AlertDesk(cfg.device.id, self.panel, self.writer, cfg.gpio.buzzer_max_s)
        self.household = SimulatedHousehold(cfg.simulate, self.panel, cfg.gpio.hold_s, stop) if cfg.simulate else None
        # The update command: a child process fetches and installs; this agent only decides when
        # to switch (agent.update.runner), and then stops so systemd starts the new release.
        self.updates = UpdateRunner(
            cfg.update,
            cfg.path,
            armed=lambda: self.arming.armed,
            blocker=lambda: restart_blocker(self),
            restart=self._restart_for_update,
        )
        self.commands = Commands(
            self.writer,
            self.arming,
            CommandPorts(
                snapshot=self.capture.request_snapshot,
                reload=self._reload,
                restart=self.capture.restart,
                identify=self._identify,
                update=self.updates.handle,
                config=self.pusher.submit,
                alert=lambda alert_id, kind, household: (
                    self.desk.escalated(alert_id, kind, household) if self.desk else "no alert desk"
                ),
                **self._clip_ports(),
            ),
        )
        self.pusher.reply = self.commands.reply
        b = cfg.broker
        self.link = Link(
            LinkSettings(
                device_id=cfg.device.id,
                group=cfg.device.group,
                host=b.host,
                port=b.port,
                ca=b.ca,
                cert=b.cert,
                key=b.key,
                keepalive=b.keepalive,
                keepalive_idle=b.keepalive_idle,
                tls_version=b.tls_version,
                max_inflight=b.max_inflight,
                session_expiry=b.session_expiry,
                backoff_base_s=b.backoff_base_s,
                backoff_cap_s=b.backoff_cap_s,
                agent_version=__version__,
                boot=self.boot,
                health_interval_s=cfg.health_interval_s,
            ),
            self.outbox,
            on_message=self._dispatch,
            now_ms=self.clock.now_ms,
            on_status=lambda up: self.panel.set_link_state("connected" if up else "offline"),
            armed=lambda: self.arming.armed,
        )
        self.writer.on_urgent = self.link.wake
        if self.clips is not None:
            self.writer.on_panic = self.clips.panic
        self.health = HealthReporter(
            HealthSources(
                outbox=self.outbox,
                clock=self.clock,
                state_dir=cfg.state_dir,
                boot=self.boot,
                interval_s=cfg.health_interval_s,
                capture=self.capture,
                armed=lambda: self.arming.armed,
                errors=self._error,
                update=self.updates.health,
                clips=self.clips,
                clip_upload=(lambda: self.uploader.uploaded_today) if self.uploader is not None else None,
                config_rev=lambda: self.pusher.rev,
            ),
            publish=lambda h: self.link.publish_volatile(health_topic(cfg.device.id), encode(h)),
        )
        self.watchdog = Watchdog(self.notifier, self._progress)
        self._cmd_topic = cmd_topic(cfg.device.id)
        self._alert_topic = alert_topic(cfg.device.group)
        # A release on trial commits itself once it has worked, or rolls back (agent.update.commit).
        up = cfg.update
        self.gate = gate_for(Layout.from_config(up), __version__, up.commit_within_s, runtime_probes(self))
        self.exit_code = 0

    def _restart_for_update(self) -> None:
        """The new release is linked as ``current``: stop cleanly, and systemd (Restart=always) starts it."""
        self.exit_code = SWITCH_EXIT
        self.stop.set()

    def _pipeline(self) -> Any:
        from agent.schedule import zone
        from agent.vision.pipeline import VisionPipeline

        # Live wall time for every event; ordering comes from event IDs, never from this.
        return VisionPipeline(
            self.vision,
            self.detector,
            self.writer.ids,
            lambda _ts: self.clock.now_ms(),
            timezone=zone(self.cfg.schedule.timezone),  # night_hours are local time, as armed hours are
        )

    def _apply_vision(self, vision: Any) -> None:
        """A config push accepted: the pipeline takes it before its next frame, the clips at once."""
        self.vision = vision
        self.capture.reconfigure(vision)
        if self.clips is not None:
            self.clips.set_masks(vision.motion.masks)

    def _recorder(self) -> Any:
        """The clip recorder (docs/clips.md), or None: a card it cannot use must not stop the agent.

        ``clips.encoder: hardware`` on a machine without the Pi's encoder is a config error, though."""
        if not self.cfg.clips.enabled:
            return None
        from agent.clips.select import choose

        c, cam = self.cfg.clips, self.cfg.camera
        try:
            choice = choose(c.encoder, cam.source)
        except ValueError as exc:
            raise ConfigError([str(exc)], str(self.cfg.path or "config")) from None
        log.info("clips: %s encoder (%s)", choice.kind, choice.reason)
        masks = self.vision.motion.masks if self.vision is not None else ()
        try:
            from agent.clips.encoder import PyAvEncoder
            from agent.clips.recorder import Recorder

            make_encoder: Any = PyAvEncoder
            # auto: if the hardware encoder will not start (or dies), libx264 at the software defaults
            # takes over, so the device keeps its clips; hardware asked for by name fails instead.
            fallback = PyAvEncoder if c.encoder == "auto" else None
            if choice.kind == "hardware":
                from agent.clips.encoder import Picamera2Encoder

                # The camera's main stream at the camera's size, every n-th frame: near clips.fps.
                skip = max(1, round(cam.fps / c.fps))
                hw = Picamera2Encoder(cam.width, cam.height, cam.fps / skip, c.segment_s, skip, masks)
                make_encoder = lambda _w, _h, _fps: hw  # noqa: E731
            return Recorder(
                c,
                self.cfg.state_dir,
                self.boot,
                masks=masks,
                armed=lambda: self.arming.armed,
                wall_ms=self.clock.now_ms,
                encoder_kind=choice.kind,
                encoder_reason=choice.reason,
                make_encoder=make_encoder,
                fallback=fallback,
            )
        except Exception as exc:  # PyAV missing, the state dir unwritable
            log.warning("clips off: %s: %s", type(exc).__name__, exc)
            return None

    def _with_clip_encoder(self, make: Any) -> Any:
        """The camera source, with the hardware clip encoder attached whenever the camera opens.

        Through the recorder, which catches a failed start (and falls back) rather than fail the camera."""

        def build() -> Any:
            source = make()
            rec = self.clips
            if rec is not None and rec.encoder_kind == "hardware" and hasattr(source, "on_start"):
                source.on_start, source.on_stop = rec.camera_started, rec.camera_stopping
            return source

        return build

    def _uploader(self) -> Any:
        """The clip uploader, to the update server's host (docs/clips.md); None without clips or a hub URL."""
        if self.clips is None or not self.cfg.update.url:
            return None
        try:
            from agent.clips.upload import ClipUploader, UploadSettings, clips_url
            from agent.mtls import TlsIdentity

            b, c = self.cfg.broker, self.cfg.clips
            settings = UploadSettings(
                clips_url(self.cfg.update.url),
                self.cfg.device.id,
                TlsIdentity(Path(b.ca), Path(b.cert), Path(b.key)),
                bytes_per_s=c.upload_bytes_per_s,
                daily_bytes=c.daily_upload_bytes,
            )
            # Events first: the uploader uses the link only while the outbox is empty.
            return ClipUploader(settings, self.clips.store, self.cfg.state_dir / "clips", lambda: self.outbox.depth > 0)
        except Exception as exc:  # certificates missing: no uploads, the agent runs on
            log.warning("clip uploads off: %s: %s", type(exc).__name__, exc)
            return None

    def _clip_ports(self) -> dict[str, Any]:
        up = self.uploader
        return {} if up is None else {"clip": up.request, "clips": up.set_policy}

    def _dispatch(self, topic: str, payload: bytes) -> None:
        if topic == self._cmd_topic:
            self.commands.handle(payload)
        elif topic == self._alert_topic:
            assert self.desk is not None
            self.desk.on_alert(payload)

    def _identify(self, seconds: int) -> str | None:
        if self.panel.led is None:
            return "no status LED fitted"
        self.panel.identify(seconds)
        return None

    def _reload(self, command_id: str) -> str | None:
        if self.cfg.path is None:
            return "started without a config file"
        # The file is checked by a child process, seconds on a Pi Zero: not on the MQTT thread,
        # which carries the alerts meanwhile. A kill before the answer restarts the agent, which
        # reads the file anyway.
        threading.Thread(target=self._reload_checked, args=(command_id,), name="reload", daemon=True).start()
        return ACK_LATER

    def _reload_checked(self, command_id: str) -> None:
        assert self.cfg.path is not None
        try:
            load_isolated(self.cfg.path)
        except ConfigError as exc:
            self.commands.reply(command_id, "; ".join(exc.problems)[:200])
            return
        except ValidatorFailed as exc:  # the validating child could not run: keep the config in force
            self.commands.reply(command_id, str(exc)[:200])
            return
        self.commands.reply(command_id, None)  # in the outbox before the stop flushes it
        self.reload_requested = True
        self.stop.set()

    def _error(self) -> str | None:
        # clips.encoder: hardware whose encoder failed: no clips, and health's error says so.
        clips_error = self.clips.encoder_error if self.clips is not None else None
        return self.link.last_error or self.detector_error or clips_error or self.warning

    def _progress(self) -> bool:
        fresh = time.monotonic() - self.capture.heartbeat < STALL_S
        return fresh and self.capture.alive() and self.link.alive()

    def run(self) -> str:
        """Run until ``stop`` is set; returns ``reload`` or ``stop``."""
        self.notifier.status(f"starting boot {self.boot}")
        self.link.start()
        self.pusher.start()
        if self.clips is not None:
            self.clips.start()
        if self.uploader is not None:
            self.uploader.start()
        self.capture.start()
        self.watchdog.start()
        if self.household is not None:
            self.household.start()
        self.notifier.ready(f"device {self.cfg.device.id} boot {self.boot}")
        log.info("xl-agent %s running as %s, boot %d", __version__, self.cfg.device.id, self.boot)
        next_trim = time.monotonic() + 5.0  # once the model and first frames are in
        try:
            while not self.stop.wait(1.0):
                self.health.tick()
                self.panel.refresh()
                self.updates.tick()
                if self.gate is not None and self.gate.poll(lambda: restart_blocker(self)) == "rollback":
                    self.exit_code = ROLLBACK_EXIT  # systemd restarts us on the release rolled back to
                    self.stop.set()
                if time.monotonic() >= next_trim:
                    memory.trim()
                    next_trim = time.monotonic() + TRIM_S
        finally:
            self.shutdown()
        return "reload" if self.reload_requested else "stop"

    def shutdown(self) -> None:
        self.notifier.stopping()
        self.watchdog.stop()
        self.pusher.stop()  # the push in progress is answered; the queued stay pending
        self.capture.stop()  # ends open visits: their end events go into the outbox
        if self.uploader is not None:
            self.uploader.stop()
        if self.clips is not None:
            self.clips.stop()  # ... and their clips are cut
        deadline = time.monotonic() + FLUSH_S
        while self.link.connected and self.outbox.depth and time.monotonic() < deadline:
            time.sleep(0.05)
        self.link.stop()
        if self.desk is not None:
            self.desk.close()
        self.panel.close()
        self.outbox.close()


def run(path: Path, stop: threading.Event) -> int:
    """The ``run`` subcommand's body: config errors are printed, not raised."""
    while True:
        try:
            cfg = load_isolated(path)
            agent = Agent(cfg, stop)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("config %s", problem)
            return 2
        except (OSError, ValidatorFailed) as exc:  # e.g. the state dir or outbox is not writable
            log.error("cannot start: %s", exc)
            return 1
        if agent.run() != "reload":
            return agent.exit_code
        stop.clear()
        log.info("reloading %s", path)
