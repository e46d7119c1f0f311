"""Bytes served per device, kept in memory and added to ``update_downloads``
every few seconds: request threads never wait on the database, and a fleet
downloading at once costs one upsert per device per flush, not one per chunk."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from hub.db.dialect import upsert_insert
from hub.updates.tables import update_downloads

log = logging.getLogger("xl.hub.updates")


def _now_ms() -> int:
    return int(time.time() * 1000)


class ByteCounter:
    def __init__(self, engine: Engine, flush_s: float = 5.0, clock: Callable[[], int] = _now_ms) -> None:
        self.engine = engine
        self.flush_s = flush_s
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, list[int]] = {}  # device -> [bytes, requests, refused, first_ms, last_ms]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def served(self, device_id: str, nbytes: int) -> None:
        self._add(device_id, nbytes, 1, 0)

    def refused(self, device_id: str) -> None:
        self._add(device_id, 0, 1, 1)

    def _add(self, device_id: str, nbytes: int, requests: int, refused: int) -> None:
        now = self.clock()
        with self._lock:
            row = self._pending.setdefault(device_id, [0, 0, 0, now, now])
            row[0] += nbytes
            row[1] += requests
            row[2] += refused
            row[4] = now

    def flush(self) -> int:
        """Add what was counted since the last flush to the table; returns the devices written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            with self.engine.begin() as conn:
                for device_id, (nbytes, requests, refused, first, last) in sorted(pending.items()):
                    ins = upsert_insert(conn, update_downloads).values(
                        device_id=device_id,
                        bytes=nbytes,
                        requests=requests,
                        refused=refused,
                        first_ms=first,
                        last_ms=last,
                    )
                    c = update_downloads.c
                    conn.execute(
                        ins.on_conflict_do_update(
                            index_elements=["device_id"],
                            set_={
                                "bytes": c.bytes + ins.excluded.bytes,
                                "requests": c.requests + ins.excluded.requests,
                                "refused": c.refused + ins.excluded.refused,
                                "last_ms": ins.excluded.last_ms,
                            },
                        )
                    )
        except Exception:
            log.exception("could not store download counters; kept for the next flush")
            with self._lock:
                for device_id, row in pending.items():
                    mine = self._pending.setdefault(device_id, [0, 0, 0, row[3], row[4]])
                    for i in range(3):
                        mine[i] += row[i]
                    mine[3] = min(mine[3], row[3])
            return 0
        return len(pending)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="xl-hub-update-bytes", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()
