"""The clip upload policy, pushed to devices with the ``clips`` command
(docs/clips.md): on a timer, every online device whose last-sent policy
differs from its group's (or the county's), or that came online since it was
sent (a device that was off may have missed the command: commands are not
kept for it), gets it again. Nobody else is sent anything.
"""

from __future__ import annotations

import json
import logging
import time

from sqlalchemy import Engine, select

from hub.clips.tables import clip_policy_sent
from hub.commands import CommandError, Publisher, send_command
from hub.config_clips import ClipsConfig
from hub.db.dialect import upsert_insert
from hub.db.schema import devices, households
from hub.periodic import Periodic

log = logging.getLogger("xl.hub.clips")


def push_policies(engine: Engine, publisher: Publisher, cfg: ClipsConfig, now_ms: int) -> int:
    """Send the policy where it is due; returns how many devices were sent it."""
    if not publisher.is_connected():
        return 0
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                devices.c.id,
                households.c.group_id,
                devices.c.state_changed_ms,
                clip_policy_sent.c.policy,
                clip_policy_sent.c.sent_ms,
            )
            .select_from(
                devices.join(households, households.c.id == devices.c.household_id).outerjoin(
                    clip_policy_sent, clip_policy_sent.c.device_id == devices.c.id
                )
            )
            .where(devices.c.online.is_(True), devices.c.status == "active")
        ).all()
    sent = 0
    for r in rows:
        args = cfg.policy_for(r.group_id).wire()
        want = json.dumps(args, sort_keys=True, separators=(",", ":"))
        if r.policy == want and (r.state_changed_ms or 0) <= (r.sent_ms or 0):
            continue
        try:
            command_id = send_command(engine, publisher, r.id, "clips", args)
        except CommandError as exc:
            log.info("clip policy for %s not sent: %s", r.id, exc)
            continue
        with engine.begin() as conn:
            values = {"policy": want, "sent_ms": now_ms, "command_id": command_id}
            ins = upsert_insert(conn, clip_policy_sent).values(device_id=r.id, **values)
            conn.execute(ins.on_conflict_do_update(index_elements=["device_id"], set_=values))
        sent += 1
    return sent


class PolicyPusher:
    """``start()`` / ``stop()``: an Extension of the hub."""

    def __init__(self, engine: Engine, publisher: Publisher, cfg: ClipsConfig) -> None:
        self.engine, self.publisher, self.cfg = engine, publisher, cfg
        self._periodic = Periodic("xl-hub-clip-policy", self.cfg.policy_interval_s, self._pass)

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def _pass(self) -> None:
        n = push_policies(self.engine, self.publisher, self.cfg, int(time.time() * 1000))
        if n:
            log.info("clip policy sent to %d devices", n)
