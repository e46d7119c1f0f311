"""Forwarding to the county platform: a durable, ordered outbox and its sinks.

Use from the rest of the hub::

    from hub.forward import EventItem, Forwarder, Snapshot, ViidConfig, ViidSink, ...

    fwd = Forwarder(engine, [ViidSink(viid_cfg), WebhookSink(hook_cfg)])   # after db upgrade
    with engine.begin() as conn:            # the ingest transaction
        ...store the event...
        fwd.enqueue(conn, EventItem(...))   # queued in the same commit
    fwd.start()  ...  fwd.stop()            # background delivery, one thread per sink
    fwd.stats()  # {sink: SinkStats(depth, oldest_age_s, dead, ...)} for /metrics

A ``Forwarder`` is also the hub's ``hub.core.forwarding.ForwardSink``: ingest
and the alert engine call ``hand_over(conn, items)`` in their transactions.

The item (``hub.core.items``, shared with ingest), explicit so both sides agree on it:

``EventItem`` — one phase of one visit, as the device reported it:
    device_id       str   20-digit camera ID
    event_id        int   protocol event id (boot << 32 | seq)
    phase           str   start | update | end
    kind            str   motion | person | panic | tamper
    time_ms         int   event time, ms since epoch UTC (device clock)
    score           int   0..100
    bbox            (x1, y1, x2, y2) permille of the frame, or None
    snapshot        Snapshot(jpeg bytes, width, height, crop) or None; crop is
                    the picture's box in permille of the frame, None for
                    the whole frame
    household_id    str | None   (webhook context only)
    clock_unsynced  bool
  Idempotency key ``<device>-<event id>-<phase>``.

``AlertItem`` — a 十户联防 alert raised or cleared by the alert engine:
    alert_id, phase (raise | clear), kind (panic | person | test), origin (device
    ID), household_id, time_ms, group_id, text, snapshot (optional).
  Idempotency key ``alert-<alert id>-<phase>``.

``ClipItem`` — a visit's clip stored at the hub (``hub.core.clips.clip_item``):
    device_id, event_id, kind, path (the MP4 at the hub), size, sha256,
    start_ms, end_ms, time_ms, detections, persons (the visit's person
    phases with their picture's geometry), household_id.
  Idempotency key ``clip-<device>-<event id>``.

Routing (decided by each sink's ``accepts``):
- ``ViidSink`` (GA/T 1400 视图库): person events that carry their snapshot,
  as PersonObjects. Enqueue a person event once its snapshot has been stored
  (snapshots arrive on their own topic), or it is sent to the webhook only.
  The snapshot is the person's source image: its type is 10 (人员图) when the
  device cropped it around the person, 14 (场景图) when it is the whole
  frame, and the box is moved into that picture's pixels. Devices send one
  picture per event phase, so the hub never has both a crop and its scene.
- ``WebhookSink``: alerts (panic included — GA/T 1400 has no panic object)
  and person/panic/tamper events, signed with HMAC-SHA256; clips as a link to
  the console or as the MP4's bytes (``clips: link | bytes | off``).
- Clips go to the 视图库 as VideoSlices (``hub.forward.viid_video``) whose
  PersonList names the visit's PersonObjects by their IDs.

Delivery is at-least-once, in order per sink; failures back off exponentially
with jitter; an item still failing after ``RetryPolicy.dead_after_s`` (or
rejected as malformed) becomes a dead letter: ``dead_letters()``,
``retry_dead(ids)``.
"""

from hub.core.items import AlertItem, ClipItem, EventItem, ForwardItem, Snapshot
from hub.forward.clock import ForwardClock, ManualClock, SystemClock
from hub.forward.forwarder import Forwarder, RetryPolicy
from hub.forward.outbox import DeadLetter, SinkStats
from hub.forward.sink import Sink, SinkError
from hub.forward.tables import forward_outbox  # importing registers migration 100
from hub.forward.viid import ViidClient, ViidConfig, ViidSink
from hub.forward.webhook import WebhookConfig, WebhookSink, verify_signature

__all__ = [
    "AlertItem",
    "ClipItem",
    "DeadLetter",
    "EventItem",
    "ForwardClock",
    "ForwardItem",
    "Forwarder",
    "ManualClock",
    "RetryPolicy",
    "Sink",
    "SinkError",
    "SinkStats",
    "Snapshot",
    "SystemClock",
    "ViidClient",
    "ViidConfig",
    "ViidSink",
    "WebhookConfig",
    "WebhookSink",
    "forward_outbox",
    "verify_signature",
]
