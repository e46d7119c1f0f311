"""Signed JSON webhook sink, and the check a receiver runs on what it gets.

Signature: ``X-XL-Signature: sha256=<hex>`` where hex is HMAC-SHA256 with the
shared secret over ``<timestamp>.<raw body>`` and the timestamp (Unix seconds)
travels in ``X-XL-Timestamp``. Signing the timestamp with the body means a
captured request cannot be replayed later with a fresh timestamp; the receiver
rejects timestamps outside ``max_skew_s`` and dedups on ``Idempotency-Key``
(``<device>-<event id>-<phase>`` or ``alert-<alert id>-<phase>``), which also
absorbs the forwarder's at-least-once re-sends.

The secret is held in a field excluded from repr and is never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hub.config_forward import WebhookSection
from hub.core.items import ClipItem, EscalationItem, EventItem, ForwardItem, item_to_dict
from hub.forward.clip_links import MIN_SECRET_BYTES, signed_clip_link
from hub.forward.clock import ForwardClock, SystemClock
from hub.forward.sink import SinkError
from xlconfig import default_of

log = logging.getLogger("hub.forward.webhook")

SIGNATURE_HEADER = "X-XL-Signature"
TIMESTAMP_HEADER = "X-XL-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEMA = "xl.forward.v1"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: bytes,
    body: bytes,
    headers: Mapping[str, str],
    max_skew_s: float = 300.0,
    now_s: float | None = None,
) -> bool:
    """True if ``body`` was signed with ``secret`` within ``max_skew_s`` of now.

    ``headers`` may be any mapping; names are matched case-insensitively.
    Comparison is constant-time.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get(TIMESTAMP_HEADER.lower())
    signature = lower.get(SIGNATURE_HEADER.lower())
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    now = time.time() if now_s is None else now_s
    if abs(now - int(timestamp)) > max_skew_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: bytes = field(repr=False)
    name: str = "webhook"
    # The defaults of the config's forward.webhook section (hub/config_forward.py), written once there.
    timeout_s: float = default_of(WebhookSection, "timeout_s")
    verify_tls: bool | str = default_of(WebhookSection, "verify_tls")
    include_snapshot: bool = default_of(WebhookSection, "include_snapshot")
    event_kinds: frozenset[str] = frozenset(default_of(WebhookSection, "event_kinds"))
    clips: str = default_of(WebhookSection, "clips")  # link | bytes | off
    clip_base_url: str | None = None  # the console as the receiver reaches it (clips: link)
    # The key that signs clip links (hub/forward/clip_links.py), and how long a link works.
    clip_link_secret: bytes | None = field(default=None, repr=False)
    clip_link_s: int = round(default_of(WebhookSection, "clip_link_days") * 86400)

    def __post_init__(self) -> None:
        if self.clips not in ("link", "bytes", "off"):
            raise ValueError(f"clips must be link, bytes or off, got {self.clips!r}")
        if self.clips == "link" and not self.clip_base_url:
            raise ValueError("clips: link needs clip_base_url")
        if self.clips == "link" and (self.clip_link_secret is None or len(self.clip_link_secret) < MIN_SECRET_BYTES):
            raise ValueError(f"clips: link needs clip_link_secret of at least {MIN_SECRET_BYTES} bytes")
        if self.clip_link_s <= 0:
            raise ValueError("clip_link_s must be more than 0")


def clip_link(config: WebhookConfig, device_id: str, event_id: int, now_s: int) -> tuple[str, int]:
    """A signed link to the console's copy of the clip (HTTP Range, no login), and when it expires (Unix s)."""
    if config.clip_base_url is None or config.clip_link_secret is None:
        raise ValueError("clip links need clip_base_url and clip_link_secret")
    expires_s = now_s + config.clip_link_s
    url = signed_clip_link(config.clip_base_url, config.clip_link_secret, device_id, event_id, expires_s)
    return url, expires_s


