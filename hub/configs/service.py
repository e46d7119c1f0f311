"""Config pushes to devices and each device's config history (issue 20, docs/zones.md).

The API the console and ``xl-hub config`` use:

- ``ConfigPushes(engine, send)``: ``send(device_id, op, args) -> command_id``
  is what records and publishes a command (the console's
  ``MqttPublisher.send``, over the running hub's own connection); ``None``
  when this process has no MQTT channel. With ``queue=True`` and no channel
  (``xl-hub config push``), a push is written as ``queued`` and the running
  hub sends it (``hub.configs.sender``): a second process cannot connect as
  the hub, since the broker names a client after its certificate
  (``use_username_as_clientid``) and would close the hub's connection.
- ``push`` / ``push_village`` raise ``ValueError`` for a bad document or one
  whose command would exceed ``protocol.limits.MAX_COMMAND_BYTES``: the
  operator's input is wrong, whatever the device. Delivery problems (no
  channel, a device not registered or not active, a failed publish) come
  back in ``PushResult.error`` instead, one per device.
- ``history`` rows: ``rev, doc, created_ms, created_by, template,
  command_id, status, reason, acked_ms``; ``status`` is ``queued`` (waiting
  for the running hub to send it), ``unsent`` (never left the hub: ``reason``
  says why), ``sent`` (no ack yet: an offline device gets
  it from its persistent broker session, QoS 1, when it reconnects),
  ``applied`` or ``refused`` (``reason``: the device's first problem).

Each push is written before it is sent, with its revision: the device's
highest so far + 1, allocated by one INSERT whose value is a sub-select, with
a unique (device, rev) key behind it, so two pushes to one device never share
a revision (a collision on PostgreSQL is retried). ``created_by`` is the
operator; the console's own audit log sits above this room in the layers, so
the console audits its requests itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from hub.configs.tables import config_pushes
from hub.configs.vision import check_vision_doc
from hub.db.schema import devices, households
from hub.db.schema_ops import commands
from protocol import limits
from protocol.codec import dumps
from protocol.messages import MAX_CONFIG_REV, Command

__all__ = ["ConfigPushes", "PushResult", "check_vision_doc", "command_size", "send_queued"]

log = logging.getLogger(__name__)

Send = Callable[[str, str, dict[str, Any]], str]

_REV_ATTEMPTS = 5
_LOCKS_GUARD = threading.Lock()
_LOCKS: dict[str, threading.Lock] = {}


def _device_lock(device_id: str) -> threading.Lock:
    """One lock per device, held from a push's revision to its publish (and around a queued
    push's check, claim and publish): the running hub's console requests and its sender are
    threads of one process, and two pushes to one device published out of revision order
    (an admin's village push and an operator's, at once) left the device on the older."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(device_id, threading.Lock())


_SENDING = "sending"  # a queued push one hub process has claimed and is sending


@dataclass(frozen=True)
class PushResult:
    device_id: str
    rev: int  # 0 when no revision was allocated (the device is unknown, or there is no channel)
    command_id: str | None
    error: str | None


def command_size(vision: dict[str, Any]) -> int:
    """Bytes of the ``config`` command carrying ``vision`` at its largest (the longest id and revision)."""
    cmd = Command(
        command_id="0" * limits.MAX_ID_LEN,
        op="config",
        args={"rev": MAX_CONFIG_REV, "vision": vision},
        time_ms=int(time.time() * 1000),
    )
    try:
        return len(dumps(cmd.to_wire()))
    except RecursionError:  # check_vision_doc bounds profiles; any other caller gets a reason, not a crash
        raise ValueError("vision: nested too deeply to be a config command") from None


def _check(vision: Any) -> None:
    check_vision_doc(vision)
    size = command_size(vision)
    if size > limits.MAX_COMMAND_BYTES:
        raise ValueError(
            f"vision: the config command would be {size} bytes, over the {limits.MAX_COMMAND_BYTES}-byte "
            "limit of a command: fewer or simpler polygons"
        )


