"""The device's TUF client: which release the county signed, and its files, verified.

python-tuf's ``ngclient.Updater`` walks the root chain and checks timestamp,
snapshot and targets (signatures, thresholds, versions against rollback,
expiry against freeze, snapshot against mix-and-match). It downloads the
metadata through ``TufFetcher``, our mTLS client. Targets are not fetched with
``Updater.download_target``: that reads into a temporary file and starts over
after every cut, while a release is tens of MB on a metered link. Instead each
target is downloaded resumably into ``dl/`` and then checked with
``TargetFile.verify_length_and_hashes``, the same check ``download_target``
makes.

Before any byte of a target crosses the link, this looks for cheaper ways:
1. a file already downloaded and verified (a rerun after a crash);
2. an installed file with the same sha256 (a dependency wheel shared with the
   running release): copied locally;
3. a delta ``deltas/<sha256 of an installed file>/<path>.bsdiff4``, signed like
   any target, applied with bsdiff4 and verified against the new target's own
   hashes. Anything wrong with a delta falls back to the full target.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import TargetFile
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from agent.update.delta import bounded_patch
from agent.update.fetch import FetchError, HttpsFetcher, HttpStatusError
from agent.update.manifest import Manifest, ManifestError, parse_manifest
from agent.update.versions import VersionError, parse

log = logging.getLogger(__name__)

POLICY_PATH = "policy.json"  # the county office's floor (docs/ota.md), signed like any target
METADATA_MAX_BYTES = 5_000_000  # python-tuf's own bound for targets.json
MAX_ERROR = 160  # health "ue"


class UpdateRefused(Exception):
    """The release cannot be used; ``str()`` is the reason for health ``ue``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason[:MAX_ERROR])


class TufFetcher(FetcherInterface):
    """python-tuf's network port, over our mTLS client.

    Metadata files are small (bounded above), so each is read whole, with the
    client's retries, and handed to python-tuf in one piece."""

    def __init__(self, https: HttpsFetcher, max_bytes: int = METADATA_MAX_BYTES) -> None:
        self.https = https
        self.max_bytes = max_bytes

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            body = self.https.get(url, self.max_bytes)
        except HttpStatusError as exc:
            # 404 on the next root version is how python-tuf learns the chain ends.
            raise tuf_errors.DownloadHTTPError(str(exc), exc.status) from exc
        except FetchError as exc:
            raise tuf_errors.DownloadError(str(exc)) from exc
        return iter([body])


@dataclass(frozen=True, slots=True)
class Release:
    manifest: Manifest
    manifest_target: TargetFile
    manifest_path: Path  # the verified manifest in dl/
    files: tuple[TargetFile, ...]  # what the platform needs, agent first

    @property
    def total_length(self) -> int:
        return sum(t.length for t in self.files)


@dataclass
class LocalFiles:
    """Files of the installed release, by sha256: the bases for deltas and copies."""

    by_sha256: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def scan(cls, dirs: Iterable[Path]) -> LocalFiles:
        found: dict[str, Path] = {}
        for d in dirs:
            if not d.is_dir():
                continue
            for path in sorted(p for p in d.rglob("*") if p.is_file() and not p.is_symlink()):
                found.setdefault(sha256_of(path), path)
        return cls(found)


@dataclass
class FetchStats:
    downloaded: int = 0  # body bytes of targets written into dl/ (delta or full)
    copied: list[str] = field(default_factory=list)  # targets found locally
    deltas: list[str] = field(default_factory=list)  # targets made from a delta
    delta_failures: list[str] = field(default_factory=list)  # why a delta was not used


