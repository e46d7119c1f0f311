"""The HTTPS server devices download releases from: ``https://<hub>:<port>/tuf/…``.

stdlib only (``http.server`` + ``ssl``): the repository is static files, and
the hub already depends on nothing that serves them. TLS 1.2 or later, and a
client certificate is required and verified against the county CA during the
handshake; the registry then decides (``access.DeviceGate``). Every answer
that is not a file is a short text body naming why, so a device's log (and
its ``ue``) says what was wrong.

The TLS handshake runs in the request's thread, not in ``accept``: a device on
a 4G link that stalls mid-handshake must not hold up every other device.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
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
IDLE_TIMEOUT_S = 60.0  # a device silent this long mid-request is dropped (its thread freed)


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
    target = root.joinpath(*parts).resolve()
    if not target.is_relative_to(root):
        raise BadPath("the path leads out of the repository")
    return target


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, addr: tuple[str, int], app: UpdateServer) -> None:
        self.app = app
        super().__init__(addr, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(IDLE_TIMEOUT_S)
        return self.app.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

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
        super().handle()

    def finish(self) -> None:
        if self.rfile is not None:
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

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
        try:
            target = resolve(app.root, self.path)
        except (BadPath, UnicodeDecodeError) as exc:
            log.info("refused %s from %s: %s", self.path[:200], device, exc)
            self._text(400, f"bad path: {exc}", device)
            return
        try:
            f = target.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            self._text(404, "no such file", device)  # folders too: no listings
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
        root: str | Path,
        tls: ssl.SSLContext,
        gate: DeviceGate,
        counter: ByteCounter,
        host: str = "0.0.0.0",
        port: int = 8443,
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ValueError(f"updates.repo {root}: not a folder")
        self.tls = tls
        self.gate = gate
        self.counter = counter
        self.handshake_failures = 0
        self._httpd = _Server((host, port), self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="xl-hub-updates", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()
        self.counter.start()
        log.info("serving %s on https://%s:%d%s", self.root, self._httpd.server_address[0], self.port, PREFIX)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
        self.counter.stop()
