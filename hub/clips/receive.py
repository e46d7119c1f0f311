"""The clip upload handler (docs/clips.md, "Upload"), a route of the update server.

``HEAD /clips/<device>/<event>``: ``Upload-Offset`` (bytes the hub has) and
``Upload-Length``; 404 when nothing has arrived. ``PATCH`` with
``Upload-Offset``, ``Upload-Length``, ``Clip-Sha256`` and optionally
``Clip-Start-Ms``/``Clip-End-Ms``/``Clip-Detections``: the body is appended.

Bytes of a body cut mid-way are kept: on a link that drops every few KB a
chunk may never arrive whole, and re-sending it from its start would never
finish. The next HEAD says how far it got. When the offset reaches the length
the file is fsynced and its sha256 checked (a mismatch is 422 and the partial
is dropped), renamed into place, then indexed; a repeated complete upload is
200 and stored once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from hub.clips.files import ClipFiles, Declared, drop_partial, files_of, fsync_dir, read_declared, write_declared
from hub.clips.retention import is_alert_clip
from hub.clips.tables import clip_requests, clips
from hub.db.dialect import upsert_insert
from hub.updates.server import DeviceExchange
from protocol.ids import EVENT_ID_MAX, is_device_id

log = logging.getLogger("xl.hub.clips")

PREFIX = "/clips/"
MAX_CHUNK = 256 * 1024  # docs/clips.md: a PATCH body is at most this
MAX_CLIP = 256 * 1024 * 1024  # a clip longer than any visit's; bounds the disk a device can take
READ = 64 * 1024
LOCK_WAIT_S = 10.0  # a cut request's thread may still hold the clip: its read times out
_PATH = re.compile(r"/clips/(\d{20})/(\d{1,16})")
_SHA = re.compile(r"[0-9a-f]{64}")
MAX_DETECTIONS = 2000


@dataclass(frozen=True, slots=True)
class StoredClip:
    device_id: str
    event_id: int
    path: Path
    bytes: int
    sha256: str
    start_ms: int | None
    end_ms: int | None
    detections: list[list[int]]


# Called in the transaction that indexes a new clip (the forwarder's hand-over).
OnStored = Callable[[Connection, StoredClip], None]


class BadRequest(ValueError):
    pass


class ClipReceiver:
    def __init__(
        self,
        engine: Engine,
        root: str | Path,
        on_stored: OnStored | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.root = Path(root)
        self.on_stored = on_stored
        self.clock = clock
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.received_bytes = 0  # body bytes written, every retry included (the bench)

    # -- the route ---------------------------------------------------------------

    def __call__(self, ex: DeviceExchange) -> None:
        m = _PATH.fullmatch(ex.path.split("?", 1)[0])
        if m is None or not is_device_id(m.group(1)) or int(m.group(2)) > EVENT_ID_MAX:
            ex.close_after()
            ex.reply(400, text="bad path: /clips/<device id>/<event id>")
            return
        device, event = m.group(1), int(m.group(2))
        if device != ex.device:
            # Each device's certificate opens only its own clips.
            log.info("refused %s %s from device %s", ex.method, ex.path[:80], ex.device)
            ex.close_after()
            ex.reply(403, text=f"certificate is for {ex.device}, not {device}")
            return
        f = files_of(self.root, device, event)
        if ex.method == "HEAD":
            self._head(ex, device, event, f)
        elif ex.method == "PATCH":
            self._patch(ex, device, event, f)
        else:
            ex.close_after()
            ex.reply(405, {"Allow": "HEAD, PATCH"}, f"{ex.method} is not served here")

    def _head(self, ex: DeviceExchange, device: str, event: int, f: ClipFiles) -> None:
        stored = self._stored(device, event, f)
        if stored is not None:
            ex.reply(200, {"Upload-Offset": str(stored), "Upload-Length": str(stored)})
            return
        declared = read_declared(f.meta)
        if declared is None or not f.part.exists():
            ex.reply(404, text="nothing received yet")
            return
        ex.reply(200, {"Upload-Offset": str(f.part.stat().st_size), "Upload-Length": str(declared.length)})

    def _patch(self, ex: DeviceExchange, device: str, event: int, f: ClipFiles) -> None:
        try:
            offset, n, declared, detections = _parse(ex)
        except BadRequest as exc:
            ex.close_after()
            ex.reply(400, text=f"bad upload: {exc}")
            return
        lock = self._lock(device, event)
        if not lock.acquire(timeout=LOCK_WAIT_S):
            ex.close_after()
            ex.reply(503, {"Retry-After": "2"}, "this clip is being received on another connection")
            return
        try:
            stored = self._stored(device, event, f)
            if stored is not None:
                ex.close_after()  # its body is not wanted
                ex.reply(200, {"Upload-Offset": str(stored), "Upload-Length": str(stored)}, "already stored")
                return
            f.final.parent.mkdir(parents=True, exist_ok=True)
            have = f.part.stat().st_size if f.part.exists() else 0
            if read_declared(f.meta) != declared:
                # A first PATCH, or the device's clip is not the one we hold part of: start over.
                drop_partial(f)
                write_declared(f.meta, declared)
                have = 0
            if offset != have or offset + n > declared.length:
                ex.close_after()
                ex.reply(409, {"Upload-Offset": str(have), "Upload-Length": str(declared.length)}, "wrong offset")
                return
            have += self._append(ex, f.part, n)
            if have < offset + n:
                ex.close_after()  # cut mid-body: what arrived is kept, the device asks HEAD
                return
            if have < declared.length:
                ex.reply(204, {"Upload-Offset": str(have), "Upload-Length": str(declared.length)})
                return
            self._complete(ex, device, event, f, declared, detections)
        finally:
            lock.release()

    # -- storage -----------------------------------------------------------------

    def _append(self, ex: DeviceExchange, part: Path, n: int) -> int:
        got = 0
        with open(part, "ab") as out:
            try:
                while got < n:
                    data = ex.body.read1(min(READ, n - got))  # what has arrived, not a full buffer
                    if not data:
                        break
                    out.write(data)
                    got += len(data)
            except OSError:
                pass  # the link: keep what came
            finally:
                out.flush()
        self.received_bytes += got
        return got

    def _complete(
        self,
        ex: DeviceExchange,
        device: str,
        event: int,
        f: ClipFiles,
        declared: Declared,
        detections: list[list[int]],
    ) -> None:
        digest = hashlib.sha256()
        with open(f.part, "rb") as src:
            os.fsync(src.fileno())
            while block := src.read(1 << 20):
                digest.update(block)
        if digest.hexdigest() != declared.sha256:
            drop_partial(f)
            log.warning("clip %s/%d: sha256 mismatch, dropped", device, event)
            ex.reply(422, {"Upload-Offset": "0"}, "sha256 does not match: the upload is dropped, start over")
            return
        os.replace(f.part, f.final)
        fsync_dir(f.final.parent)
        self._index(device, event, f, declared, detections)
        log.info("clip %s/%d stored: %d bytes", device, event, declared.length)
        ex.reply(204, {"Upload-Offset": str(declared.length), "Upload-Length": str(declared.length)})

    def _index(self, device: str, event: int, f: ClipFiles, declared: Declared, detections: list[list[int]]) -> None:
        now = int(self.clock() * 1000)
        clip = StoredClip(
            device, event, f.final, declared.length, declared.sha256, declared.start_ms, declared.end_ms, detections
        )
        with self.engine.begin() as conn:
            ins = upsert_insert(conn, clips).on_conflict_do_nothing(index_elements=["device_id", "event_id"])
            new = conn.execute(
                ins.values(
                    device_id=device,
                    event_id=event,
                    bytes=clip.bytes,
                    sha256=clip.sha256,
                    start_ms=clip.start_ms,
                    end_ms=clip.end_ms,
                    received_ms=now,
                    detections=detections or None,
                    alert=is_alert_clip(conn, device, event),  # kept longer by retention
                )
            ).rowcount
            conn.execute(
                update(clip_requests)
                .where(clip_requests.c.device_id == device, clip_requests.c.event_id == event)
                .values(state="received", received_bytes=clip.bytes, total_bytes=clip.bytes)
            )
            if new and self.on_stored is not None:
                self.on_stored(conn, clip)
        drop_partial(f)  # the sidecar last: until here a restart can still index the file

    def _stored(self, device: str, event: int, f: ClipFiles) -> int | None:
        """The stored clip's size, finishing an indexing a crash interrupted."""
        with self.engine.connect() as conn:
            size = conn.execute(
                select(clips.c.bytes).where(clips.c.device_id == device, clips.c.event_id == event)
            ).scalar()
        if size is not None:
            return int(size)
        declared = read_declared(f.meta)
        if declared is not None and f.final.is_file() and f.final.stat().st_size == declared.length:
            self._index(device, event, f, declared, [])  # checked before its rename
            return declared.length
        return None

    def _lock(self, device: str, event: int) -> threading.Lock:
        with self._locks_guard:
            if len(self._locks) > 10_000:  # forget idle ones; a held lock stays referenced by its holder
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault((device, event), threading.Lock())


