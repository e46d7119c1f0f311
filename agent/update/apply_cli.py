"""``xl-agent update apply --version V``: the update child process (docs/ota.md section 3).

The running agent starts this so that python-tuf, securesystemslib,
cryptography and bsdiff4 never weigh on its memory and a crash here cannot
take it down. It refreshes the TUF metadata, reads the release's signed
manifest, runs the checks (platform, downgrade, ``min_from``, SD space),
downloads and verifies every file (resuming, deltas first), and installs the
release side by side (agent.update.install). It does not switch: the moment
of the switch is the running agent's (agent.update.runner), which knows about
alerts and the panic button.

Progress goes to ``<state_dir>/progress.json`` as the health keys it becomes.
Exit status: 0 installed (``us`` = ``inst``) or already running, 1 refused or
failed (``us`` = ``fail``, ``ue`` says why), 2 bad usage or config.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from agent import __version__
from agent.config import AgentConfig
from agent.update.checks import check_release, check_space
from agent.update.fetch import FetchError, HttpsFetcher, TlsIdentity
from agent.update.install import InstallOptions
from agent.update.layout import Layout
from agent.update.progress import Progress, write_progress
from agent.update.tuf_client import LocalFiles, Release, ReleaseClient, UpdateRefused
from agent.update.versions import VersionError, compare

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 2.0  # progress.json is on the SD card: not one write per chunk
# Development and tests only, never set on a device: a site-packages folder. The new release's
# venv is then made from this interpreter, gets the agent wheel alone and sees that folder's
# packages (InstallOptions.no_deps/extra_paths, as tests/agent/test_update_install.py builds
# them), instead of the system python and every wheel of the platform. tests/e2e/test_ota_rollout.py
# sets it for the agents it runs, whose update child would otherwise need all of numpy, LiteRT, ...
DEV_SITE_ENV = "XL_UPDATE_DEV_SITE"


class _Reporter:
    """progress.json, rewritten on a state change and at most every PROGRESS_EVERY_S while bytes flow."""

    def __init__(self, path: Path, version: str, rollout: str | None) -> None:
        self.path = path
        self.progress = Progress(uv=version, us="dl", ro=rollout)
        self._written = 0.0

    def state(self, us: str, ue: str | None = None) -> None:
        self.progress = Progress(uv=self.progress.uv, us=us, ub=self.progress.ub, ue=ue, ro=self.progress.ro)
        self._write()

    def add_bytes(self, n: int) -> None:
        p = self.progress
        self.progress = Progress(uv=p.uv, us=p.us, ub=p.ub + n, ue=p.ue, ro=p.ro)
        if time.monotonic() - self._written >= PROGRESS_EVERY_S:
            self._write()

    def _write(self) -> None:
        write_progress(self.path, self.progress)
        self._written = time.monotonic()


def apply_release(
    cfg: AgentConfig,
    version: str,
    *,
    allow_downgrade: bool = False,
    rollout: str | None = None,
    running: str = __version__,
    machine: str | None = None,
    install: Callable[[Layout, Release, dict[str, Path]], object] | None = None,
) -> int:
    """The child's whole run; ``install`` is agent.update.install's unless a test gives its own."""
    layout = Layout.from_config(cfg.update)
    report = _Reporter(layout.progress_file, version, rollout)
    report.state("dl")
    try:
        if compare(version, running) == 0:
            report.state("ok")  # asked again for what runs: nothing to do, and the hub learns it
            return 0
        _run(cfg, layout, report, version, allow_downgrade, running, machine or platform.machine(), install)
    except (UpdateRefused, FetchError, VersionError) as exc:
        log.error("update to %s refused: %s", version, exc)
        report.state("fail", str(exc))
        return 1
    except Exception as exc:  # the install or a bug: the agent must still learn why
        log.exception("update to %s failed", version)
        report.state("fail", f"{type(exc).__name__}: {exc}")
        return 1
    report.state("inst")
    return 0


def _run(
    cfg: AgentConfig,
    layout: Layout,
    report: _Reporter,
    version: str,
    allow_downgrade: bool,
    running: str,
    machine: str,
    install: Callable[[Layout, Release, dict[str, Path]], object] | None,
) -> None:
    if cfg.update.url is None:
        raise UpdateRefused("update.url is not set in the agent config")
    b = cfg.broker
    https = HttpsFetcher(
        TlsIdentity(ca=b.ca, cert=b.cert, key=b.key), bandwidth_bytes_per_s=cfg.update.bandwidth_bytes_per_s
    )
    try:
        client = ReleaseClient(https, cfg.update.url, layout.tuf_dir, layout.download_dir, on_bytes=report.add_bytes)
        release = client.get_release(version, machine)
        check_release(
            release.manifest, running=running, machine=machine, allow_downgrade=allow_downgrade, floor=client.floor()
        )
        installed = LocalFiles.scan([layout.current / "files"])
        still = sum(t.length for t in release.files if t.hashes.get("sha256") not in installed.by_sha256)
        check_space(layout.download_dir, release.total_length, still)
        files = client.fetch_release(release, installed)
        log.info(
            "release %s verified: %d bytes fetched, %d files copied locally, %d from deltas%s",
            version,
            client.stats.downloaded,
            len(client.stats.copied),
            len(client.stats.deltas),
            f" ({len(client.stats.delta_failures)} deltas unusable)" if client.stats.delta_failures else "",
        )
    finally:
        https.close()
    report.state("inst")
    files[release.manifest_target.path] = release.manifest_path
    (install or _install)(layout, release, files)
    # The release folder keeps its own copies (the bases of the next delta): dl/ is free again.
    shutil.rmtree(layout.download_dir, ignore_errors=True)


def _install(layout: Layout, release: Release, files: dict[str, Path]) -> object:
    from agent.update.install import InstallError, install_release

    try:
        return install_release(layout, release.manifest_path, files, install_options())
    except InstallError as exc:
        raise UpdateRefused(f"install: {exc}") from exc


def install_options(env: Mapping[str, str] | None = None) -> InstallOptions:
    """The device's install options; with ``XL_UPDATE_DEV_SITE`` set, the development ones."""
    site = (os.environ if env is None else env).get(DEV_SITE_ENV)
    if not site:
        return InstallOptions()
    return InstallOptions(python=sys.executable, no_deps=True, extra_paths=(Path(site),))
