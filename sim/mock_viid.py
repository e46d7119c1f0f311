"""A strict GA/T 1400 视图库 standing in for the county 综治 platform.

``make demo`` forwards to it, and the forwarding and reliability tests check
the hub against it. It runs ``http.server`` on a free loopback port in a
thread and checks what a real platform checks — Digest on Register (its own MD5
arithmetic, not the hub's), the ``User-Identify`` session header, field names,
ID lengths and structure, times, base64 JPEG data, and VideoSlices
(``sim.mock_viid_video``) — and answers with proper
ResponseStatusObjects, so a malformed record fails here rather than passing
against a lenient fake. It can be taken down (refusing connections, or 503)
and brought back, answer in the list form, and send StatusCode as a string.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sim.mock_viid_video import check_video_slice
from sim.viid_checks import Reject, check_person

SHANGHAI = timezone(timedelta(hours=8))
_PARAM = re.compile(r'(\w+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]+)')


def _status(url: str, code: int, text: str, obj_id: str, string_code: bool, now: str) -> dict[str, Any]:
    return {
        "Id": obj_id,
        "RequestURL": url,
        "StatusCode": str(code) if string_code else code,
        "StatusString": text,
        "LocalTime": now,
    }


class MockViid:
    def __init__(
        self,
        user: str,
        password: str,
        *,
        realm: str = "viid-mock",
        list_form: bool = False,
        string_code: bool = False,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.user, self.password, self.realm = user, password, realm
        self.list_form, self.string_code = list_form, string_code
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.mode = "up"  # up | 503 | refuse
        self.persons: list[dict[str, Any]] = []  # accepted PersonObjects, in arrival order
        self.video_slices: list[dict[str, Any]] = []  # accepted VideoSliceObjects (sim.mock_viid_video)
        self.rejections: list[str] = []
        self.log: list[tuple[str, str, int]] = []  # (method, path, http status)
        self.sessions: set[str] = set()
        self.registrations = 0
        self.keepalives = 0
        self._nonces: dict[str, int] = {}  # nonce -> highest nc seen
        self._opaque = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # -- control -------------------------------------------------------------------

    def start(self) -> str:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def go_down(self, how: str = "refuse") -> None:
        """``refuse``: the port closes (connection refused); ``503``: up but unavailable."""
        self.mode = how
        if how == "refuse":
            self.stop()

    def come_up(self) -> None:
        if self._server is None:
            self.start()
        self.mode = "up"

    def drop_sessions(self) -> None:
        """Forget every registration, as a restarted platform does."""
        with self._lock:
            self.sessions.clear()

    # -- protocol --------------------------------------------------------------------

    def _challenge(self) -> str:
        nonce = secrets.token_hex(16)
        with self._lock:
            self._nonces[nonce] = 0
        return f'Digest realm="{self.realm}", nonce="{nonce}", qop="auth", opaque="{self._opaque}", algorithm=MD5'

    def _digest_ok(self, header: str, method: str, path: str) -> bool:
        scheme, _, rest = header.partition(" ")
        if scheme != "Digest":
            return False
        p = {k.lower(): (v[1:-1] if v.startswith('"') else v) for k, v in _PARAM.findall(rest)}
        nonce = p.get("nonce", "")
        with self._lock:
            last_nc = self._nonces.get(nonce)
        if last_nc is None or p.get("username") != self.user or p.get("realm") != self.realm:
            return False
        if p.get("uri") != path or p.get("opaque") != self._opaque or p.get("qop") != "auth":
            return False
        nc_text = p.get("nc", "")
        if not re.fullmatch(r"[0-9a-fA-F]{8}", nc_text) or int(nc_text, 16) <= last_nc:
            return False  # a replayed or malformed nonce count

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{self.user}:{self.realm}:{self.password}")
        ha2 = md5(f"{method}:{path}")
        expect = md5(f"{ha1}:{nonce}:{nc_text}:{p.get('cnonce', '')}:auth:{ha2}")
        if not hmac.compare_digest(expect, p.get("response", "")):
            return False
        with self._lock:
            self._nonces[nonce] = int(nc_text, 16)
        return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        mock = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(body).encode()
                # Logged before the reply goes out: a client that has its answer
                # must find the request in the log (tests read it straight away).
                with mock._lock:
                    mock.log.append((self.command, self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/VIID+JSON")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def _reply(self, statuses: list[dict[str, Any]], http: int = 200) -> None:
                if mock.list_form or len(statuses) > 1:
                    body = {"ResponseStatusListObject": {"ResponseStatusObject": statuses}}
                else:
                    body = {"ResponseStatusObject": statuses[0]}
                self._send(http, body)

            def _one(self, code: int, text: str, obj_id: str = "", http: int = 200) -> None:
                now = datetime.fromtimestamp(mock.now_ms() / 1000, SHANGHAI).strftime("%Y%m%d%H%M%S")
                self._reply([_status(self.path, code, text, obj_id, mock.string_code, now)], http)

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    return json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    return None

            def do_GET(self) -> None:
                if mock.mode == "503":
                    return self._send(503, {"error": "unavailable"})
                if self.path == "/VIID/System/Time":
                    now = datetime.fromtimestamp(mock.now_ms() / 1000, SHANGHAI).strftime("%Y%m%d%H%M%S")
                    obj = {"VIIDServerID": mock.user, "TimeMode": "1", "LocalTime": now, "TimeZone": "+8"}
                    return self._send(200, {"SystemTimeObject": obj})
                self._one(4, "no such resource", http=404)

            def do_POST(self) -> None:
                if mock.mode == "503":
                    return self._send(503, {"error": "unavailable"})
                body = self._body()
                if body is None:
                    return self._one(7, "Invalid JSON Format", http=400)
                ident = self.headers.get("User-Identify")
                if self.path == "/VIID/System/Register":
                    dev = (body.get("RegisterObject") or {}).get("DeviceID") if isinstance(body, dict) else None
                    auth = self.headers.get("Authorization")
                    if auth is None or not mock._digest_ok(auth, "POST", self.path):
                        return self._send(401, {}, {"WWW-Authenticate": mock._challenge()})
                    if dev != mock.user:
                        return self._one(8, "RegisterObject.DeviceID is not the authenticated ID", http=400)
                    with mock._lock:
                        mock.sessions.add(dev)
                        mock.registrations += 1
                    return self._one(0, "OK", dev)
                if ident is None or ident not in mock.sessions:
                    return self._send(401, {}, {"WWW-Authenticate": mock._challenge()})
                if self.path == "/VIID/System/Keepalive":
                    dev = (body.get("KeepaliveObject") or {}).get("DeviceID")
                    if dev != ident:
                        return self._one(8, "KeepaliveObject.DeviceID differs from User-Identify")
                    with mock._lock:
                        mock.keepalives += 1
                    return self._one(0, "OK", dev)
                if self.path == "/VIID/Persons":
                    return self._persons(body)
                if self.path == "/VIID/VideoSlices":
                    return self._video_slices(body)
                self._one(4, "no such resource", http=404)

            def _video_slices(self, body: Any) -> None:
                slices = (body.get("VideoSliceListObject") or {}).get("VideoSliceObject")
                if not isinstance(slices, list) or not slices:
                    return self._one(8, "VideoSliceListObject.VideoSliceObject must be a non-empty list")
                now = datetime.fromtimestamp(mock.now_ms() / 1000, SHANGHAI).strftime("%Y%m%d%H%M%S")
                statuses = []
                for obj in slices:
                    info = obj.get("VideoSliceInfo") if isinstance(obj, dict) else None
                    vid = str(info.get("VideoID", "")) if isinstance(info, dict) else ""
                    try:
                        check_video_slice(obj)
                    except Reject as exc:
                        with mock._lock:
                            mock.rejections.append(str(exc))
                        statuses.append(
                            _status(self.path, exc.code, f"Invalid JSON Content: {exc}", vid, mock.string_code, now)
                        )
                        continue
                    with mock._lock:
                        mock.video_slices.append(obj)
                    statuses.append(_status(self.path, 0, "OK", vid, mock.string_code, now))
                self._reply(statuses)

            def _persons(self, body: Any) -> None:
                people = (body.get("PersonListObject") or {}).get("PersonObject")
                if not isinstance(people, list) or not people:
                    return self._one(8, "PersonListObject.PersonObject must be a non-empty list")
                now = datetime.fromtimestamp(mock.now_ms() / 1000, SHANGHAI).strftime("%Y%m%d%H%M%S")
                statuses = []
                for person in people:
                    pid = str(person.get("PersonID", "")) if isinstance(person, dict) else ""
                    try:
                        check_person(person)
                    except Reject as exc:
                        with mock._lock:
                            mock.rejections.append(str(exc))
                        statuses.append(
                            _status(
                                self.path,
                                exc.code,
                                f"Invalid JSON Content: {exc}",
                                pid,
                                mock.string_code,
                                now,
                            )
                        )
                        continue
                    with mock._lock:
                        mock.persons.append(person)
                    statuses.append(_status(self.path, 0, "OK", pid, mock.string_code, now))
                self._reply(statuses)

        return Handler
