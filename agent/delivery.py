"""What the device may forget, and when to send again: end-to-end receipts.

A PUBACK only says the broker has a copy, and the broker's copy can vanish:
a crash loses what it has not saved (``autosave_interval``), and the hub's
session expiring throws away everything queued for it. So a kept message
(event, snapshot, ack) stays in the outbox until the hub's receipt says it is
committed (protocol/receipts.py). This class, used only on the link thread,
holds the bookkeeping between PUBACK and receipt and decides what to send:

* At most ``window`` messages are out without a receipt. That bounds what a
  lost broker copy can cost to re-send, and what the broker queues for the
  hub per device while the hub is away.
* A message with no receipt ``timeout_s`` after its PUBACK may have been
  lost. While receipts are arriving (the hub is there), it is sent again.
* While none arrive (the hub is away, or a restarted broker answers "no
  matching subscribers"), nothing is re-sent but one probe, the smallest
  overdue message, at a delay doubling from ``probe_s[0]`` to ``probe_s[1]``.
  New messages still go out once each while the window has room: if the
  broker keeps them the hub gets them without a re-send.
* When receipts start again, every overdue clock restarts: the hub first
  drains what the broker kept for it, and only what is still missing after
  another ``timeout_s`` is sent again. Messages the broker said it gave to
  nobody (PUBACK 0x10) are known lost and go at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from protocol.receipts import Range, covers

LOST = float("-inf")  # the PUBACK said nobody was subscribed: the broker dropped it


class Deliveries:
    def __init__(
        self,
        window: int = 50,
        timeout_s: float = 30.0,
        probe_s: tuple[float, float] = (2.0, 60.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.timeout_s = timeout_s
        self.probe_s = probe_s
        self._clock = clock
        self.awaiting: dict[int, float] = {}  # seq -> when the broker took it (LOST: it went nowhere)
        self.last_receipt = LOST
        self.probe_delay = probe_s[0]
        self.next_probe = LOST
        self.probes = 0  # probes sent, for health and tests
        self._silent = False

    # -- what happened -------------------------------------------------------

    def broker_took(self, seq: int) -> None:
        if seq not in self.awaiting:
            self.awaiting[seq] = self._clock()

    def nobody_heard(self, seq: int) -> None:
        """PUBACK 0x10: the hub is not subscribed, so it is not there."""
        self.awaiting[seq] = LOST
        self.last_receipt = LOST

    def receipted(self, ranges: Sequence[Range]) -> list[int]:
        """Mark a receipt; returns the awaited seqs it settles (the outbox deletes by range anyway)."""
        now = self._clock()
        if self.silent(now):
            # The hub is back: give it time to drain what the broker kept before re-sending any of it.
            for seq, at in self.awaiting.items():
                if at != LOST:
                    self.awaiting[seq] = now
        self.last_receipt = now
        self.probe_delay = self.probe_s[0]
        self.next_probe = LOST
        self._silent = False
        done = [seq for seq in self.awaiting if covers(ranges, seq)]
        for seq in done:
            del self.awaiting[seq]
        return done

    def forget(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            self.awaiting.pop(seq, None)

    # -- decisions -----------------------------------------------------------

    def silent(self, now: float | None = None) -> bool:
        """Something is overdue and no receipt came for ``timeout_s``: the hub is not answering."""
        now = self._clock() if now is None else now
        if now - self.last_receipt < self.timeout_s:
            return False
        return any(now - at >= self.timeout_s for at in self.awaiting.values())

    def room(self, inflight: int) -> int:
        """How many new messages may be sent now."""
        return max(0, self.window - inflight - len(self.awaiting))

    def resend(self, sizes_of: Callable[[list[int]], dict[int, int]]) -> list[int]:
        """Overdue seqs to send again now. ``sizes_of`` gives the payload size of
        each of those still in the outbox (one a full outbox dropped is forgotten).

        Silent: at most one probe, when its delay has passed. Otherwise every overdue one."""
        now = self._clock()
        overdue = [seq for seq, at in self.awaiting.items() if now - at >= self.timeout_s]
        if not overdue:
            return []
        silent = self.silent(now)
        if silent and not self._silent:  # just went silent: the first probe waits one delay
            self._silent = True
            self.next_probe = now + self.probe_delay
            return []
        if silent and now < self.next_probe:
            return []  # before the query: this runs ten times a second while the hub is away
        sizes = sizes_of(overdue)
        for seq in overdue:
            if seq not in sizes:
                del self.awaiting[seq]
        overdue = [seq for seq in overdue if seq in sizes]
        if not overdue:
            return []
        if not silent:
            for seq in overdue:
                del self.awaiting[seq]
            return sorted(overdue)
        probe = min(overdue, key=lambda s: (sizes[s], s))
        del self.awaiting[probe]
        self.probes += 1
        self.probe_delay = min(self.probe_s[1], self.probe_delay * 2)
        self.next_probe = now + self.probe_delay
        return [probe]