def clip_body(item: ClipItem, config: WebhookConfig, now_s: int | None = None) -> dict[str, Any]:
    """A clip for the receiver: what it shows and when, and the MP4 as a link or base64.

    A link is signed when the body is made (``now_s``, default the time now)
    and works for ``config.clip_link_s``; ``clip.url_expires_s`` says until
    when. A re-sent body carries a fresh link (same Idempotency-Key).
    The hub's file path and the 视图库's person geometry stay out: they mean
    nothing outside the hub. Raises SinkError when the bytes are wanted and the
    file is gone (retention got there first: permanent)."""
    clip: dict[str, Any] = {"bytes": item.size, "sha256": item.sha256, "content_type": "video/mp4"}
    if config.clips == "link":
        now = int(time.time()) if now_s is None else now_s
        clip["url"], clip["url_expires_s"] = clip_link(config, item.device_id, item.event_id, now)
    else:
        try:
            mp4 = Path(item.path).read_bytes()
        except FileNotFoundError:
            raise SinkError(f"clip of event {item.event_id} is no longer at the hub", permanent=True) from None
        except OSError as exc:
            raise SinkError(f"clip of event {item.event_id}: {exc}") from exc
        if hashlib.sha256(mp4).hexdigest() != item.sha256:
            raise SinkError(f"clip file of event {item.event_id} differs from the one stored", permanent=True)
        clip["mp4_b64"] = base64.b64encode(mp4).decode("ascii")
    return {
        "schema": SCHEMA,
        "id": item.key,
        "type": "clip",
        "device_id": item.device_id,
        "event_id": item.event_id,
        "kind": item.kind,
        "household_id": item.household_id,
        "time_ms": item.time_ms,
        "start_ms": item.start_ms,
        "end_ms": item.end_ms,
        # [t_ms, score, x1, y1, x2, y2], the box in permille of the frame
        "detections": [list(d) for d in item.detections],
        "clip": clip,
    }


def webhook_body(item: ForwardItem, include_snapshot: bool) -> dict[str, Any]:
    if isinstance(item, ClipItem):
        raise TypeError("a clip's body needs the sink's config: clip_body(item, config)")
    data = item_to_dict(item)
    snap = data.pop("snapshot")
    if snap is not None and include_snapshot:
        # Boxes are in permille of the camera's frame: with the crop a receiver places them in the picture;
        # "box" is the person in the frame the picture was taken from, the event's bbox the visit's when sent.
        data["snapshot"] = {
            "jpeg_b64": snap["jpeg"],
            "width": snap["w"],
            "height": snap["h"],
            "crop": snap.get("c"),
            "box": snap.get("b"),
        }
    return {"schema": SCHEMA, "id": item.key, **data}


class WebhookSink:
    def __init__(
        self, config: WebhookConfig, clock: ForwardClock | None = None, transport: httpx.BaseTransport | None = None
    ) -> None:
        if len(config.secret) < 16:
            raise ValueError("webhook secret must be at least 16 bytes")
        self.name = config.name
        self.config = config
        self.clock: ForwardClock = clock or SystemClock()
        self._http = httpx.Client(timeout=config.timeout_s, verify=config.verify_tls, transport=transport)

    def accepts(self, item: ForwardItem) -> bool:
        if isinstance(item, ClipItem):
            return self.config.clips != "off"
        if isinstance(item, EscalationItem):
            return False  # escalation notices go only to their own role's sinks (hub/escalation/sinks.py)
        return not isinstance(item, EventItem) or item.kind in self.config.event_kinds

    def send(self, item: ForwardItem) -> None:
        data = (
            clip_body(item, self.config, self.clock.now_ms() // 1000)
            if isinstance(item, ClipItem)
            else webhook_body(item, self.config.include_snapshot)
        )
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(self.clock.now_ms() // 1000)
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.config.secret, timestamp, body),
            IDEMPOTENCY_HEADER: item.key,
        }
        try:
            resp = self._http.post(self.config.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SinkError(f"webhook unreachable: {type(exc).__name__}: {exc}") from exc
        code = resp.status_code
        if 200 <= code < 300:
            return
        detail = resp.text[:200]
        # 408/429/5xx are the receiver's trouble; 401/403 usually mean a secret rotated on
        # one side only, which an operator fixes, so those wait too rather than die.
        retry = code >= 500 or code in (401, 403, 408, 425, 429)
        raise SinkError(f"webhook HTTP {code}: {detail}", permanent=not retry)

    def tick(self, now_ms: int) -> None:
        return None

    def close(self) -> None:
        self._http.close()


def clip_bytes(body: Mapping[str, Any]) -> bytes | None:
    """The MP4 of a received clip body (clips: bytes), for receivers (None if it came as a link)."""
    clip = body.get("clip") or {}
    return None if "mp4_b64" not in clip else base64.b64decode(clip["mp4_b64"])


def snapshot_bytes(body: Mapping[str, Any]) -> bytes | None:
    """The JPEG of a received webhook body, for receivers (None if absent)."""
    snap = body.get("snapshot")
    return None if not snap else base64.b64decode(snap["jpeg_b64"])
