"""A real HTTPS file server for the device updater's tests: client certificate
required (the county CA), HTTP/1.1 keep-alive, HTTP Range (one range), and
per-path overrides so a test can play an attacker or a broken hub.

The hub's own server is hub/updates/; this one is the test's independent
stand-in, so the device side is tested against the HTTP rules, not against
another part of this repository.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sim.ports import free_port
from tests.support.tls import Pki

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class UpdateServer:
    def __init__(self, root: Path, pki: Pki, *, ignore_range: bool = False) -> None:
        self.root = root
        self.port = free_port()
        self.overrides: dict[str, bytes | int] = {}  # URL path -> body, or an HTTP status
        self.ignore_range = ignore_range
        self.requests: list[tuple[str, str | None, int]] = []  # path, Range header, status
        self.peer_cns: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._serve(self)

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/tuf/"

    def start(self) -> UpdateServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        cert = h.connection.getpeercert()  # type: ignore[attr-defined]
        subject = dict(x[0] for x in cert.get("subject", ())) if cert else {}
        path = h.path.split("?", 1)[0]
        with self._lock:
            self.peer_cns.append(subject.get("commonName", ""))
        body: bytes | None = None
        override = self.overrides.get(path)
        if isinstance(override, int):
            self._send(h, path, override, b"")
            return
        if override is not None:
            body = override
        elif path.startswith("/tuf/") and ".." not in path:
            file = self.root / path[len("/tuf/") :]
            if file.is_file():
                body = file.read_bytes()
        if body is None:
            self._send(h, path, 404, b"not found")
            return
        rng = h.headers.get("Range")
        m = _RANGE.fullmatch(rng or "")
        if m and not self.ignore_range:
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else len(body) - 1
            if start >= len(body):
                self._send(h, path, 416, b"", {"Content-Range": f"bytes */{len(body)}"})
                return
            end = min(end, len(body) - 1)
            self._send(h, path, 206, body[start : end + 1], {"Content-Range": f"bytes {start}-{end}/{len(body)}"})
            return
        self._send(h, path, 200, body)

    def _send(
        self, h: BaseHTTPRequestHandler, path: str, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        with self._lock:
            self.requests.append((path, h.headers.get("Range"), status))
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        with contextlib.suppress(OSError):  # the link-cutting proxy dropped the client
            h.wfile.write(body)
