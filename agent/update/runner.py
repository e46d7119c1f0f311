"""The ``update`` command in the running agent (docs/ota.md sections 2 and 3).

The agent only decides *when*; the work is done by the child
``xl-agent update apply`` (agent.update.apply_cli), so python-tuf and its
cryptography never load into the agent. Steps, each visible in health ``us``:

- ``wait``: accepted, waiting for a window: outside armed hours (unless the
  hub forced it or ``update.outside_armed_hours_only`` is off);
- ``dl``/``inst``: the child runs; its progress.json becomes health;
- the switch (agent.update.switch.start_trial), once the child has installed
  the release and nothing forbids a restart (an alert sounding, the panic
  button held, a failing outbox): then the agent restarts on the new release,
  which reports ``trial`` and later ``ok`` or ``rb`` from state.json.

Nothing here imports the heavy parts; it is stdlib plus the updater's own
small modules.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent import __version__
from agent.config import UpdateConfig
from agent.update.layout import Layout
from agent.update.progress import Progress, read_progress, write_progress
from agent.update.versions import VersionError, parse
from agent.watchdog import child_env

log = logging.getLogger(__name__)

Spawn = Callable[[list[str]], "subprocess.Popen[bytes]"]


@dataclass(frozen=True, slots=True)
class Request:
    version: str
    rollout: str | None
    allow_downgrade: bool
    force: bool


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=child_env(), stdin=subprocess.DEVNULL)


class UpdateRunner:
    def __init__(
        self,
        cfg: UpdateConfig,
        config_path: Path | None,
        armed: Callable[[], bool],
        blocker: Callable[[], str | None],
        restart: Callable[[], None],
        *,
        running: str = __version__,
        spawn: Spawn = _spawn,
        python: str = sys.executable,
    ) -> None:
        """``blocker`` says why the agent may not restart now (agent.update.commit.restart_blocker);
        ``restart`` stops the agent so systemd starts the release ``current`` names."""
        self.cfg = cfg
        self.layout = Layout.from_config(cfg)
        self.config_path = config_path
        self.armed = armed
        self.blocker = blocker
        self.restart = restart
        self.running = running
        self.spawn = spawn
        self.python = python
        self.request: Request | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self.installed: Request | None = None  # verified and installed, waiting for the switch
        self.switched = False

    # -- the command port --------------------------------------------------------

    def handle(self, version: str, rollout: str | None = None, dg: bool = False, force: bool = False) -> str | None:
        """None when accepted (the ack says only that), else why not."""
        if self.cfg.url is None:
            return "updates are not configured (update.url)"
        if self.config_path is None:
            return "started without a config file"
        try:
            parse(version)
        except VersionError as exc:
            return str(exc)[:200]
        busy = self.request or self.installed
        if self.child is not None and busy is not None:
            # The child is at work: the same version again is already being done.
            return None if busy.version == version else f"busy updating to {busy.version}"
        if self.switched:
            return "restarting on a new release"
        self.request = Request(version, rollout, dg, force)
        self.installed = None
        self._write(Progress(uv=version, us="wait", ro=rollout))
        return None

    # -- the supervisor loop -----------------------------------------------------

    def tick(self) -> None:
        """Called every second by the agent's supervisor."""
        if self.child is not None:
            code = self.child.poll()
            if code is None:
                return
            self.child = None
            req, self.request = self.request, None
            progress = read_progress(self.layout.progress_file)
            if code == 0 and progress is not None and progress.us == "inst" and req is not None:
                self.installed = req
            elif req is not None and (progress is None or progress.us not in ("fail", "ok")):
                # Killed, or a crash before it could say why: the agent says it for it.
                why = f"update child exited with status {code}"
                self._write(Progress(uv=req.version, us="fail", ue=why, ro=req.rollout))
            return
        if self.request is not None and self._window(self.request) is None:
            self._start(self.request)
        elif self.installed is not None and not self.switched:
            self._switch(self.installed)

    def _window(self, req: Request) -> str | None:
        if req.force or not self.cfg.outside_armed_hours_only:
            return None
        return "armed hours" if self.armed() else None

    def _start(self, req: Request) -> None:
        argv = [self.python, "-m", "agent.cli", "--config", str(self.config_path), "update", "apply",
                "--version", req.version]  # fmt: skip
        if req.allow_downgrade:
            argv.append("--allow-downgrade")
        if req.force:
            argv.append("--force")
        if req.rollout:
            argv += ["--rollout", req.rollout]
        log.info("update to %s: starting %s", req.version, " ".join(argv[2:]))
        self._write(Progress(uv=req.version, us="dl", ro=req.rollout))
        self.child = self.spawn(argv)

    def _switch(self, req: Request) -> None:
        if self._window(req) is not None:
            return
        why = self.blocker()
        if why is not None:
            log.info("update to %s installed; not switching while %s", req.version, why)
            return
        from agent.update.switch import SwitchError, start_trial

        try:
            start_trial(self.layout, req.version, self.cfg.commit_within_s, self.cfg.max_attempts)
        except (SwitchError, OSError, ValueError) as exc:
            self.installed = None
            self._write(Progress(uv=req.version, us="fail", ue=f"switch: {exc}", ro=req.rollout))
            return
        self.switched = True
        log.info("update to %s: switched, restarting on it", req.version)
        self.restart()

    # -- health --------------------------------------------------------------------

    def health(self) -> Progress | None:
        """The update keys for health: the newer of progress.json (before the switch)
        and state.json's us/uv/ue (trial, ok, rb: written by the switch and the commit)."""
        progress = read_progress(self.layout.progress_file)
        state = self._state_progress()
        if state is None:
            return progress
        if progress is None:
            return state
        return state if _mtime(self.layout.state_file) > _mtime(self.layout.progress_file) else progress

    def _state_progress(self) -> Progress | None:
        if not self.layout.state_file.exists():
            return None
        from agent.update.state import load

        try:
            s = load(self.layout)
        except (OSError, ValueError):
            return None
        if s.uv is None or s.us == "idle":
            return None
        try:
            return Progress(uv=s.uv, us=s.us, ue=s.ue)
        except ValueError:
            return None

    def _write(self, progress: Progress) -> None:
        try:
            write_progress(self.layout.progress_file, progress)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.layout.progress_file, exc)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def wait_for(runner: UpdateRunner, done: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Tick until ``done`` (tests and tools that drive a runner without an agent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runner.tick()
        if done():
            return True
        time.sleep(step)
    return done()
