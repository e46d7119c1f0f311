"""The clip uploader (docs/clips.md, "Upload"): a thread that sends clips to the
hub over HTTPS with the device's certificate (agent/mtls.py, the update
download's connection), resumable by offset.

- What: clips the hub's policy uploads at once (``panic``; ``person_armed``: a
  person clip kept as an alert), and clips the hub asked for (``clip``).
  Nothing else leaves the device; before the hub has sent a policy, nothing
  goes up on its own.
- When: only while the outbox is empty. It is checked before every small
  piece of a body; when an event is queued the upload stops at once (the
  connection is dropped, the hub keeps what arrived) and resumes from the
  hub's offset after the outbox has drained, so events never wait behind a clip.
- How fast and how much: a token bucket at ``clips.upload_bytes_per_s`` and a
  small socket send buffer (what is queued in the kernel at a cut is lost and
  billed), within a daily byte budget (the smaller of the device's
  ``clips.daily_upload_bytes`` and the policy's ``daily``), counted in body
  bytes sent, retries included, persisted so a restart does not reset it.
- Resume: ``HEAD`` for the hub's offset, then ``PATCH`` chunks with
  ``Upload-Offset``; a cut, 409 or 5xx goes back to ``HEAD``.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from agent.mtls import MtlsConnection, TlsIdentity, TokenBucket, client_context

log = logging.getLogger(__name__)

MAX_CHUNK = 256 * 1024  # the hub refuses larger PATCH bodies
PIECE = 2048
_RETRY = frozenset({408, 429, 500, 502, 503, 504})


class ClipLike(Protocol):
    """A row of the clip index (agent.clips.store.Clip)."""

    @property
    def event_id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def start_ms(self) -> int: ...
    @property
    def end_ms(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def keep(self) -> bool: ...
    @property
    def uploaded(self) -> bool: ...
    @property
    def detections(self) -> Sequence[Sequence[int]]: ...


class ClipIndex(Protocol):
    """What the uploader needs of agent.clips.store.ClipStore."""

    def get(self, event_id: int) -> ClipLike | None: ...
    def all(self) -> Sequence[ClipLike]: ...
    def mark_uploaded(self, event_id: int) -> None: ...
    def path_of(self, event_id: int) -> Path: ...


@dataclass(frozen=True, slots=True)
class UploadSettings:
    base_url: str  # https://<hub>:<port>/clips/ (clips_url of the update URL)
    device_id: str
    identity: TlsIdentity
    bytes_per_s: int = 65_536
    daily_bytes: int = 20_000_000  # the device's own ceiling; the policy may lower it
    timeout_s: float = 30.0
    backoff_cap_s: float = 60.0


def clips_url(update_url: str) -> str:
    """The hub's clip endpoint: the update server's host and port (docs/clips.md)."""
    p = urlsplit(update_url)
    return f"https://{p.netloc}/clips/"


class _Paused(Exception):
    """The outbox has something to send: stop using the link."""


class _OutOfBudget(Exception):
    pass


class _Refused(Exception):
    """The hub will not take this clip (400, 403, 413 …): not worth retrying."""


class _Transient(Exception):
    pass


class ClipUploader:
    """``start()``/``stop()``; ``request`` and ``set_policy`` are the ``clip`` and ``clips`` command ports."""

    def __init__(
        self,
        settings: UploadSettings,
        index: ClipIndex,
        state_dir: Path,
        busy: Callable[[], bool],
        *,
        today: Callable[[], str] = lambda: time.strftime("%Y-%m-%d"),
        sleep_s: float = 0.2,
    ) -> None:
        self.s = settings
        self.index = index
        self.busy = busy  # True while the outbox holds anything
        self.today = today
        self.sleep_s = sleep_s
        self._state_path = state_dir / "upload.json"
        self._policy_path = state_dir / "policy.json"
        state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        st = _read_json(self._state_path)
        self._day = str(st.get("day", ""))
        self._used = int(st.get("bytes", 0)) if self._day == today() else 0
        self._requested: list[int] = [int(x) for x in st.get("requested", [])]
        pol = _read_json(self._policy_path)
        self._auto: frozenset[str] = frozenset(pol.get("auto", ()))  # no policy yet: nothing on its own
        self._policy_daily = int(pol.get("daily", settings.daily_bytes))
        self._refused: set[int] = set()  # this boot: the hub said no
        self.context = client_context(settings.identity, "clip upload")
        self._conn: MtlsConnection | None = None
        self._session: ssl.SSLSession | None = None
        # One TLS record per piece: a cut loses the record it falls in (the hub
        # cannot decrypt half of one), so pieces are small; 2 KB costs 1.4 % in
        # record headers and bounds the loss to 2 KB a cut.
        self._piece = max(512, min(PIECE, settings.bytes_per_s // 8))
        self._chunk = min(MAX_CHUNK, max(self._piece, settings.bytes_per_s))  # about a second per PATCH
        self.bucket = TokenBucket(settings.bytes_per_s, self._piece)
        self.body_bytes = 0  # body bytes sent, retries included
        self.uploaded: list[int] = []
        self.pauses = 0
        self.error: str | None = None

    # -- command ports -----------------------------------------------------------

    def request(self, event_id: int) -> str | None:
        """``clip``: upload that clip now (behind any waiting events)."""
        if self.index.get(event_id) is None:
            return f"no clip for event {event_id}"
        with self._lock:
            if event_id not in self._requested:
                self._requested.append(event_id)
            self._refused.discard(event_id)
            self._save()
        self._wake.set()
        return None

    def set_policy(self, auto: list[str], daily: int) -> str | None:
        """``clips``: the hub's policy, kept across restarts."""
        with self._lock:
            self._auto, self._policy_daily = frozenset(auto), daily
            _write_json(self._policy_path, {"auto": sorted(self._auto), "daily": daily})
        self._wake.set()
        return None

    # -- numbers -----------------------------------------------------------------

    @property
    def uploaded_today(self) -> int:
        """Health ``clu``."""
        with self._lock:
            return self._used if self._day == self.today() else 0

    @property
    def daily_limit(self) -> int:
        return min(self.s.daily_bytes, self._policy_daily)

    # -- the thread --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="xl-clip-upload", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if self.busy():
                self._stop.wait(self.sleep_s)
                continue
            clip = self.next_clip()
            if clip is None:
                self._wake.wait(5.0)
                self._wake.clear()
                continue
            try:
                self.upload(clip)
                failures = 0
            except _Paused:
                self.pauses += 1
            except _OutOfBudget:
                self._wake.wait(60.0)  # until tomorrow, or a new policy
                self._wake.clear()
            except _Refused as exc:
                self._give_up(clip.event_id, str(exc))
            except (_Transient, OSError, http.client.HTTPException) as exc:
                self._close()
                failures += 1
                self.error = f"clip upload: {type(exc).__name__}: {exc}"[:160]
                self._stop.wait(random.uniform(0, min(self.s.backoff_cap_s, 0.25 * 2 ** min(failures, 10))))

    def next_clip(self) -> ClipLike | None:
        """Requested clips first, in the order asked; then what the policy uploads, oldest first."""
        with self._lock:
            requested = [e for e in self._requested if e not in self._refused]
            auto = self._auto
        for event_id in requested:
            clip = self.index.get(event_id)
            if clip is not None:
                return clip
            self._forget(event_id)  # evicted meanwhile
        for clip in self.index.all():
            if clip.uploaded or clip.event_id in self._refused:
                continue
            if (clip.kind == "panic" and "panic" in auto) or (
                clip.kind == "person" and clip.keep and "person_armed" in auto
            ):
                return clip
        return None

    # -- one clip ------------------------------------------------------------------

    def upload(self, clip: ClipLike) -> None:
        """Send ``clip`` to its end (or raise); marks it uploaded."""
        path = self.index.path_of(clip.event_id)
        target = urlsplit(self.s.base_url).path.rstrip("/") + f"/{self.s.device_id}/{clip.event_id}"
        offset = self._head(target, clip.bytes)
        with open(path, "rb") as f:
            while offset < clip.bytes:
                offset = self._patch(target, f, clip, offset)
        self.index.mark_uploaded(clip.event_id)
        self._forget(clip.event_id)
        self.uploaded.append(clip.event_id)
        self.error = None
        log.info("clip %d uploaded (%d bytes)", clip.event_id, clip.bytes)

    def _head(self, target: str, size: int) -> int:
        resp = self._send("HEAD", target, {})
        resp.read()
        if resp.status == 404:
            return 0
        if resp.status != 200:
            self._fail(resp)
        offset = int(resp.getheader("Upload-Offset", "0"))
        length = resp.getheader("Upload-Length")
        if length is not None and int(length) != size:
            return 0  # the hub holds part of another clip under this id: the PATCH starts it over
        return min(offset, size)

    def _patch(self, target: str, f: Any, clip: ClipLike, offset: int) -> int:
        if self.busy():
            raise _Paused
        left = self.daily_limit - self._count(0)
        n = min(self._chunk, clip.bytes - offset, left)
        if n <= 0:
            raise _OutOfBudget
        headers = {
            "Upload-Offset": str(offset),
            "Upload-Length": str(clip.bytes),
            "Clip-Sha256": clip.sha256,
            "Clip-Start-Ms": str(clip.start_ms),
            "Clip-End-Ms": str(clip.end_ms),
            "Content-Length": str(n),
            "Content-Type": "application/offset+octet-stream",
        }
        if offset + n == clip.bytes and clip.detections:
            headers["Clip-Detections"] = json.dumps([list(d) for d in clip.detections], separators=(",", ":"))
        conn = self._connection()
        conn.putrequest("PATCH", target, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        f.seek(offset)
        sent = 0
        try:
            while sent < n:
                if self.busy():
                    self._close()  # the hub keeps what arrived; HEAD says where to go on
                    raise _Paused
                piece = f.read(min(self._piece, n - sent))
                if not piece:
                    raise _Refused(f"clip {clip.event_id} is shorter on the card than its index says")
                self.bucket.take(len(piece))
                conn.send(piece)
                sent += len(piece)
                self.body_bytes += len(piece)
                self._count(len(piece))
        finally:
            with self._lock:
                self._save()  # once a chunk, not once a piece: the SD card's writes
        resp = conn.getresponse()
        resp.read()
        if resp.will_close:
            self._close()
        if resp.status in (200, 204, 409):
            return int(resp.getheader("Upload-Offset", "0"))
        if resp.status == 422:
            raise _Transient(f"clip {clip.event_id}: the hub's sha256 check failed; starting over")
        self._fail(resp)
        return offset  # not reached

    # -- plumbing ----------------------------------------------------------------

    def _send(self, method: str, target: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        conn = self._connection()
        conn.request(method, target, headers=headers)
        return conn.getresponse()

    def _connection(self) -> MtlsConnection:
        if self._conn is None:
            p = urlsplit(self.s.base_url)
            self._conn = MtlsConnection(
                p.hostname or "",
                p.port or 443,
                self.s.timeout_s,
                self.context,
                sndbuf=max(16 * 1024, min(256 * 1024, self.s.bytes_per_s // 2)),
                session=self._session,
            )
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._session = self._conn.session or self._session
            self._conn.close()
        self._conn = None

    def _fail(self, resp: http.client.HTTPResponse) -> None:
        self._close()
        if resp.status in _RETRY:
            raise _Transient(f"HTTP {resp.status}")
        raise _Refused(f"HTTP {resp.status} {resp.reason}")

    def _give_up(self, event_id: int, why: str) -> None:
        log.warning("clip %d not uploaded: %s", event_id, why)
        self.error = f"clip {event_id}: {why}"[:160]
        with self._lock:
            self._refused.add(event_id)
        self._forget(event_id)

    def _forget(self, event_id: int) -> None:
        with self._lock:
            if event_id in self._requested:
                self._requested.remove(event_id)
                self._save()

    def _count(self, n: int) -> int:
        """Add ``n`` to today's bytes; returns today's total."""
        with self._lock:
            day = self.today()
            if day != self._day:
                self._day, self._used = day, 0
            self._used += n
            return self._used

    def _save(self) -> None:
        # Called with the lock held.
        _write_json(self._state_path, {"day": self._day, "bytes": self._used, "requested": self._requested})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)