class ReleaseClient:
    def __init__(
        self,
        https: HttpsFetcher,
        base_url: str,
        metadata_dir: Path,
        dl_dir: Path,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """``base_url`` is the repository root, ``https://<hub>:<port>/tuf/``."""
        if not (metadata_dir / "root.json").exists():
            raise UpdateRefused(f"tuf: no trusted root at {metadata_dir / 'root.json'} (provisioning installs it)")
        base = base_url.rstrip("/") + "/"
        self.https = https
        self.dl_dir = dl_dir
        self.on_bytes = on_bytes
        self.stats = FetchStats()
        dl_dir.mkdir(parents=True, exist_ok=True)
        self._targets_url = base + "targets/"
        try:
            # bootstrap=None: the trust anchor is the root provisioning installed
            # (and python-tuf keeps up to date) in metadata_dir, not one built in.
            self.updater = Updater(
                str(metadata_dir),
                base + "metadata/",
                target_dir=str(dl_dir),
                target_base_url=self._targets_url,
                fetcher=TufFetcher(https),
                bootstrap=None,
            )
        except (OSError, tuf_errors.RepositoryError) as exc:
            raise UpdateRefused(tuf_reason(exc)) from exc

    def refresh(self) -> None:
        """Root chain, timestamp, snapshot, targets: every TUF check, or UpdateRefused."""
        with _as_refusal():
            self.updater.refresh()

    def target(self, path: str) -> TargetFile | None:
        with _as_refusal():
            return self.updater.get_targetinfo(path)

    def floor(self) -> str | None:
        """The lowest version the county office allows (``policy.json``, a signed target), or None.
        Call after ``get_release``, which refreshes the metadata (once per client, as TUF requires)."""
        info = self.target(POLICY_PATH)
        if info is None:
            return None
        local = self.fetch(info, LocalFiles())
        try:
            doc = json.loads(local.read_bytes())
            floor = doc["floor"] if isinstance(doc, dict) and doc.get("format") == 1 else None
            if floor is not None:
                parse(str(floor))
        except (ValueError, KeyError, VersionError) as exc:
            raise UpdateRefused(f"{POLICY_PATH}: not a policy this agent reads ({exc})") from exc
        return str(floor) if floor is not None else None

    def get_release(self, version: str, machine: str) -> Release:
        """The signed manifest of ``version`` and the target infos of its files for ``machine``.

        A path the manifest names but the targets metadata does not sign is
        refused here, before anything is downloaded."""
        self.refresh()
        path = f"agent/{version}/manifest.json"
        info = self.target(path)
        if info is None:
            raise UpdateRefused(f"release {version} is not in the signed targets")
        local = self.fetch(info, LocalFiles())
        try:
            manifest = parse_manifest(local.read_bytes())
        except ManifestError as exc:
            raise UpdateRefused(f"release {version}: {exc}") from exc
        if manifest.version != version:
            raise UpdateRefused(f"release {version}: its manifest says version {manifest.version}")
        files = []
        for p in manifest.targets_for(machine):
            t = self.target(p)
            if t is None:
                raise UpdateRefused(f"release {version}: {p} is not in the signed targets")
            files.append(t)
        return Release(manifest, info, local, tuple(files))

    def fetch_release(self, release: Release, installed: LocalFiles) -> dict[str, Path]:
        """Every file of ``release``, verified, in dl/: target path -> local file."""
        return {t.path: self.fetch(t, installed) for t in release.files}

    def fetch(self, info: TargetFile, installed: LocalFiles) -> Path:
        final = self._local_path(info.path)
        if _verifies(info, final):
            return final
        sha = _sha256(info)
        have = installed.by_sha256.get(sha)
        if have is not None:
            _copy_verified(info, have, final)
            self.stats.copied.append(info.path)
            return final
        if self._try_delta(info, installed, final):
            return final
        return self._download_full(info, final)

    # -- the three ways of getting a target ------------------------------------

    def _try_delta(self, info: TargetFile, installed: LocalFiles, final: Path) -> bool:
        for old_sha, old_path in installed.by_sha256.items():
            delta = self.target(f"deltas/{old_sha}/{info.path}.bsdiff4")
            if delta is None:
                continue
            try:
                patch = self._download_full(delta, self._local_path(delta.path))
                try:
                    _apply_delta(old_path, patch, info, final)
                finally:
                    patch.unlink(missing_ok=True)  # SD space: the result is what is kept
            except (UpdateRefused, OSError, ValueError, tuf_errors.LengthOrHashMismatchError) as exc:
                why = f"{info.path}: delta from {old_sha[:12]} unusable ({exc}); fetching the full file"
                log.warning("%s", why)
                self.stats.delta_failures.append(why)
                continue
            self.stats.deltas.append(info.path)
            return True
        return False

    def _download_full(self, info: TargetFile, final: Path) -> Path:
        part = final.with_name(final.name + ".part")
        resumed = part.exists() and part.stat().st_size > 0
        for attempt in (1, 2):
            try:
                self.https.download(self._url(info), part, info.length, self._count)
            except FetchError as exc:
                raise UpdateRefused(f"download: {exc}") from exc
            try:
                _verify(info, part)
            except UpdateRefused:
                part.unlink(missing_ok=True)
                # A part resumed from an earlier run may hold a torn tail (a power
                # cut); one fresh download tells that apart from a bad server file.
                if attempt == 1 and resumed:
                    continue
                raise
            os.replace(part, final)
            return final
        raise AssertionError("unreachable")

    # -- helpers -----------------------------------------------------------------

    def _count(self, n: int) -> None:
        self.stats.downloaded += n
        if self.on_bytes is not None:
            self.on_bytes(n)

    def _url(self, info: TargetFile) -> str:
        # Consistent snapshots (docs/ota.md): each target is served under its sha256.
        dirname, sep, name = info.path.rpartition("/")
        return f"{self._targets_url}{dirname}{sep}{_sha256(info)}.{name}"

    def _local_path(self, target_path: str) -> Path:
        parts = target_path.split("/")
        if target_path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise UpdateRefused(f"tuf: target path {target_path[:60]!r} would leave the download folder")
        path = self.dl_dir.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@contextlib.contextmanager
def _as_refusal() -> Iterator[None]:
    """python-tuf's exceptions as UpdateRefused with an operator-facing reason."""
    try:
        yield
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, OSError) as exc:
        raise UpdateRefused(tuf_reason(exc)) from exc


