"""GA/T 1400 视图库 client and the forwarding sink that uses it.

Identity: the hub registers with the platform ONCE, as a gateway (a
configured 20-digit ID, typically an APE/gateway code the county assigns to
the hub), and every PersonObject carries the real 20-digit DeviceID of the
camera that saw the person. The alternative — each of the county's 3,312
cameras registering and keeping alive on its own — would cost the platform
3,312 Digest sessions and 55–110 keepalives a second for no information it
does not already get from the per-object DeviceID, and the hub would have to
hold 3,312 platform passwords. Provenance stays exact because DeviceID,
SourceID and ImageID all name the camera.

What goes here: person events that have their snapshot (the platform wants
pixel coordinates and the scene image; a person record without them is of
little use), and the clips stored at the hub, as VideoSlices linked to those
PersonObjects (``hub.forward.viid_video``). Panic and other alerts have no GA/T 1400 object and travel by the
signed webhook (``hub.forward.webhook``).

Session: Register answers a 401 Digest challenge; afterwards every request
carries ``User-Identify: <gateway ID>``; Keepalive runs every ``keepalive_s``;
any 401 means the platform dropped the session, so the client registers again
and repeats the request once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hub.config_forward import ViidSection
from hub.core.items import ClipItem, EventItem, ForwardItem
from hub.forward.clock import ForwardClock, SystemClock
from hub.forward.digest import DigestChallenge, authorization_header
from hub.forward.sink import SinkError
from hub.forward.viid_objects import (
    ResponseStatus,
    parse_response_statuses,
    parse_viid_time,
    person_object,
)
from hub.forward.viid_video import video_slice_object
from protocol.ids import is_device_id
from xlconfig import default_of

log = logging.getLogger("hub.forward.viid")

CONTENT_TYPE = "application/VIID+JSON;charset=UTF-8"
# StatusCodes that mean "this request itself is wrong" (invalid format/content):
# re-sending the same record cannot help, so it is dead-lettered at once.
PERMANENT_CODES = frozenset({5, 6, 7, 8})
REGISTER = "/VIID/System/Register"
KEEPALIVE = "/VIID/System/Keepalive"
TIME = "/VIID/System/Time"
PERSONS = "/VIID/Persons"
VIDEO_SLICES = "/VIID/VideoSlices"


@dataclass(frozen=True)
class ViidConfig:
    base_url: str  # e.g. https://10.1.2.3:8080 (no trailing /VIID)
    gateway_id: str  # the hub's registered 20-digit ID; also the Digest username
    password: str = field(repr=False)
    # The defaults of the config's forward.viid section (hub/config_forward.py), written once there.
    keepalive_s: float = default_of(ViidSection, "keepalive_s")  # the platform expects 30–60 s
    register_retry_s: float = 30.0
    timeout_s: float = default_of(ViidSection, "timeout_s")
    # EventSort of the scene image. The code list differs between platform
    # vendors; confirm the value with the county platform at integration.
    event_sort: int = default_of(ViidSection, "event_sort")
    verify_tls: bool | str = default_of(ViidSection, "verify_tls")  # a CA bundle path for a county-internal CA
    # Clips as VideoSlices (docs/clips.md), and the 视频来源 code they carry (platform-specific).
    clips: bool = default_of(ViidSection, "clips")
    video_source: str = default_of(ViidSection, "video_source")
    name: str = "viid"

    def __post_init__(self) -> None:
        if not is_device_id(self.gateway_id):
            raise ValueError("gateway_id must be a 20-digit GA/T 1400 ID")
        if not 30.0 <= self.keepalive_s <= 60.0:
            log.warning("keepalive_s=%s is outside the 30–60 s platforms expect", self.keepalive_s)


class ViidClient:
    """One platform session. Methods raise SinkError; not thread-safe (one sink thread uses it)."""

    def __init__(
        self, config: ViidConfig, clock: ForwardClock | None = None, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.config = config
        self.clock: ForwardClock = clock or SystemClock()
        self.registered = False
        self.clock_offset_s: float | None = None  # platform minus hub, from System/Time
        self.last_keepalive_ms = 0
        self.next_register_ms = 0
        self._nonce: str | None = None
        self._nc = 0
        self._http = httpx.Client(
            base_url=config.base_url.rstrip("/"),
            timeout=config.timeout_s,
            verify=config.verify_tls,
            transport=transport,
            headers={"Content-Type": CONTENT_TYPE, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    # -- transport ---------------------------------------------------------------

    def _raw(self, method: str, path: str, body: Any = None, auth: str | None = None) -> httpx.Response:
        headers = {"User-Identify": self.config.gateway_id}
        if auth is not None:
            headers["Authorization"] = auth
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            return self._http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:  # refused, reset, timeout, TLS: the platform is unreachable
            raise SinkError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _statuses(resp: httpx.Response, what: str) -> list[ResponseStatus]:
        try:
            return parse_response_statuses(resp.json())
        except ValueError as exc:
            raise SinkError(f"{what}: HTTP {resp.status_code}, unreadable response: {exc}") from exc

    def _check(self, resp: httpx.Response, what: str) -> list[ResponseStatus]:
        """Map an HTTP answer to success or a SinkError of the right kind."""
        code = resp.status_code
        if code >= 500 or code in (408, 429):
            raise SinkError(f"{what}: platform busy/unavailable, HTTP {code}")
        if code == 401:
            self.registered = False
            raise SinkError(f"{what}: HTTP 401, session not accepted")
        statuses = self._statuses(resp, what)
        bad = [s for s in statuses if not s.ok]
        if bad or code >= 400:
            first = bad[0] if bad else statuses[0]
            permanent = (code >= 400) or first.status_code in PERMANENT_CODES
            raise SinkError(
                f"{what}: HTTP {code}, StatusCode {first.status_code} {first.status_string!r}",
                permanent=permanent,
            )
        return statuses

    # -- session -------------------------------------------------------------------

    def register(self) -> None:
        body = {"RegisterObject": {"DeviceID": self.config.gateway_id}}
        self.registered = False
        resp = self._raw("POST", REGISTER, body)
        if resp.status_code == 401:
            header = resp.headers.get("WWW-Authenticate", "")
            try:
                challenge = DigestChallenge.parse(header)
            except ValueError as exc:
                raise SinkError(f"register: bad Digest challenge: {exc}") from exc
            if challenge.nonce != self._nonce:
                self._nonce, self._nc = challenge.nonce, 0
            self._nc += 1
            auth = authorization_header(
                challenge,
                method="POST",
                uri=REGISTER,
                username=self.config.gateway_id,
                password=self.config.password,
                nc=self._nc,
            )
            resp = self._raw("POST", REGISTER, body, auth=auth)
            if resp.status_code == 401:
                raise SinkError("register: Digest credentials refused (check gateway_id/password)")
        self._check(resp, "register")
        now = self.clock.now_ms()
        self.registered = True
        self.last_keepalive_ms = now
        log.info("viid: registered as %s", self.config.gateway_id)
        try:
            self.measure_clock_offset()
        except SinkError as exc:  # the session works without it; log and go on
            log.warning("viid: could not read platform time: %s", exc)

    def ensure_registered(self) -> None:
        if not self.registered:
            self.register()

    def keepalive(self) -> None:
        body = {"KeepaliveObject": {"DeviceID": self.config.gateway_id}}
        resp = self._raw("POST", KEEPALIVE, body)
        if resp.status_code == 401:
            log.info("viid: keepalive got 401, registering again")
            self.register()
            return
        self._check(resp, "keepalive")
        self.last_keepalive_ms = self.clock.now_ms()

    def measure_clock_offset(self) -> float:
        """Platform time minus hub time in seconds (1 s resolution); logged when large."""
        before = self.clock.now_ms()
        resp = self._raw("GET", TIME)
        after = self.clock.now_ms()
        if resp.status_code != 200:
            raise SinkError(f"time: HTTP {resp.status_code}")
        try:
            obj = resp.json()["SystemTimeObject"]
            platform_ms = parse_viid_time(obj["LocalTime"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SinkError(f"time: unreadable SystemTimeObject: {exc}") from exc
        offset = (platform_ms - (before + after) / 2) / 1000.0
        self.clock_offset_s = offset
        level = logging.WARNING if abs(offset) > 5 else logging.INFO
        log.log(level, "viid: platform clock offset %+.1f s", offset)
        return offset

    def _session_request(self, path: str, body: Any, what: str) -> list[ResponseStatus]:
        self.ensure_registered()
        resp = self._raw("POST", path, body)
        if resp.status_code == 401:
            log.info("viid: %s got 401, registering again", what)
            self.register()
            resp = self._raw("POST", path, body)
        return self._check(resp, what)

    def post_persons(self, persons: list[dict[str, Any]]) -> list[ResponseStatus]:
        return self._session_request(PERSONS, {"PersonListObject": {"PersonObject": persons}}, "persons")

    def post_video_slices(self, slices: list[dict[str, Any]]) -> list[ResponseStatus]:
        body = {"VideoSliceListObject": {"VideoSliceObject": slices}}
        return self._session_request(VIDEO_SLICES, body, "video slices")


class ViidSink:
    """Forwarding sink: person events with a snapshot become PersonObjects, clips VideoSlices."""

    def __init__(
        self, config: ViidConfig, clock: ForwardClock | None = None, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.name = config.name
        self.config = config
        self.clock: ForwardClock = clock or SystemClock()
        self.client = ViidClient(config, self.clock, transport)

    def accepts(self, item: ForwardItem) -> bool:
        if isinstance(item, ClipItem):
            return self.config.clips
        return isinstance(item, EventItem) and item.kind == "person" and item.snapshot is not None

    def send(self, item: ForwardItem) -> None:
        if isinstance(item, ClipItem):
            self.client.post_video_slices([self._video_slice(item)])
            return
        if not isinstance(item, EventItem):
            raise SinkError("the 视图库 sink forwards person events only", permanent=True)
        try:
            person = person_object(item, event_sort=self.config.event_sort)
        except ValueError as exc:
            raise SinkError(str(exc), permanent=True) from exc
        self.client.post_persons([person])

    def _video_slice(self, item: ClipItem) -> dict[str, Any]:
        try:
            mp4 = Path(item.path).read_bytes()
        except FileNotFoundError:
            # Retention removed it before the platform could take it: re-sending cannot help.
            raise SinkError(f"clip of event {item.event_id} is no longer at the hub", permanent=True) from None
        except OSError as exc:  # a disk that is back after a remount will do
            raise SinkError(f"clip of event {item.event_id}: {exc}") from exc
        try:
            return video_slice_object(
                item, mp4, event_sort=self.config.event_sort, video_source=self.config.video_source
            )
        except ValueError as exc:
            raise SinkError(str(exc), permanent=True) from exc

    def tick(self, now_ms: int) -> None:
        """Keep the session alive; register when due. Never raises."""
        c = self.client
        try:
            if not c.registered:
                if now_ms >= c.next_register_ms:
                    c.next_register_ms = now_ms + int(self.config.register_retry_s * 1000)
                    c.register()
            elif now_ms - c.last_keepalive_ms >= self.config.keepalive_s * 1000:
                c.last_keepalive_ms = now_ms  # paces attempts while the platform is down
                c.keepalive()
        except SinkError as exc:
            log.warning("viid: session upkeep failed: %s", exc)

    def close(self) -> None:
        self.client.close()
