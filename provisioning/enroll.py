"""Give households their devices: allocate IDs, issue certificates, write
bundles and register everything in the hub database — for one device or a
whole county CSV, through the same code path.

Idempotence key: the household. A household that already has an active device
keeps it (its registry rows are refreshed, nothing is reissued) unless
``reissue`` is asked for, which issues a new key and certificate for the SAME
device ID and revokes the old certificate. A household whose only devices are
revoked gets a new ID (a replacement camera) from ``device add``; a batch
re-run leaves it alone, so re-running the original roll-out CSV never brings
back a stolen camera's household by surprise.

One provisioning process at a time per database: IDs are allocated as
max+1 from what is registered (protocol.ids.allocate_device_id).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import SQLAlchemyError

from hub.db.schema import devices
from hub.registry import Registry
from protocol.ids import allocate_device_id, parse_device_id
from provisioning.bundle import DeviceSpec, discard_staging, promote, staging_dir, write_bundle
from provisioning.pki import CA, DEVICE_DAYS, cert_pem, fingerprint, key_pem, load_cert, new_key, serial_hex
from provisioning.state import Settings, State
from provisioning.templates import render_pi_files

CHUNK = 256  # rows per database transaction

NEW, REISSUED, UNCHANGED = "new", "reissued", "unchanged"


@dataclass(frozen=True)
class RowResult:
    row: int | None
    household: str
    device_id: str
    action: str  # new | reissued | unchanged


@dataclass
class Outcome:
    results: list[RowResult] = field(default_factory=list)
    errors: list[tuple[int | None, str]] = field(default_factory=list)
    revoked_serials: list[tuple[str, str, str]] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for r in self.results if r.action == action)

    @property
    def changed(self) -> bool:
        return any(r.action != UNCHANGED for r in self.results)


@dataclass
class _Prepared:
    row: int | None
    spec: DeviceSpec
    device_id: str
    action: str
    fingerprint: str | None = None
    serial: str | None = None
    old_serial: str | None = None


@dataclass(frozen=True)
class _Existing:
    device_id: str
    status: str
    serial: str | None
    fingerprint: str | None


class Enroller:
    def __init__(self, state: State, engine: Engine, *, reissue: bool = False, replace_revoked: bool = False):
        self.state = state
        self.engine = engine
        self.registry = Registry(engine)
        self.reissue = reissue
        # device add: a household with only revoked devices gets a replacement ID.
        self.replace_revoked = replace_revoked
        self.settings: Settings = state.load_settings()
        self.ca: CA = state.load_ca()
        self.ca_pem = state.ca_pem()
        self.pi_files = render_pi_files(self.settings.ntp_server)
        self.update_root = state.trusted_update_root()
        self.issued_date = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
        self._villages: dict[tuple[str, str], int] = {}
        self._townships: set[str] = set()
        self._groups: set[str] = set()
        self._by_household: dict[str, list[_Existing]] = {}
        self._highest: dict[str, str] = {}  # township -> highest device ID registered
        self._load()

    def _load(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    devices.c.id,
                    devices.c.household_id,
                    devices.c.status,
                    devices.c.cert_serial,
                    devices.c.cert_fingerprint,
                )
            ).all()
        for r in rows:
            self._by_household.setdefault(r.household_id, []).append(
                _Existing(r.id, r.status, r.cert_serial, r.cert_fingerprint)
            )
            self._note_id(r.id)

    def _note_id(self, device_id: str) -> None:
        town = parse_device_id(device_id).township
        if device_id > self._highest.get(town, ""):
            self._highest[town] = device_id

    def _allocate(self, township: str) -> str:
        # Passing only the township's highest ID keeps allocation O(1) per device.
        highest = self._highest.get(township)
        device_id = str(allocate_device_id(township, [highest] if highest else []))
        self._highest[township] = device_id
        return device_id

    # -- planning -------------------------------------------------------------

    def _plan(self, row: int | None, spec: DeviceSpec) -> _Prepared:
        existing = self._by_household.get(spec.household, [])
        active = [e for e in existing if e.status == "active"]
        if active:
            dev = active[0]
            town = parse_device_id(dev.device_id).township
            if town != spec.township:
                raise ValueError(
                    f"household {spec.household!r} already has device {dev.device_id} in township {town}, "
                    f"not {spec.township} (revoke it first to move the household)"
                )
            if self.reissue:
                return _Prepared(row, spec, dev.device_id, REISSUED, old_serial=dev.serial)
            on_disk = self._bundle_fingerprint(dev.device_id)
            if on_disk is None or on_disk != dev.fingerprint:
                problem = "is missing or not from this CA" if on_disk is None else "holds a different certificate"
                raise ValueError(
                    f"household {spec.household!r} has device {dev.device_id} but its bundle {problem}; "
                    "re-run with --reissue to issue a new certificate"
                )
            return _Prepared(row, spec, dev.device_id, UNCHANGED, fingerprint=dev.fingerprint, serial=dev.serial)
        if existing and not self.replace_revoked:
            ids = ", ".join(e.device_id for e in existing)
            raise ValueError(
                f"household {spec.household!r} has only revoked devices ({ids}); "
                "use `xl-provision device add` to give it a replacement"
            )
        return _Prepared(row, spec, self._allocate(spec.township), NEW)

    def _bundle_fingerprint(self, device_id: str) -> str | None:
        """Fingerprint of the bundle's certificate, or None when it is missing, unreadable or was
        signed by another CA (after `ca init --force`: such a bundle could never connect)."""
        path = self.state.bundle_dir(device_id) / "tls" / "device.crt"
        try:
            cert = load_cert(path)
            cert.verify_directly_issued_by(self.ca.cert)
        except (FileNotFoundError, ValueError, TypeError, InvalidSignature):
            return None
        return fingerprint(cert)

    def _issue(self, p: _Prepared) -> None:
        key = new_key()
        cert = self.ca.issue(key.public_key(), p.device_id, unit="Household camera", days=DEVICE_DAYS)
        p.fingerprint, p.serial = fingerprint(cert), serial_hex(cert)
        staged = staging_dir(self.state.bundles, p.device_id)
        shutil.rmtree(staged, ignore_errors=True)
        write_bundle(
            staged,
            p.device_id,
            p.spec,
            key_pem=key_pem(key),
            cert_pem=cert_pem(cert),
            ca_pem=self.ca_pem,
            broker_url=self.settings.broker_url,
            update_url=self.settings.update_url,
            pi_files=self.pi_files,
            issued_date=self.issued_date,
            update_root=self.update_root,
        )

    # -- registry -------------------------------------------------------------

    def _register(self, conn: Connection, p: _Prepared, pending: dict[str, object]) -> None:
        s, reg = p.spec, self.registry
        if s.township not in self._townships and s.township not in pending:
            reg.ensure_township(conn, s.township, s.township_name)
            pending[s.township] = True
        vkey = (s.township, s.village)
        village_id = self._villages.get(vkey) or pending.get(f"v:{s.township}:{s.village}")
        if village_id is None:
            village_id = reg.ensure_village(conn, s.township, s.village)
            pending[f"v:{s.township}:{s.village}"] = village_id
        assert isinstance(village_id, int)
        if s.group not in self._groups and f"g:{s.group}" not in pending:
            reg.ensure_group(conn, s.group, village_id)
            pending[f"g:{s.group}"] = True
        reg.ensure_household(
            conn,
            s.household,
            village_id=village_id,
            group_id=s.group,
            name=s.name,
            lat=s.lat,
            lon=s.lon,
            phone=s.phone,
            armed_from=s.armed_from,
            armed_to=s.armed_to,
        )
        if p.action != UNCHANGED:
            reg.add_device(conn, p.device_id, s.household, cert_fingerprint=p.fingerprint, cert_serial=p.serial)
        if s.leader:
            reg.set_group_leader(conn, s.group, s.household)

    def _commit_pending(self, pending: dict[str, object]) -> None:
        for key, value in pending.items():
            if key.startswith("v:"):
                _, town, village = key.split(":", 2)
                assert isinstance(value, int)
                self._villages[(town, village)] = value
            elif key.startswith("g:"):
                self._groups.add(key[2:])
            else:
                self._townships.add(key)

    def _after_commit(self, p: _Prepared, outcome: Outcome) -> None:
        if p.action != UNCHANGED:
            promote(self.state.bundles, p.device_id)
        if p.action == REISSUED and p.old_serial:
            outcome.revoked_serials.append((p.old_serial, p.device_id, "reissued"))
        existing = self._by_household.setdefault(p.spec.household, [])
        if p.action == NEW:
            existing.append(_Existing(p.device_id, "active", p.serial, p.fingerprint))
        elif p.action == REISSUED:
            existing[:] = [e for e in existing if e.device_id != p.device_id]
            existing.append(_Existing(p.device_id, "active", p.serial, p.fingerprint))
        outcome.results.append(RowResult(p.row, p.spec.household, p.device_id, p.action))

    # -- the run --------------------------------------------------------------

    def run(
        self,
        rows: Iterable[tuple[int | None, DeviceSpec]],
        outcome: Outcome | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Outcome:
        outcome = outcome or Outcome()
        self.state.bundles.mkdir(parents=True, exist_ok=True)
        discard_staging(self.state.bundles)
        chunk: list[tuple[int | None, DeviceSpec]] = []
        for item in rows:
            chunk.append(item)
            if len(chunk) >= CHUNK:
                self._run_chunk(chunk, outcome, progress)
                chunk = []
        if chunk:
            self._run_chunk(chunk, outcome, progress)
        if outcome.revoked_serials:
            self.state.add_revoked(outcome.revoked_serials)
            self.state.write_crl(self.ca)
        return outcome

    def _run_chunk(
        self, chunk: list[tuple[int | None, DeviceSpec]], outcome: Outcome, progress: Callable[[int], None] | None
    ) -> None:
        prepared: list[_Prepared] = []
        for row, spec in chunk:
            try:
                p = self._plan(row, spec)
                if p.action != UNCHANGED:
                    self._issue(p)
                prepared.append(p)
            except (ValueError, OSError) as exc:
                outcome.errors.append((row, str(exc)))
        try:
            pending: dict[str, object] = {}
            with self.engine.begin() as conn:
                for p in prepared:
                    self._register(conn, p, pending)
            self._commit_pending(pending)
            for p in prepared:
                self._after_commit(p, outcome)
        except SQLAlchemyError:
            # Find the offending rows: one transaction each, so the good ones still go in.
            for p in prepared:
                pending = {}
                try:
                    with self.engine.begin() as conn:
                        self._register(conn, p, pending)
                except SQLAlchemyError as exc:
                    shutil.rmtree(staging_dir(self.state.bundles, p.device_id), ignore_errors=True)
                    outcome.errors.append((p.row, f"database refused the row: {_short(exc)}"))
                    continue
                self._commit_pending(pending)
                self._after_commit(p, outcome)
        if progress is not None:
            progress(len(chunk))


def _short(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0][:200]
