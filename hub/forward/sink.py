"""The port every forwarding target implements, and how a send can fail."""

from __future__ import annotations

from typing import Protocol

from hub.core.items import ForwardItem


class SinkError(Exception):
    """A send failed. ``permanent`` means the target rejected the item itself
    (a malformed record, a 4xx other than auth/throttling): retrying the same
    bytes cannot succeed, so the outbox dead-letters it at once instead of
    letting it block the sink's queue until its dead-letter age."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sink(Protocol):
    name: str  # unique per forwarder; becomes the outbox ``sink`` column (≤ 32 chars)

    def accepts(self, item: ForwardItem) -> bool:
        """Whether this sink wants the item at all (decided at enqueue time)."""
        ...

    def send(self, item: ForwardItem) -> None:
        """Deliver one item; return on success, raise SinkError on failure."""
        ...

    def tick(self, now_ms: int) -> None:
        """Housekeeping between sends (keepalives, re-registration). Must not raise."""
        ...

    def close(self) -> None: ...