def tuf_reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return f"tuf: signature invalid: {text}"
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return f"tuf: expired: {text}"
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return f"tuf: version rollback or mix-and-match: {text}"
    if isinstance(exc, tuf_errors.DownloadError):
        return f"download: {text}"
    if isinstance(exc, OSError):
        return f"tuf: local metadata: {type(exc).__name__}: {text}"
    return f"tuf: {text}"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _sha256(info: TargetFile) -> str:
    sha = info.hashes.get("sha256")
    if not sha:
        raise UpdateRefused(f"tuf: target {info.path[:60]} has no sha256 in the signed metadata")
    return sha


def _verify(info: TargetFile, path: Path) -> None:
    try:
        with open(path, "rb") as f:
            info.verify_length_and_hashes(f)
    except tuf_errors.LengthOrHashMismatchError as exc:
        raise UpdateRefused(f"tuf: {info.path} does not match its signed length and hashes ({exc})") from exc


def _verifies(info: TargetFile, path: Path) -> bool:
    try:
        _verify(info, path)
    except (UpdateRefused, OSError):
        return False
    return True


def _copy_verified(info: TargetFile, src: Path, final: Path) -> None:
    tmp = final.with_name(final.name + ".copy")
    shutil.copyfile(src, tmp)
    _verify(info, tmp)  # the installed copy may have rotted on the SD card
    os.replace(tmp, final)


def _apply_delta(old: Path, patch: Path, info: TargetFile, final: Path) -> None:
    # Imported here: the update child needs it, the running agent never loads the C extension.
    # Through importlib because bsdiff4 ships no type information.
    bsdiff4 = importlib.import_module("bsdiff4")
    tmp = final.with_name(final.name + ".delta")
    try:
        new = bounded_patch(bsdiff4, old.read_bytes(), patch.read_bytes(), info.length)
    except Exception as exc:  # bsdiff4 raises ValueError and others on a corrupt patch
        raise ValueError(f"bsdiff4: {type(exc).__name__}: {exc}") from exc
    tmp.write_bytes(new)
    try:
        _verify(info, tmp)
    except UpdateRefused:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, final)
