"""The HTTPS server devices download releases from: ``https://<hub>:<port>/tuf/…``.

stdlib only (``http.server`` + ``ssl``): the repository is static files, and
the hub already depends on nothing that serves them. TLS 1.2 or later, and a
client certificate is required and verified against the county CA during the
handshake; the registry then decides (``access.DeviceGate``). Every answer
that is not a file is a short text body naming why, so a device's log (and
its ``ue``) says what was wrong.

The TLS handshake runs in the request's thread, not in ``accept``: a device on
a 4G link that stalls mid-handshake must not hold up every other device.

Other rooms mount a route under a prefix of their own (``mount``: the clip
uploads, hub/clips, under ``/clips/``): they get the same TLS and registry
check, and see only a ``DeviceExchange``, so they depend on this server and it
on none of them. Without a repository (``root`` None: a county with clips and
no OTA) the server serves its routes only; a path nobody serves is 404.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from hub.updates.access import DeviceGate, common_name
from hub.updates.counters import ByteCounter
from hub.updates.ranges import Part, Unsatisfiable, Whole, choose

log = logging.getLogger("xl.hub.updates")

PREFIX = "/tuf/"
CHUNK = 64 * 1024
IDLE_TIMEOUT_S = 60.0  # a device silent this long mid-request is dropped (its thread freed); also the
# whole TLS handshake's deadline (CPython's do_handshake keeps one deadline across its reads)
# Each connection is a thread and a file descriptor of the hub process, which also holds the
# ingest, the database and the broker connections: a stranger (the handshake needs no prior
# certificate check) must not be able to open them without bound, nor a stolen device
# certificate hold them by sending its request a byte a minute. Over either limit a connection
# is closed at once; a device retries with backoff.
MAX_CONNECTIONS = 256
MAX_PER_DEVICE = 4


def tls_context(ca: str, cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class BadPath(ValueError):
    pass


def resolve(root: Path, url_path: str) -> Path:
    """The file under ``root`` that ``url_path`` names (``/tuf/metadata/1.root.json``).

    Refused: anything outside ``/tuf/``, a ``..`` or empty segment, a backslash
    or NUL (also percent-encoded), and a symlink that leads out of ``root``."""
    path = urlsplit(url_path).path
    if not path.startswith(PREFIX):
        raise BadPath(f"only {PREFIX} is served")
    rel = unquote(path[len(PREFIX) :], errors="strict")
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\x00" in rel:
        raise BadPath("a path with an empty, '.' or '..' segment, a backslash or a NUL")
    try:
        target = root.joinpath(*parts).resolve()
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
        raise BadPath(f"the path cannot be resolved ({type(exc).__name__})") from None
    if not target.is_relative_to(root):
        raise BadPath("the path leads out of the repository")
    return target


class DeviceExchange:
    """One request of a registered, unrevoked device to a mounted route."""

    def __init__(self, handler: _Handler, device: str) -> None:
        self._h = handler
        self.device = device  # the certificate's CN, checked against the registry
        self.method: str = handler.command
        self.path: str = handler.path
        self.headers: Message = handler.headers
        self.body: io.BufferedIOBase = handler.rfile

    def reply(self, code: int, headers: dict[str, str] | None = None, text: str | None = None) -> None:
        """A status, headers and an optional short text body (never for HEAD)."""
        h = self._h
        data = b"" if text is None else (text + "\n").encode()
        h.send_response(code)
        if data:
            h.send_header("Content-Type", "text/plain; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if data and self.method != "HEAD":
            h.wfile.write(data)

    def close_after(self) -> None:
        """Close the connection after the reply: a request body was not read to its end."""
        self._h.close_connection = True


Route = Callable[[DeviceExchange], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # listen(2) backlog: socketserver's 5 drops SYNs when a cohort starts at once

    def __init__(self, addr: tuple[str, int], app: UpdateServer) -> None:
        self.app = app
        self._lock = threading.Lock()
        self.open_connections = 0
        self._per_device: dict[str, int] = {}
        super().__init__(addr, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        with self._lock:
            full = self.open_connections >= MAX_CONNECTIONS
            if not full:
                self.open_connections += 1
        if full:
            sock.close()
            self.app.connections_refused += 1
            raise OSError(f"over {MAX_CONNECTIONS} connections")  # socketserver drops it quietly
        try:
            sock.settimeout(IDLE_TIMEOUT_S)
            return self.app.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr
        except BaseException:
            self._release()
            sock.close()
            raise

    def shutdown_request(self, request: Any) -> None:
        try:
            super().shutdown_request(request)
        finally:
            self._release()

    def _release(self) -> None:
        with self._lock:
            self.open_connections -= 1

    def enter(self, device: str) -> bool:
        """One more connection of ``device``, unless it holds MAX_PER_DEVICE already."""
        with self._lock:
            n = self._per_device.get(device, 0)
            if n >= MAX_PER_DEVICE:
                return False
            self._per_device[device] = n + 1
            return True

    def leave(self, device: str) -> None:
        with self._lock:
            n = self._per_device.pop(device, 1) - 1
            if n > 0:
                self._per_device[device] = n

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: several metadata files over one handshake
    server_version = "xl-hub-updates"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        conn = self.connection
        assert isinstance(conn, ssl.SSLSocket)
        try:
            conn.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            self.server.app.handshake_failures += 1
            log.info("TLS handshake with %s refused: %s", self.client_address[0], exc)
            self.close_connection = True
            self.rfile = self.wfile = None  # type: ignore[assignment]

    def handle(self) -> None:
        if self.rfile is None:
            return
        conn = self.connection
        assert isinstance(conn, ssl.SSLSocket)
        who = common_name(conn.getpeercert()) or ""
        if not self.server.enter(who):
            self.server.app.connections_refused += 1
            log.info("closed a connection from %s (%s): it holds %d already", self.client_address[0], who[:40],
                     MAX_PER_DEVICE)  # fmt: skip
            self.close_connection = True
            return
        try:
            super().handle()
        finally:
            self.server.leave(who)

    def finish(self) -> None:
        if self.rfile is not None:
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_PATCH(self) -> None:
        self._serve(body=True)

    def _text(self, code: int, text: str, device: str | None, extra: dict[str, str] | None = None) -> None:
        data = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        if device is not None:
            self.server.app.counter.refused(device)

    def _serve(self, *, body: bool) -> None:
        app = self.server.app
        conn = self.connection
        assert isinstance(conn, ssl.SSLSocket)
        verdict = app.gate.check(common_name(conn.getpeercert()), conn.getpeercert(binary_form=True))
        if not verdict.allowed:
            log.info("refused %s %s: %s", self.client_address[0], self.path[:200], verdict.reason)
            self._text(403, verdict.reason, verdict.device_id)
            return
        device = verdict.device_id
        assert device is not None
        for prefix, route in app.routes.items():
            if self.path.startswith(prefix):
                route(DeviceExchange(self, device))
                return
        if app.root is None or not urlsplit(self.path).path.startswith(PREFIX):
            # Not the repository (or no repository), and no mounted route: clips off, a stray path.
            self.close_connection = self.command not in ("GET", "HEAD")  # a body may be unread
            self._text(404, "nothing is served here", device)
            return
        if self.command not in ("GET", "HEAD"):
            self.close_connection = True  # its body is unread
            self._text(405, f"{self.command} is not served here", device, {"Allow": "GET, HEAD"})
            return
        try:
            target = resolve(app.root, self.path)
        except (BadPath, UnicodeDecodeError) as exc:
            log.info("refused %s from %s: %s", self.path[:200], device, exc)
            self._text(400, f"bad path: {exc}", device)
            return
        try:
            f = target.open("rb")
        except OSError:  # missing, a folder (no listings), a name too long, unreadable
            self._text(404, "no such file", device)
            return
        with f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag = f'"{size:x}-{st.st_mtime_ns:x}"'
            choice = choose(self.headers.get("Range"), size)
            if_range = self.headers.get("If-Range")
            if if_range is not None and if_range != etag:
                choice = Whole()  # the file changed since the client's first part: start over
            headers = {"Accept-Ranges": "bytes", "ETag": etag, "Last-Modified": formatdate(st.st_mtime, usegmt=True)}
            if isinstance(choice, Unsatisfiable):
                self._text(
                    416,
                    f"range not satisfiable: the file has {size} bytes",
                    device,
                    {"Content-Range": f"bytes */{size}", **headers},
                )
                return
            start, length = (choice.start, choice.length) if isinstance(choice, Part) else (0, size)
            self.send_response(206 if isinstance(choice, Part) else 200)
            self.send_header(
                "Content-Type", "application/json" if target.suffix == ".json" else "application/octet-stream"
            )
            self.send_header("Content-Length", str(length))
            if isinstance(choice, Part):
                self.send_header("Content-Range", f"bytes {choice.start}-{choice.end}/{size}")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            sent = self._copy(f, start, length) if body else 0
        app.counter.served(device, sent)

    def _copy(self, f: Any, start: int, length: int) -> int:
        """Write ``length`` bytes from ``start``; the bytes written before a cut link are still counted."""
        f.seek(start)
        sent = 0
        try:
            while sent < length:
                chunk = f.read(min(CHUNK, length - sent))
                if not chunk:
                    break  # truncated under us: the client sees a short body and retries with Range
                self.wfile.write(chunk)
                sent += len(chunk)
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            self.close_connection = True
        return sent


class UpdateServer:
    """``start()`` / ``stop()``: an Extension of the hub (hub/service.py)."""

    def __init__(
        self,
        root: str | Path | None,
        tls: ssl.SSLContext,
        gate: DeviceGate,
        counter: ByteCounter,
        host: str = "0.0.0.0",
        port: int = 8443,
    ) -> None:
        # None: no TUF repository (updates off), only the mounted routes.
        self.root = None if root is None else Path(root).resolve()
        if self.root is not None and not self.root.is_dir():
            raise ValueError(f"updates.repo {root}: not a folder")
        self.tls = tls
        self.gate = gate
        self.counter = counter
        self.handshake_failures = 0
        self.connections_refused = 0  # over MAX_CONNECTIONS or MAX_PER_DEVICE
        self.routes: dict[str, Route] = {}
        self._httpd = _Server((host, port), self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="xl-hub-updates", daemon=True)

    def mount(self, prefix: str, route: Route) -> None:
        """Serve ``prefix`` (``/clips/``) with ``route``, after the TLS and registry checks."""
        if not prefix.startswith("/") or not prefix.endswith("/") or prefix == PREFIX:
            raise ValueError(f"bad route prefix {prefix!r}")
        self.routes[prefix] = route

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()
        self.counter.start()
        served = ([f"{PREFIX} ({self.root})"] if self.root is not None else []) + list(self.routes)
        log.info("serving %s on https://%s:%d", ", ".join(served), self._httpd.server_address[0], self.port)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
        self.counter.stop()
