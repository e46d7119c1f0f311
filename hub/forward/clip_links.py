"""Signed, expiring links to one stored clip (docs/clips.md): the webhook's ``clips: link``.

A receiver of the webhook (the county's SMS gateway, a platform) has no
console login, so the link it gets carries its own permission::

    <clip_base_url>/clips/<device id>/<event id>.mp4?exp=<unix seconds>&sig=<hex>

``sig`` is HMAC-SHA256, keyed with ``forward.webhook.clip_link_secret`` (not
the webhook's own secret: the receiver holds that one and could sign links to
any clip), over ``/clips/<device id>/<event id>.mp4`` and ``exp``, joined by a
newline. The path and the expiry are both signed, so a link cannot be moved
to another clip or lengthened. The console checks it (``hub.console.clips``)
with a constant-time compare before it looks for the clip at all.

Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

MIN_SECRET_BYTES = 16


def clip_path(device_id: str, event_id: int) -> str:
    """The console's route for the clip's MP4 (hub/console/clips.py)."""
    return f"/clips/{device_id}/{event_id}.mp4"


def signature(secret: bytes, path: str, expires_s: int) -> str:
    return hmac.new(secret, f"{path}\n{expires_s}".encode(), hashlib.sha256).hexdigest()


def signed_clip_link(base_url: str, secret: bytes, device_id: str, event_id: int, expires_s: int) -> str:
    path = clip_path(device_id, event_id)
    query = urlencode({"exp": expires_s, "sig": signature(secret, path, expires_s)})
    return f"{base_url.rstrip('/')}{path}?{query}"


def link_valid(secret: bytes, path: str, exp: str | None, sig: str | None, now_s: float) -> bool:
    """True when ``sig`` signs ``path`` and ``exp`` with ``secret`` and ``exp`` is still ahead of ``now_s``.

    ``path`` is the path the request asked for, as the server routed it."""
    if not exp or not sig or not exp.isdigit() or len(exp) > 12 or len(sig) != 64:
        return False
    good = hmac.compare_digest(signature(secret, path, int(exp)).encode(), sig.lower().encode("ascii", "replace"))
    return good and int(exp) > now_s
