"""The one error type the wire contract raises.

Every decoder in ``protocol`` raises only :class:`ProtocolError`, with a short
machine-readable ``reason`` (the hub counts rejections by it) and a human
``detail``. Callers never need to catch ``ValueError``/``KeyError``/... from here.
"""

from __future__ import annotations

# The closed set of reasons. The hub exports a counter per reason, so keep the
# set small and stable: a new reason is a new time series on every dashboard.
REASONS = frozenset(
    {
        "too_large",  # payload over the per-kind size limit
        "not_utf8",
        "not_json",
        "not_object",  # JSON, but not an object at the top level
        "bad_version",  # schema version missing or not one we read
        "missing_field",
        "bad_field",  # present but of the wrong type or out of range
        "bad_topic",
        "bad_device_id",
        "bad_group_id",
        "bad_event_id",
        "bad_snapshot",
    }
)


class ProtocolError(ValueError):
    """Untrusted bytes or identifiers that do not follow the wire contract."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:  # a programming error, not bad input
            raise AssertionError(f"unknown ProtocolError reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
