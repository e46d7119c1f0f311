"""The ``config`` command: masks, zones and profiles pushed from the console (docs/zones.md).

A push replaces some keys of the config file's ``vision:`` section. The result
is validated by the same schema as the file, so a push can never give the
device a config its own file could not, and the reason for a refusal names
the key as the file's error would. A refused push changes nothing.

An accepted push is kept in the state dir, so the next start (a reboot, a
``reload``, an update) still has it. The file is written whole or not at all
(agent.durable); if it is damaged anyway, or no longer fits the file's config
(an installer edited the file, a new release tightened the schema), it is
set aside with a warning and the file's config is used: a bad push must
never stop a device in a farmhouse from booting.

Validation runs in a child process (xlconfig.isolated), one to several
seconds, so it never runs on the MQTT thread: that thread also carries the
panic button's alert and the neighbours'. ``submit`` only writes the push to
a pending file and hands it to a worker, which validates, keeps, applies and
then acks (Commands.reply). A push whose process was killed before its ack is
still pending at the next start and is carried out then: once the broker has
the device's PUBACK it never sends the command again.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.commands import ACK_LATER
from agent.config_vision import VisionConfig
from agent.durable import write_atomic
from agent.watchdog import child_env
from xlconfig import ConfigError
from xlconfig.isolated import ValidatorFailed, call

log = logging.getLogger(__name__)

PUSHABLE = ("masks", "zones", "required_zones", "profiles")
STATE_FILE = "vision-push.json"
PENDING_FILE = "vision-push-pending.json"  # pushes received, not yet answered: [{id, rev, vision}, ...]
SOURCE = "config push"


def merge(base: dict[str, Any], pushed: dict[str, Any]) -> VisionConfig:
    """The file's section with the pushed keys replacing its own, except masks; ConfigError naming the key.

    The file's masks are a floor: pushed masks are added to them, never put in their place. The
    installer draws those at the house, with the household, over what must never be seen (a
    neighbour's window, the road a family walks to school), and the console cannot see them: a
    push that replaced them would uncover all of it without anyone having chosen to."""
    unknown = sorted(set(pushed) - set(PUSHABLE))
    if unknown:
        raise ConfigError(f"vision.{unknown[0]}: cannot be set by a config push (only {', '.join(PUSHABLE)})", SOURCE)
    doc = {**base, **pushed}
    if "masks" in pushed and isinstance(pushed["masks"], list) and isinstance(base.get("masks"), list):
        doc["masks"] = [*base["masks"], *pushed["masks"]]
    # In a child process: the running agent never imports pydantic (xlconfig.isolated).
    config: VisionConfig = call("agent.config_vision:parse_vision", doc, SOURCE, env=child_env())
    return config


class ConfigPusher:
    """The applied push's revision; ``apply`` puts a new VisionConfig into force."""

    def __init__(
        self,
        base: dict[str, Any],
        state_dir: Path,
        apply: Callable[[VisionConfig], None],
        reply: Callable[[str, str | None], object] = lambda _id, _error: None,
    ) -> None:
        self.base = base
        self.path = state_dir / STATE_FILE
        self.pending_path = state_dir / PENDING_FILE
        self.apply = apply
        self.reply = reply  # (command id, error | None): the ack, once the push is carried out or refused
        self.rev = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[dict[str, Any]] = self._read_pending()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        for item in self._pending:
            self._queue.put(item)
        self._worker: threading.Thread | None = None

    def submit(self, rev: int, vision: dict[str, Any], command_id: str) -> str:
        """The command port (MQTT thread): kept as pending, answered by the worker (ACK_LATER)."""
        item = {"id": command_id, "rev": rev, "vision": vision}
        with self._pending_lock:
            self._pending.append(item)
            self._write_pending()
        self._queue.put(item)
        return ACK_LATER

    def start(self) -> None:
        """The worker that carries out submitted pushes, in order (and those pending from before)."""
        self._worker = threading.Thread(target=self._work, name="config-push", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 60.0) -> None:
        """After the push in progress, if any: those still queued stay pending for the next start."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout)
            self._worker = None

    def wait_idle(self) -> None:
        """Until every submitted push is answered (tests)."""
        self._queue.join()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                try:
                    error = self.handle(int(item["rev"]), dict(item["vision"]))
                except Exception as exc:  # a bug answers as an error; the worker goes on
                    log.exception("config push %s failed", item.get("id"))
                    error = f"config failed: {type(exc).__name__}: {exc}"[:200]
                self.reply(str(item["id"]), error)
                with self._pending_lock:  # answered: only now may a restart forget it
                    self._pending = [p for p in self._pending if p is not item]
                    self._write_pending()
            finally:
                self._queue.task_done()

    def _read_pending(self) -> list[dict[str, Any]]:
        if not self.pending_path.exists():
            return []
        try:
            items = json.loads(self.pending_path.read_text(encoding="utf-8"))
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("id"), str) and isinstance(i.get("vision"), dict)
                for i in items
            ):
                raise ValueError("not a list of pushes")
        except (OSError, ValueError) as exc:
            log.warning("pending config pushes in %s unreadable, set aside: %s", self.pending_path, exc)
            self.pending_path.replace(self.pending_path.with_name(self.pending_path.name + ".bad"))
            return []
        if items:
            log.info("%d config push(es) received before the last stop are carried out now", len(items))
        return items

    def _write_pending(self) -> None:
        if self._pending:
            data = json.dumps(self._pending, ensure_ascii=False).encode("utf-8")
            write_atomic(self.pending_path, data)
        else:
            self.pending_path.unlink(missing_ok=True)

    def restore(self) -> VisionConfig | None:
        """At start: the kept push merged over the file, or None (nothing kept, or set aside)."""
        if not self.path.exists():
            return None
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            rev, pushed = doc["rev"], doc["vision"]
            if not isinstance(rev, int) or not isinstance(pushed, dict):
                raise ValueError("rev and vision missing")
            config = merge(self.base, pushed)
        except ConfigError as exc:
            self._set_aside("; ".join(exc.problems))
            return None
        except ValidatorFailed as exc:  # the validating child did not run: the push may be fine, so it is kept
            log.warning("config push kept in %s not restored this start: %s", self.path, exc)
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._set_aside(f"{type(exc).__name__}: {exc}")
            return None
        self.rev = rev
        log.info("config push rev %d restored (%s)", rev, ", ".join(sorted(pushed)) or "no keys")
        return config

    def handle(self, rev: int, vision: dict[str, Any]) -> str | None:
        """One push carried out (the worker's step): None once applied and kept, else the reason
        (the old config stays)."""
        with self._lock:  # two pushes in a row must not interleave their write and apply
            try:
                config = merge(self.base, vision)
            except ConfigError as exc:
                self.refused += 1
                log.warning("config push rev %d refused: %s", rev, "; ".join(exc.problems))
                return exc.problems[0][:200]
            except ValidatorFailed as exc:  # the validating child did not run: refused, the hub may send it again
                self.refused += 1
                log.warning("config push rev %d not validated: %s", rev, exc)
                return str(exc)[:200]
            # Kept before it is applied: a power cut in between boots with the new config,
            # which is what the hub was told; the other order could ack a config that is gone.
            write_atomic(self.path, json.dumps({"rev": rev, "vision": vision}, ensure_ascii=False).encode("utf-8"))
            self.apply(config)
            self.rev = rev
            log.info("config push rev %d applied (%s)", rev, ", ".join(sorted(vision)) or "no keys")
            return None

    def _set_aside(self, why: str) -> None:
        log.warning("config push kept in %s set aside, using the config file's vision section: %s", self.path, why)
        try:
            self.path.replace(self.path.with_name(self.path.name + ".bad"))
        except OSError as exc:
            log.warning("cannot set %s aside: %s", self.path, exc)