def _header_int(ex: DeviceExchange, name: str, hi: int, *, required: bool = True) -> int | None:
    value = ex.headers.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if not value.isdigit() or int(value) > hi:
        raise BadRequest(f"{name} {value[:20]!r} is not an integer 0..{hi}")
    return int(value)


def _parse(ex: DeviceExchange) -> tuple[int, int, Declared, list[list[int]]]:
    offset = _header_int(ex, "Upload-Offset", MAX_CLIP)
    length = _header_int(ex, "Upload-Length", MAX_CLIP)
    n = _header_int(ex, "Content-Length", MAX_CHUNK)
    assert offset is not None and length is not None and n is not None
    if length == 0:
        raise BadRequest("Upload-Length 0: an empty clip")
    sha = (ex.headers.get("Clip-Sha256") or "").lower()
    if not _SHA.fullmatch(sha):
        raise BadRequest("Clip-Sha256 must be 64 hex digits")
    start = _header_int(ex, "Clip-Start-Ms", 1 << 53, required=False)
    end = _header_int(ex, "Clip-End-Ms", 1 << 53, required=False)
    return offset, n, Declared(length, sha, start, end), _detections(ex.headers.get("Clip-Detections"))


def _detections(value: str | None) -> list[list[int]]:
    """``[[t_ms, score, x1, y1, x2, y2], …]`` (docs/clips.md); anything else is refused."""
    if not value:
        return []
    try:
        doc: Any = json.loads(value)
    except ValueError:
        raise BadRequest("Clip-Detections is not JSON") from None
    ok = isinstance(doc, list) and len(doc) <= MAX_DETECTIONS
    ok = ok and all(
        isinstance(d, list) and len(d) == 6 and all(isinstance(x, int) and not isinstance(x, bool) for x in d)
        for d in doc
    )
    if not ok:
        raise BadRequest("Clip-Detections must be a list of [t_ms, score, x1, y1, x2, y2] integers")
    return [list(d) for d in doc]