class ConfigPushes:
    def __init__(self, engine: Engine, send: Send | None, *, queue: bool = False) -> None:
        self.engine = engine
        self.send = send
        self.queue = queue  # no channel here: write the push for the running hub to send

    def push(self, device_id: str, vision: dict[str, Any], user: str, template: str | None = None) -> PushResult:
        _check(vision)
        return self._push(device_id, vision, user, template)

    def push_village(
        self, village_id: int, vision: dict[str, Any], user: str, template: str | None = None
    ) -> list[PushResult]:
        """The same document to every active device of the village: one history row each.

        Revoked devices are left out (they can receive no command); an empty
        list means the village has no active device."""
        _check(vision)
        with self.engine.connect() as conn:
            ids = conn.execute(
                select(devices.c.id)
                .join(households, households.c.id == devices.c.household_id)
                .where(households.c.village_id == village_id, devices.c.status == "active")
                .order_by(devices.c.id)
            ).scalars()
            targets = list(ids)
        return [self._push(d, vision, user, template) for d in targets]

    def _push(self, device_id: str, vision: dict[str, Any], user: str, template: str | None) -> PushResult:
        if self.send is None and not self.queue:
            # Nothing is written: no revision is spent on a push that cannot leave.
            return PushResult(device_id, 0, None, "no MQTT channel to the devices: config not sent")
        with self.engine.connect() as conn:
            status = conn.execute(select(devices.c.status).where(devices.c.id == device_id)).scalar()
        if status is None:
            return PushResult(device_id, 0, None, f"device {device_id} is not registered")
        if status != "active":  # a revoked device can receive nothing: no revision is spent on it
            return PushResult(device_id, 0, None, f"device {device_id} is {status}")
        with _device_lock(device_id):  # allocated and published in revision order (see _device_lock)
            row_id, rev = self._allocate(device_id, vision, user, template)
            if self.send is None:
                return PushResult(device_id, rev, None, None)  # queued: hub.configs.sender sends it
            return send_row(self.engine, self.send, row_id, device_id, rev, vision)

    def _allocate(self, device_id: str, vision: dict[str, Any], user: str, template: str | None) -> tuple[int, int]:
        """Write the push's row with the next revision; (row id, rev)."""
        c = config_pushes.c
        next_rev = select(func.coalesce(func.max(c.rev), 0) + 1).where(c.device_id == device_id).scalar_subquery()
        for attempt in range(_REV_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    # One statement: SQLite takes its write lock before the
                    # sub-select reads, so SQLite never collides; PostgreSQL
                    # can (read committed), and the unique key catches it.
                    row = conn.execute(
                        config_pushes.insert()
                        .values(
                            device_id=device_id,
                            rev=next_rev,
                            doc=vision,
                            created_ms=int(time.time() * 1000),
                            created_by=user[:64],
                            template=template[:64] if template else None,
                        )
                        .returning(c.id, c.rev)
                    ).one()
                    return int(row.id), int(row.rev)
            except IntegrityError:
                if attempt == _REV_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def history(self, device_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The device's pushes, newest first, each with the device's answer."""
        with self.engine.connect() as conn:
            return _history(conn, device_id, limit)

    def current(self, device_id: str) -> dict[str, Any] | None:
        """The document of the newest push the device applied (None: none applied yet)."""
        c = config_pushes.c
        with self.engine.connect() as conn:
            doc = conn.execute(
                select(c.doc)
                .join(commands, commands.c.id == c.command_id)
                .where(c.device_id == device_id, commands.c.ok.is_(True), commands.c.ack_ms.is_not(None))
                .order_by(c.rev.desc())
                .limit(1)
            ).scalar()
        return doc if isinstance(doc, dict) else None


def send_row(engine: Engine, send: Send, row_id: int, device_id: str, rev: int, vision: dict[str, Any]) -> PushResult:
    """Send one written push and record the outcome on its row."""
    try:
        command_id = send(device_id, "config", {"rev": rev, "vision": vision})
    except Exception as exc:  # any failure to send is the push's outcome, recorded, not a crash of the caller
        error = str(exc)[:200] or type(exc).__name__
        log.warning("config rev %d to %s not sent: %s", rev, device_id, error)
        _finish(engine, row_id, None, error)
        return PushResult(device_id, rev, None, error)
    _finish(engine, row_id, command_id, None)
    return PushResult(device_id, rev, command_id, None)


def send_queued(engine: Engine, send: Send, limit: int = 100) -> list[PushResult]:
    """The running hub's pass over pushes written by ``xl-hub config push``: each claimed by one
    conditional UPDATE (two hub processes never both send one), then sent, oldest first. One
    with a newer revision of its device behind it is not sent but marked superseded (``unsent``):
    the device ends on the newest, never on an older one sent after it."""
    c = config_pushes.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.id, c.device_id, c.rev, c.doc)
            .where(c.command_id.is_(None), c.error.is_(None))
            .order_by(c.id)
            .limit(limit)
        ).all()
    out = []
    for row in rows:
        with _device_lock(row.device_id):
            result = _send_queued_row(engine, send, row)
        if result is not None:
            out.append(result)
    return out


def _send_queued_row(engine: Engine, send: Send, row: Any) -> PushResult | None:
    """One queued push: superseded, or claimed and sent (None: not sent by this pass)."""
    c = config_pushes.c
    waiting = (c.id == row.id, c.command_id.is_(None), c.error.is_(None))
    with engine.begin() as conn:
        # A push replaces the device's pushed keys whole, so a newer revision (queued, or
        # sent by the console meanwhile) makes this one moot; sent after it, it would leave
        # the device on the older config while the history says the newer was applied.
        # (One that never left the hub, `unsent` with its reason, does not count.)
        live = c.command_id.is_not(None) | c.error.is_(None) | (c.error == _SENDING)
        newer = conn.execute(
            select(func.max(c.rev)).where(c.device_id == row.device_id, c.rev > row.rev, live)
        ).scalar()
        if newer is not None:
            conn.execute(update(config_pushes).where(*waiting).values(error=f"superseded by rev {newer}: not sent"))
            return None
        claimed = conn.execute(update(config_pushes).where(*waiting).values(error=_SENDING)).rowcount
    if claimed == 1:
        return send_row(engine, send, int(row.id), row.device_id, int(row.rev), dict(row.doc))
    return None


def _finish(engine: Engine, row_id: int, command_id: str | None, error: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(config_pushes).where(config_pushes.c.id == row_id).values(command_id=command_id, error=error)
        )


def _history(conn: Connection, device_id: str, limit: int) -> list[dict[str, Any]]:
    c = config_pushes.c
    rows = conn.execute(
        select(
            c.rev,
            c.doc,
            c.created_ms,
            c.created_by,
            c.template,
            c.command_id,
            c.error,
            commands.c.ack_ms,
            commands.c.ok,
            commands.c.error.label("ack_error"),
        )
        .select_from(config_pushes.outerjoin(commands, commands.c.id == c.command_id))
        .where(c.device_id == device_id)
        .order_by(c.rev.desc())
        .limit(limit)
    ).all()
    out = []
    for r in rows:
        status, reason = _status(r.command_id, r.error, r.ack_ms, r.ok, r.ack_error)
        out.append(
            {
                "rev": r.rev,
                "doc": r.doc,
                "created_ms": r.created_ms,
                "created_by": r.created_by,
                "template": r.template,
                "command_id": r.command_id,
                "status": status,
                "reason": reason,
                "acked_ms": r.ack_ms if status in ("applied", "refused") else None,
            }
        )
    return out


def _status(
    command_id: str | None, error: str | None, ack_ms: int | None, ok: bool | None, ack_error: str | None
) -> tuple[str, str | None]:
    if command_id is None and error is None:
        return "queued", None
    if command_id is None:
        # The hub stopped between claiming and sending (or while publishing): push it again.
        return "unsent", "interrupted while sending: push it again" if error == _SENDING else error
    if ack_ms is None or ok is None:
        return "sent", None
    if ok:
        return "applied", None
    return "refused", ack_error or "refused without a reason"
