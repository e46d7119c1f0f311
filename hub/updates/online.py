"""The hub's share of the TUF signing: the online roles (docs/ota.md section 1).

``timestamp.json`` expires after a day, so the hub re-signs it every
``updates.timestamp_refresh_s`` (6 h: three chances a day if the hub is down
for a while), and once at start, so a hub that was off for a day does not
serve an expired timestamp until its first timer. When the office copies in a
release (newer ``<N>.targets.json``), the hub signs a snapshot naming it and a
timestamp for that snapshot; it looks every ``poll_s``.

The signing itself is ``xlrelease.online``, the neutral package the release
tooling and the hub share (the hub may not import ``provisioning``). It is
reached through ``Signing`` so tests and a hub without the repository tools
can swap it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hub.periodic import Periodic

log = logging.getLogger("xl.hub.updates")


@dataclass(frozen=True)
class Signing:
    refresh_timestamp: Callable[[Path, Path], int]
    refresh_snapshot: Callable[[Path, Path], int]
    snapshot_is_behind: Callable[[Path], bool]


def xlrelease_signing() -> Signing:
    from xlrelease import online

    return Signing(
        refresh_timestamp=lambda repo, keys: int(online.refresh_timestamp(repo, keys)),
        refresh_snapshot=lambda repo, keys: int(online.refresh_snapshot(repo, keys)),
        snapshot_is_behind=lambda repo: bool(online.snapshot_is_behind(repo)),
    )


class OnlineSigner:
    """A thread that keeps the online metadata fresh; ``tick(now)`` is the whole job, for tests."""

    def __init__(
        self,
        repo: Path,
        keys_dir: Path,
        refresh_s: float,
        signing: Signing | None = None,
        poll_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repo = repo
        self.keys_dir = keys_dir
        self.refresh_s = refresh_s
        self.poll_s = min(poll_s, refresh_s)
        self._signing = signing
        self.clock = clock
        self._last_timestamp: float | None = None
        self.last_error: str | None = None
        self._periodic = Periodic("xl-hub-tuf-online", self.poll_s, self.tick, at_start=True)

    @property
    def signing(self) -> Signing:
        if self._signing is None:
            self._signing = xlrelease_signing()
        return self._signing

    def tick(self) -> str | None:
        """Sign what is due; returns what was signed ("snapshot", "timestamp") or None."""
        now = self.clock()
        try:
            if self.signing.snapshot_is_behind(self.repo):
                version = self.signing.refresh_snapshot(self.repo, self.keys_dir)  # and a timestamp for it
                log.info("new targets metadata: signed snapshot %d and a timestamp for it", version)
                self._last_timestamp, self.last_error = now, None
                return "snapshot"
            if self._last_timestamp is None or now - self._last_timestamp >= self.refresh_s:
                version = self.signing.refresh_timestamp(self.repo, self.keys_dir)
                log.info("re-signed timestamp.json (version %d)", version)
                self._last_timestamp, self.last_error = now, None
                return "timestamp"
        except Exception as exc:  # a bad key or a half-copied release: keep serving, retry next poll
            self.last_error = str(exc)
            log.error("could not sign the online TUF metadata in %s: %s", self.repo, exc)
        return None

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()
