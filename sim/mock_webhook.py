"""A receiver for the hub's signed webhook, standing in for the platform's endpoint.

``make demo`` posts panics to it and the forwarding tests check deliveries
against it. It checks each signature with its own HMAC arithmetic rather
than the hub's, so a signing bug cannot pass on both sides.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class MockWebhook:
    """Receives signed webhook posts; checks the signature with its own HMAC arithmetic."""

    def __init__(self, secret: bytes, max_skew_s: float = 300.0, now_s: Callable[[], float] | None = None):
        self.secret, self.max_skew_s = secret, max_skew_s
        self.now_s = now_s or time.time
        self.mode = "up"
        self.bodies: list[dict[str, Any]] = []  # accepted, first delivery of each key only
        self.duplicates = 0
        self.bad_signatures = 0
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if hook.mode != "up":
                    return self._answer(503)
                ts = self.headers.get("X-XL-Timestamp", "")
                sig = self.headers.get("X-XL-Signature", "")
                expect = "sha256=" + hmac.new(hook.secret, ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
                fresh = ts.isdigit() and abs(hook.now_s() - int(ts)) <= hook.max_skew_s
                if not fresh or not hmac.compare_digest(expect, sig):
                    with hook._lock:
                        hook.bad_signatures += 1
                    return self._answer(401)
                key = self.headers.get("Idempotency-Key", "")
                with hook._lock:
                    if key in hook._keys:
                        hook.duplicates += 1
                    else:
                        hook._keys.add(key)
                        hook.bodies.append(json.loads(raw))
                self._answer(200)

        return Handler
