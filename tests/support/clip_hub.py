"""A hub's clip upload path in tests and the bench: a throwaway county PKI,
a registered fleet, the real update server (real mTLS) with hub.clips' route
mounted, and a small device-side clip index in the contract's schema
(docs/clips.md), so the uploader is tested without the recorder."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from agent.mtls import TlsIdentity, client_context
from hub.clips.receive import PREFIX, ClipReceiver
from hub.updates.server import UpdateServer
from protocol.ids import make_device_id
from tests.support.update_hub import start_update_hub

GOOD, OTHER, REVOKED = (str(make_device_id(1, n)) for n in (1, 2, 3))


@dataclass
class ClipHub:
    engine: Engine
    server: UpdateServer
    receiver: ClipReceiver
    root: Path
    ca: Path
    certs: dict[str, tuple[Path, Path]]

    def identity(self, device: str = GOOD) -> TlsIdentity:
        cert, key = self.certs[device]
        return TlsIdentity(self.ca, cert, key)

    def stop(self) -> None:
        self.server.stop()
        self.engine.dispose()


def start_clip_hub(db_url: str, tmp: Path) -> ClipHub:
    hub = start_update_hub(db_url, tmp, (GOOD, OTHER, REVOKED), revoked=(REVOKED,), start=False)
    root = tmp / "hub-clips"
    receiver = ClipReceiver(hub.engine, root)
    hub.server.mount(PREFIX, receiver)
    hub.server.start()
    return ClipHub(hub.engine, hub.server, receiver, root, hub.ca, hub.certs)


@dataclass(frozen=True, slots=True)
class Clip:
    event_id: int
    kind: str
    start_ms: int
    end_ms: int
    bytes: int
    sha256: str
    keep: bool = False
    uploaded: bool = False
    detections: tuple[tuple[int, ...], ...] = field(default=())


class ClipIndex:
    """``<state_dir>/clips/index.sqlite3`` as docs/clips.md defines it."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(directory / "index.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS clips (event_id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
            "start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, "
            "keep INTEGER NOT NULL DEFAULT 0, uploaded INTEGER NOT NULL DEFAULT 0, "
            "detections TEXT NOT NULL DEFAULT '[]')"
        )
        self._lock = threading.Lock()

    def add(self, event_id: int, data: bytes, kind: str = "panic", keep: bool = True) -> Clip:
        path = self.path_of(event_id)
        path.write_bytes(data)
        os.sync()
        dets = [[1764138000000, 91, 100, 200, 300, 900]]
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO clips VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (event_id, kind, 1764138000000, 1764138010000, len(data), hashlib.sha256(data).hexdigest(),
                 int(keep), json.dumps(dets)),
            )  # fmt: skip
        got = self.get(event_id)
        assert got is not None
        return got

    def path_of(self, event_id: int) -> Path:
        return self.dir / f"{event_id}.mp4"

    def get(self, event_id: int) -> Clip | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM clips WHERE event_id = ?", (event_id,)).fetchone()
        return self._clip(row) if row else None

    def all(self) -> list[Clip]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM clips ORDER BY start_ms, event_id").fetchall()
        return [self._clip(r) for r in rows]

    def mark_uploaded(self, event_id: int) -> None:
        with self._lock:
            self._db.execute("UPDATE clips SET uploaded = 1 WHERE event_id = ?", (event_id,))

    @staticmethod
    def _clip(row: tuple[object, ...]) -> Clip:
        eid, kind, start, end, size, sha, keep, up, dets = row
        return Clip(
            int(str(eid)), str(kind), int(str(start)), int(str(end)), int(str(size)), str(sha), bool(keep), bool(up),
            tuple(tuple(d) for d in json.loads(str(dets))),
        )  # fmt: skip


def raw(hub: ClipHub, device: str = GOOD) -> http.client.HTTPSConnection:
    ctx = client_context(hub.identity(device))
    return http.client.HTTPSConnection("127.0.0.1", hub.server.port, context=ctx, timeout=5)


def patch(
    conn: http.client.HTTPSConnection, path: str, body: bytes, offset: int, total: bytes
) -> http.client.HTTPResponse:
    conn.request(
        "PATCH",
        path,
        body=body,
        headers={
            "Upload-Offset": str(offset),
            "Upload-Length": str(len(total)),
            "Clip-Sha256": hashlib.sha256(total).hexdigest(),
        },
    )
    resp = conn.getresponse()
    resp.read()
    return resp
