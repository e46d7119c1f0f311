"""A simulated device's real download of a release from the hub's update server.

The sample of xl-sim devices that does this runs the agent's own client
(agent.update.tuf_client over agent.update.fetch: mTLS with the device's own
certificate, every TUF check, deltas against the installed files, the
bandwidth cap), so the hub serves what a real device asks for and counts it
against that device. Only the download: nothing is installed.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agent.update.tuf_client import LocalFiles


class Identity(Protocol):
    """What a download needs of a simulated device (sim.fleet.Identity has it): its id and PEM paths."""

    @property
    def device_id(self) -> str: ...
    @property
    def cert(self) -> str | None: ...
    @property
    def key(self) -> str | None: ...


@dataclass(frozen=True)
class RealDownload:
    """Where the sample downloads from, and what it has installed (plain data, for worker processes)."""

    base_url: str  # https://<hub>:<port>/tuf/
    root_json: str  # the trusted root a device's bundle carries
    installed_dir: str  # the files of the release every device runs: the bases for deltas
    work_dir: str  # a folder per sampled device is made under it
    machine: str = "aarch64"
    every: int = 50  # about one device in this many
    bandwidth_bytes_per_s: int | None = 131_072  # the agent's update cap


@dataclass(frozen=True)
class DownloadResult:
    device_id: str
    version: str
    body_bytes: int  # every body byte the device received, retries included
    requests: int
    connections: int
    seconds: float
    deltas: int  # targets made from a delta
    copied: int  # targets found among the installed files
    error: str | None = None


_installed: dict[str, LocalFiles] = {}
_installed_lock = threading.Lock()


def _installed_files(folder: str) -> LocalFiles:
    """Hashed once per process: every sampled device has the same release installed."""
    from agent.update.tuf_client import LocalFiles

    with _installed_lock:
        if folder not in _installed:
            _installed[folder] = LocalFiles.scan([Path(folder)])
        return _installed[folder]


def real_download(cfg: RealDownload, ident: Identity, ca: str | None, version: str) -> DownloadResult:
    """Fetch and verify release ``version`` as the device ``ident``; never raises."""
    # Imported here: the fleet without a real sample never loads python-tuf.
    from agent.update.fetch import HttpsFetcher, TlsIdentity
    from agent.update.tuf_client import ReleaseClient, UpdateRefused

    started = time.monotonic()
    if ca is None or ident.cert is None or ident.key is None:
        return DownloadResult(ident.device_id, version, 0, 0, 0, 0.0, 0, 0, "no TLS identity for a real download")
    home = Path(cfg.work_dir) / ident.device_id
    shutil.rmtree(home, ignore_errors=True)
    metadata = home / "tuf"
    metadata.mkdir(parents=True)
    shutil.copy(cfg.root_json, metadata / "root.json")
    https = HttpsFetcher(
        TlsIdentity(Path(ca), Path(ident.cert), Path(ident.key)),
        bandwidth_bytes_per_s=cfg.bandwidth_bytes_per_s,
        give_up_s=120.0,
    )
    error: str | None = None
    client: ReleaseClient | None = None
    try:
        client = ReleaseClient(https, cfg.base_url, metadata, home / "dl")
        release = client.get_release(version, cfg.machine)
        client.fetch_release(release, _installed_files(cfg.installed_dir))
    except UpdateRefused as exc:
        error = str(exc)
    except Exception as exc:  # reported as the device's failure, like the agent's child process would
        error = f"{type(exc).__name__}: {exc}"[:160]
    finally:
        https.close()
    stats = client.stats if client is not None else None
    result = DownloadResult(
        ident.device_id,
        version,
        https.body_bytes,
        https.requests,
        https.connections,
        round(time.monotonic() - started, 3),
        len(stats.deltas) if stats else 0,
        len(stats.copied) if stats else 0,
        error,
    )
    shutil.rmtree(home, ignore_errors=True)
    return result
