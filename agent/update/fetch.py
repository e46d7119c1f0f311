"""HTTPS downloads from the hub's update server, for a metered and flaky 4G link.

- mTLS: the device shows its own client certificate (the broker's, from the
  agent config) and accepts only a server certificate from the county CA with
  the hub's name in it (the connection is agent/mtls.py's, shared with the
  clip uploader).
- Resume: a download goes into a ``.part`` file and a cut link resumes it with
  an HTTP Range request from the byte it stopped at. No ``If-Range`` is needed:
  targets are served under their hash (consistent snapshot), so the bytes
  behind a URL never change.
- A bandwidth cap in bytes/s (a token bucket over every body byte), and, when a
  cap is set, a small TCP receive window, so the hub cannot push much faster
  than the cap into kernel buffers: what is in flight when the link is cut is
  lost and billed, and this bounds it.
- Timeouts on connect and on every read; a link that makes no progress for
  ``give_up_s`` ends the download with an error instead of hanging.

Only the standard library (http.client, ssl): the update child imports this,
and so can the running agent without weighing on its memory.
"""

from __future__ import annotations

import http.client
import os
import random
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from agent.mtls import MtlsConnection, TlsFileMissing, TlsIdentity, TokenBucket, client_context

__all__ = ["FetchError", "HttpStatusError", "HttpsFetcher", "TlsIdentity", "TokenBucket"]

CHUNK = 64 * 1024
MIN_WINDOW, MAX_WINDOW = 16 * 1024, 256 * 1024
FSYNC_EVERY = 4 * 1024 * 1024  # bytes: bounds what a power cut can make the device fetch again
# The slow-retrieval attack: a server (or a path holding back its packets) that sends a byte
# just before every read would time out keeps a response open for ever. A body slower than
# this on average, once past the grace, is a failure like a cut (retried, then given up).
MIN_BYTES_PER_S = 256.0
SLOW_GRACE_S = 120.0
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
T = TypeVar("T")


class FetchError(Exception):
    """A download failed for good; ``str()`` is the operator-facing reason."""


class HttpStatusError(FetchError):
    def __init__(self, url: str, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason} for {_path_of(url)}")
        self.status = status


class _Transient(Exception):
    """A failure worth retrying: the link, a timeout, a 5xx."""


