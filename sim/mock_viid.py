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

import base64
import binascii
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

SHANGHAI = timezone(timedelta(hours=8))
_DIGITS = re.compile(r"^\d+$")
_PARAM = re.compile(r'(\w+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]+)')

PERSON_REQUIRED = {
    "PersonID", "InfoKind", "SourceID", "DeviceID", "LeftTopX", "LeftTopY", "RightBtmX", "RightBtmY",
    "IsDriver", "IsForeigner", "IsSuspectedTerrorist", "IsCriminalInvolved", "IsDetainees", "IsVictim",
    "IsSuspiciousPerson",
}  # fmt: skip
PERSON_OPTIONAL = {"SubImageList", "PersonAppearTime", "PersonDisAppearTime", "LocationMarkTime"}
IMAGE_REQUIRED = {
    "ImageID",
    "EventSort",
    "DeviceID",
    "Type",
    "FileFormat",
    "ShotTime",
    "Width",
    "Height",
    "Data",
}
IMAGE_OPTIONAL = {"StoragePath"}


class Reject(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _digits(value: Any, n: int, what: str) -> str:
    if not isinstance(value, str) or len(value) != n or not _DIGITS.match(value):
        raise Reject(8, f"{what} must be a string of {n} digits, got {value!r:.60}")
    return value


def _time14(value: Any, what: str) -> None:
    _digits(value, 14, what)
    try:
        datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise Reject(8, f"{what} is not a valid YYYYMMDDhhmmss time: {value!r}") from exc


def _image_like_id(value: Any, what: str) -> str:
    text = _digits(value, 41, what)
    if text[20:22] != "02":
        raise Reject(8, f"{what} type code must be 02 (image), got {text[20:22]}")
    _time14(text[22:36], f"{what} time part")
    return text


def _int(obj: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise Reject(8, f"{key} must be an integer {lo}..{hi}, got {value!r:.40}")
    return value


def check_person(person: Any) -> None:
    """Raise Reject unless ``person`` is a well-formed automatically captured PersonObject."""
    if not isinstance(person, dict):
        raise Reject(8, "PersonObject must be an object")
    keys = set(person)
    if missing := PERSON_REQUIRED - keys:
        raise Reject(8, f"PersonObject lacks {sorted(missing)}")
    if unknown := keys - PERSON_REQUIRED - PERSON_OPTIONAL:
        raise Reject(8, f"PersonObject has unknown fields {sorted(unknown)}")
    device = _digits(person["DeviceID"], 20, "DeviceID")
    source = _image_like_id(person["SourceID"], "SourceID")
    pid = _digits(person["PersonID"], 48, "PersonID")
    if pid[:41] != source or pid[41:43] != "01":
        raise Reject(8, "PersonID must be SourceID + 01 + 5-digit sequence")
    if _int(person, "InfoKind", 0, 2) != 1:
        raise Reject(8, "InfoKind must be 1 (automatic) for a capture device")
    for flag in PERSON_REQUIRED:
        if flag.startswith("Is") and _int(person, flag, 0, 2) not in (0, 2):
            raise Reject(8, f"{flag} must be 0 or 2 from an automatic capture")
    for key in ("PersonAppearTime", "PersonDisAppearTime", "LocationMarkTime"):
        if key in person:
            _time14(person[key], key)
    left, top = _int(person, "LeftTopX", 0, 100_000), _int(person, "LeftTopY", 0, 100_000)
    right, bottom = _int(person, "RightBtmX", 0, 100_000), _int(person, "RightBtmY", 0, 100_000)
    if left > right or top > bottom:
        raise Reject(8, "box corners are not ordered")
    images = person.get("SubImageList", {}).get("SubImageInfoObject", [])
    if not isinstance(images, list):
        raise Reject(8, "SubImageInfoObject must be a list")
    for image in images:
        if not isinstance(image, dict):
            raise Reject(8, "SubImageInfoObject entries must be objects")
        if missing := IMAGE_REQUIRED - set(image):
            raise Reject(8, f"SubImageInfoObject lacks {sorted(missing)}")
        if unknown := set(image) - IMAGE_REQUIRED - IMAGE_OPTIONAL:
            raise Reject(8, f"SubImageInfoObject has unknown fields {sorted(unknown)}")
        _image_like_id(image["ImageID"], "ImageID")
        _digits(image["DeviceID"], 20, "SubImage DeviceID")
        if image["DeviceID"] != device:
            raise Reject(8, "SubImage DeviceID differs from the person's DeviceID")
        if image["Type"] not in ("10", "14") or image["FileFormat"] != "Jpeg":
            raise Reject(8, f"Type must be '10' or '14' and FileFormat 'Jpeg': {image['Type']!r}")
        _time14(image["ShotTime"], "ShotTime")
        width, height = _int(image, "Width", 1, 10_000), _int(image, "Height", 1, 10_000)
        # The box is in the pixels of the person's source image, whichever type it is.
        if image["ImageID"] == source and (right >= width or bottom >= height):
            raise Reject(8, "person box lies outside its source image")
        try:
            data = base64.b64decode(image["Data"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise Reject(8, f"Data is not base64: {exc}") from exc
        if not (data.startswith(b"\xff\xd8") and data.rstrip(b"\x00").endswith(b"\xff\xd9")):
            raise Reject(8, "Data is not a JPEG")
    if images and not any(i.get("ImageID") == source for i in images):
        raise Reject(8, "no SubImageInfoObject is the SourceID image the box refers to")


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
                # Imported here: sim.mock_viid_video builds on this module's checks.
                from sim.mock_viid_video import check_video_slice

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
