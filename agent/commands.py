"""Commands from the hub on ``xl/v1/<device>/cmd``, each answered with an Ack.

The device never stays silent about a command it received: a command that
does not decode is answered with ``ok=0`` under the id it can still recover
(or ``unknown`` when even that is gone), and a handler that fails turns into an
error ack, not an exception on the MQTT thread. Acks go through the outbox, so
an answer survives an outage like an event does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from agent.outbox_writer import OutboxWriter
from agent.schedule import Arming
from protocol.codec import command_id_of, decode_command
from protocol.errors import ProtocolError
from protocol.messages import Ack, Command

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,35}")
UNKNOWN_ID = "unknown"

# A port returns None when done, or a short reason for the error ack, or ACK_LATER: it has
# kept the command and answers through Commands.reply once done (agent.config_push, whose
# validation runs in a child process and must not hold up the MQTT thread meanwhile).
Port = Callable[..., str | None]
ACK_LATER = "\x00ack later"


def _not_available(*_args: object) -> str | None:
    return "not available on this device"


@dataclass
class CommandPorts:
    snapshot: Port = _not_available  # (width | None) -> error | None
    reload: Port = _not_available  # (command id) -> ACK_LATER | error
    restart: Port = _not_available  # () -> error | None
    identify: Port = _not_available  # (seconds) -> error | None
    update: Port = _not_available  # (version, rollout | None, downgrade, force) -> error | None
    clip: Port = _not_available  # (event id) -> error | None (agent.clips.upload)
    clips: Port = _not_available  # (auto kinds, daily bytes) -> error | None
    config: Port = _not_available  # (rev, vision keys, command id) -> ACK_LATER | error (agent.config_push)
    alert: Port = _not_available  # (alert id, kind, household) -> error | None (agent.alerts, escalation)


class Commands:
    def __init__(self, writer: OutboxWriter, arming: Arming, ports: CommandPorts) -> None:
        self.writer = writer
        self.arming = arming
        self.ports = ports
        self.handled = 0
        self.rejected = 0

    def handle(self, payload: bytes) -> Ack | None:
        """The ack written to the outbox, or None when the port answers later (ACK_LATER)."""
        try:
            cmd = decode_command(payload)
        except ProtocolError as exc:
            self.rejected += 1
            recovered = command_id_of(payload)
            ref = recovered if recovered and _TOKEN.fullmatch(recovered) else UNKNOWN_ID
            log.warning("bad command %s: %s", ref, exc)
            return self.writer.ack("cmd", ref, False, _reason(exc))
        expired = self._expired(cmd)
        if expired is not None:
            self.rejected += 1
            log.warning("command %s (%s) not carried out: %s", cmd.command_id, cmd.op, expired)
            return self.writer.ack("cmd", cmd.command_id, False, expired)
        try:
            error = self._run(cmd)
        except Exception as exc:  # a port bug answers as an error, never a crash
            log.exception("command %s (%s) failed", cmd.command_id, cmd.op)
            error = f"{cmd.op} failed: {type(exc).__name__}: {exc}"
        self.handled += 1
        if error == ACK_LATER:
            return None
        return self.writer.ack("cmd", cmd.command_id, error is None, error)

    def reply(self, command_id: str, error: str | None) -> Ack:
        """The ack of a command whose port said ACK_LATER."""
        return self.writer.ack("cmd", command_id, error is None, error)

    def _expired(self, cmd: Command) -> str | None:
        """Why a command past its expiry (``x``) is refused, or None. A bulk arm queued for a device
        away a day must not change its household's arming when it comes back. Only a synced clock
        can tell; an unsynced one (no RTC, no NTP yet) carries the command out, as before ``x``."""
        if cmd.expires_ms is None:
            return None
        clock = self.writer.clock
        now = clock.now_ms()
        if clock.unsynced or now <= cmd.expires_ms:
            return None
        return f"expired {(now - cmd.expires_ms) // 1000} s ago"

    def _run(self, cmd: Command) -> str | None:
        op, args = cmd.op, cmd.args
        if op == "arm":
            self.arming.set_manual(True)
            return None
        if op == "disarm":
            self.arming.set_manual(False)
            return None
        if op == "schedule":
            self.arming.set_hours(args["from"], args["to"])
            return None
        if op == "snapshot":
            return self.ports.snapshot(args.get("w"))
        if op == "reload":
            return self.ports.reload(cmd.command_id)
        if op == "restart":
            return self.ports.restart()
        if op == "identify":
            return self.ports.identify(int(args.get("s", 30)))
        if op == "update":  # accepted or not; the progress comes in health (agent.update.runner)
            return self.ports.update(args["ver"], args.get("ro"), bool(args.get("dg")), bool(args.get("f")))
        if op == "clip":  # queued behind events; the upload itself shows in health (clu)
            return self.ports.clip(int(args["id"]))
        if op == "clips":
            return self.ports.clips(list(args["auto"]), int(args["daily"]))
        if op == "alert":  # an escalated alert of another group: sounds until the owner presses
            return self.ports.alert(str(args["id"]), str(args["k"]), str(args["hh"]))
        if op == "config":  # validated against the device's own schema; refused with the key at fault
            return self.ports.config(int(args["rev"]), dict(args["vision"]), cmd.command_id)
        return f"unknown op {op!r}"  # decode_command already refuses these; kept for safety


def _reason(exc: ProtocolError) -> str:
    # "unknown op 'reboot'" reads better for an operator than the codec's wording.
    detail = exc.detail
    m = re.search(r"field 'op'='([^']*)' is not one of", detail)
    if m:
        return f"unknown op {m.group(1)!r}"
    return f"{exc.reason}: {detail}"[:200]