class HttpsFetcher:
    """GETs over one kept-alive mTLS connection (a TLS handshake with a client
    certificate costs a few KB, paid again only after a cut)."""

    def __init__(
        self,
        identity: TlsIdentity,
        *,
        timeout_s: float = 30.0,
        bandwidth_bytes_per_s: int | None = None,
        give_up_s: float = 1800.0,
        backoff_cap_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout_s = timeout_s
        self.give_up_s = give_up_s
        self.min_bytes_per_s = MIN_BYTES_PER_S
        if bandwidth_bytes_per_s is not None:
            self.min_bytes_per_s = min(MIN_BYTES_PER_S, bandwidth_bytes_per_s / 4)
        self.slow_grace_s = SLOW_GRACE_S
        self.backoff_cap_s = backoff_cap_s
        self._sleep = sleep
        self.context = _client_context(identity)
        self.bucket: TokenBucket | None = None
        self._rcvbuf: int | None = None
        self._chunk = CHUNK
        if bandwidth_bytes_per_s is not None:
            # Reads of about 1/8 s at the cap keep the rate smooth at any cap.
            self._chunk = max(1024, min(CHUNK, bandwidth_bytes_per_s // 8))
            self.bucket = TokenBucket(bandwidth_bytes_per_s, self._chunk, sleep=sleep)
            self._rcvbuf = max(MIN_WINDOW, min(MAX_WINDOW, bandwidth_bytes_per_s // 2))
        self._conn: MtlsConnection | None = None
        self._session: ssl.SSLSession | None = None
        self._conn_key: tuple[str, int] | None = None
        self.body_bytes = 0  # body bytes received, every request and retry included
        self.requests = 0
        self.connections = 0

    def close(self) -> None:
        if self._conn is not None:
            self._session = self._conn.session or self._session
            self._conn.close()
        self._conn = None

    # -- whole small files (TUF metadata) --------------------------------------

    def get(self, url: str, max_bytes: int) -> bytes:
        """The body of ``url``, at most ``max_bytes``; retried on transient failures."""
        return self._retrying(url, lambda: b"".join(self._get_once(url, max_bytes)))

    def _get_once(self, url: str, max_bytes: int) -> Iterator[bytes]:
        resp = self._request(url, {})
        if resp.status != 200:
            self._fail_status(url, resp)
        got = 0
        started = time.monotonic()
        while chunk := self._read(resp):
            got += len(chunk)
            self._check_rate(url, got, started)
            if got > max_bytes:
                self.close()
                raise FetchError(f"{_path_of(url)} is larger than its limit of {max_bytes} bytes")
            yield chunk
        self._finish(resp)

    # -- large files, resumed --------------------------------------------------

    def download(self, url: str, part: Path, length: int, on_bytes: Callable[[int], None] | None = None) -> Path:
        """Fetch ``url`` into ``part`` until it holds exactly ``length`` bytes.

        Resumes what ``part`` already holds (a previous run, or a cut). The
        caller verifies hashes; this guarantees only the length, and never
        writes a byte past it (a hostile or broken server cannot fill the SD).
        """
        part.parent.mkdir(parents=True, exist_ok=True)

        def attempt() -> Path:
            self._download_once(url, part, length, on_bytes)
            return part

        return self._retrying(url, attempt, progress=lambda: part.stat().st_size if part.exists() else 0)

    def _download_once(self, url: str, part: Path, length: int, on_bytes: Callable[[int], None] | None) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have > length:
            part.unlink()
            have = 0
        if have == length:
            return
        resp = self._request(url, {"Range": f"bytes={have}-"} if have else {})
        if resp.status == 206:
            start, total = _content_range(resp.getheader("Content-Range", ""))
            if start != have:
                self.close()
                raise FetchError(f"{_path_of(url)}: asked for byte {have}, the server sent from {start}")
            if total is not None and total != length:
                self.close()
                raise FetchError(f"{_path_of(url)} is {total} bytes on the server, {length} in the signed metadata")
            mode = "ab"
        elif resp.status == 200:
            mode, have = "wb", 0  # the server ignored the Range: start over
        elif resp.status == 416 and have:
            # The server's file is shorter than what we hold: our part is not its prefix.
            resp.read()
            part.unlink()
            raise _Transient(f"{_path_of(url)}: range not satisfiable, starting over")
        else:
            self._fail_status(url, resp)
        written_since_sync = 0
        started, got = time.monotonic(), 0
        with open(part, mode) as out:
            try:
                while chunk := self._read(resp):
                    if have + len(chunk) > length:
                        self.close()
                        raise FetchError(
                            f"{_path_of(url)}: the server sent more than the {length} bytes the metadata allows"
                        )
                    out.write(chunk)
                    have += len(chunk)
                    got += len(chunk)
                    written_since_sync += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                    if written_since_sync >= FSYNC_EVERY:
                        out.flush()
                        os.fsync(out.fileno())
                        written_since_sync = 0
                    self._check_rate(url, got, started)
            finally:
                out.flush()
                os.fsync(out.fileno())
        self._finish(resp)
        if have != length:
            raise _Transient(f"{_path_of(url)}: connection closed at byte {have} of {length}")

    # -- plumbing --------------------------------------------------------------

    def _retrying(self, url: str, once: Callable[[], T], progress: Callable[[], int] | None = None) -> T:
        """Retry transient failures with capped exponential backoff and full jitter.

        The clock that ends it is time without progress: a link that cuts
        every minute but moves bytes each time is worth staying on."""
        failures = 0
        last_progress = time.monotonic()
        seen = progress() if progress else 0
        while True:
            try:
                return once()
            except (_Transient, OSError, http.client.HTTPException) as exc:
                self.close()
                now_seen = progress() if progress else 0
                if now_seen > seen:
                    seen, failures, last_progress = now_seen, 0, time.monotonic()
                failures += 1
                stalled = time.monotonic() - last_progress
                if stalled >= self.give_up_s:
                    raise FetchError(f"{_path_of(url)}: no progress for {stalled:.0f} s ({_describe(exc)})") from exc
                self._sleep(random.uniform(0, min(self.backoff_cap_s, 0.25 * 2 ** min(failures, 10))))

    def _request(self, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise FetchError(f"not an https URL: {url[:80]!r}")
        key = (parts.hostname, parts.port or 443)
        if self._conn is None or self._conn_key != key:
            self.close()
            self._conn = MtlsConnection(
                key[0], key[1], self.timeout_s, self.context, rcvbuf=self._rcvbuf, session=self._session
            )
            self._conn_key = key
            self.connections += 1
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.requests += 1
        try:
            self._conn.request("GET", target, headers={"Accept-Encoding": "identity", **headers})
            return self._conn.getresponse()
        except ssl.SSLCertVerificationError as exc:
            raise FetchError(f"the update server's certificate is not trusted: {exc.verify_message}") from exc
        except ssl.SSLError as exc:
            if "alert" in str(exc).lower():  # the server refused our certificate (revoked, unknown)
                raise FetchError(f"the update server refused the TLS handshake: {exc.reason}") from exc
            raise

    def _read(self, resp: http.client.HTTPResponse) -> bytes:
        # read1: what one read of the socket brings, so a trickled body is seen as one
        # (read(n) waits for all n bytes, and the rate check would never run).
        chunk = resp.read1(self._chunk)
        if not chunk:
            resp.read()  # at the end: marks the response done, so the connection is kept
        self.body_bytes += len(chunk)
        if chunk and self.bucket is not None:
            self.bucket.take(len(chunk))
        return chunk

    def _check_rate(self, url: str, got: int, started: float) -> None:
        elapsed = time.monotonic() - started
        if elapsed > self.slow_grace_s and got < self.min_bytes_per_s * elapsed:
            self.close()
            raise _Transient(f"{_path_of(url)}: too slow ({got} bytes in {elapsed:.0f} s)")

    def _finish(self, resp: http.client.HTTPResponse) -> None:
        if resp.will_close:
            self.close()

    def _fail_status(self, url: str, resp: http.client.HTTPResponse) -> None:
        resp.read(4096)
        self.close()
        if resp.status in _RETRY_STATUSES:
            raise _Transient(f"HTTP {resp.status} for {_path_of(url)}")
        raise HttpStatusError(url, resp.status, resp.reason)


def _client_context(identity: TlsIdentity) -> ssl.SSLContext:
    try:
        return client_context(identity, "update")
    except TlsFileMissing as exc:
        raise FetchError(str(exc)) from None


def _content_range(value: str) -> tuple[int, int | None]:
    """``bytes 100-199/1000`` → (100, 1000); ``*`` total → None."""
    unit, _, rest = value.strip().partition(" ")
    span, _, total = rest.partition("/")
    start, _, _end = span.partition("-")
    if unit != "bytes" or not start.isdigit():
        raise FetchError(f"bad Content-Range {value[:60]!r}")
    return int(start), int(total) if total.isdigit() else None


def _path_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1] or url[:60]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:100]
