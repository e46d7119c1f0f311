"""The work behind each ``xl-provision`` subcommand (the CLI only parses)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sqlalchemy import Engine, select
from tqdm import tqdm

from hub.db import make_engine, upgrade
from hub.db.schema import devices
from hub.registry import Registry
from protocol.errors import ProtocolError
from protocol.ids import parse_device_id
from provisioning import broker_config
from provisioning.batch import read_rows
from provisioning.broker_control import ControlError
from provisioning.enroll import NEW, REISSUED, UNCHANGED, Enroller, Outcome
from provisioning.pki import CA, SERVER_DAYS, cert_pem, key_pem, new_key, write_private, write_public
from provisioning.rows import parse_spec
from provisioning.state import ADMIN_CN, ROLE_ADMIN, ROLE_HUB, ROLE_MONITOR, Settings, State, issue_client
from provisioning.verify import COMMISSION_CN, verify

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$")
_CN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


class UsageError(RuntimeError):
    """Bad input or state: printed as one line, exit code 2."""


def open_db(state: State, url: str | None) -> Engine:
    engine = make_engine(url or state.default_db_url())
    upgrade(engine)
    return engine


def ca_init(
    state: State,
    *,
    broker_host: str,
    hostnames: list[str],
    broker_port: int,
    ntp_server: str | None,
    update_port: int = 8443,
    hub_cn: str,
    force: bool,
) -> list[Path]:
    if state.ca_key.exists() and not force:
        raise UsageError(
            f"{state.ca_key} exists; pass --force to replace the county CA "
            "(every device issued so far would have to be re-provisioned)"
        )
    for name in (broker_host, *hostnames):
        if not _HOSTNAME.match(name):
            raise UsageError(f"{name!r} is not a hostname or IP address")
    if not _CN.match(hub_cn):
        raise UsageError(f"--hub-cn {hub_cn!r} must be 1-32 of A-Z a-z 0-9 _ -")
    if hub_cn in (COMMISSION_CN, ADMIN_CN) or hub_cn.isdigit():
        raise UsageError(f"--hub-cn {hub_cn!r} would collide with the commissioning, admin or a device identity")
    state.ca_dir.mkdir(parents=True, exist_ok=True)
    ca = CA.create()
    write_private(state.ca_key, key_pem(ca.key))
    write_public(state.ca_cert, cert_pem(ca.cert))
    names = list(dict.fromkeys(["localhost", "127.0.0.1", broker_host, *hostnames]))
    server_key = new_key()
    server = ca.issue(server_key.public_key(), broker_host, unit="Broker", days=SERVER_DAYS, server_names=names)
    write_private(state.server_key, key_pem(server_key))
    write_public(state.server_cert, cert_pem(server))
    clients = {hub_cn: ROLE_HUB, COMMISSION_CN: ROLE_MONITOR, ADMIN_CN: ROLE_ADMIN}
    for cn in clients:
        issue_client(state, ca, cn)
    # The broker host is also the default NTP server: the county hub runs one.
    state.save_settings(
        Settings(
            broker_host=broker_host,
            broker_port=broker_port,
            update_port=update_port,
            server_names=names,
            ntp_server=ntp_server or broker_host,
            clients=clients,
        )
    )
    if state.revoked_path.exists():
        state.revoked_path.unlink()  # serials of the old CA mean nothing to the new one
    state.write_crl(ca)
    return [state.ca_cert, state.server_cert, *(state.client_cert(cn) for cn in clients)]


def add_client(state: State, engine: Engine, cn: str, role: str, broker_dir: Path | None) -> list[str]:
    """Another hub-side identity. Each hub worker needs its own: the broker forces
    client id = certificate name, so two workers sharing one would keep kicking
    each other off."""
    if not _CN.match(cn) or cn.isdigit():
        raise UsageError(f"{cn!r} must be 1-32 of A-Z a-z 0-9 _ - and not all digits (those are device IDs)")
    settings = state.load_settings()
    if cn in settings.clients:
        raise UsageError(f"{cn!r} already exists ({settings.clients[cn]}); its files are in {state.clients_dir}")
    issue_client(state, state.load_ca(), cn)
    settings.clients[cn] = {"hub": ROLE_HUB, "monitor": ROLE_MONITOR}[role]
    state.save_settings(settings)
    acl = _refresh_broker(state, engine, broker_dir, None, False)
    return [str(state.client_cert(cn)), str(state.client_key(cn)), acl]


def _broker_dir(state: State, broker_dir: Path | None) -> Path | None:
    return broker_dir or (Path(d) if (d := state.load_settings().broker_dir) else None)


def _refresh_broker(state: State, engine: Engine, broker_dir: Path | None, pid: int | None, restart: bool) -> str:
    out = _broker_dir(state, broker_dir)
    if out is None:
        return "no broker folder yet (run broker-config); broker not updated"
    try:
        done = broker_config.sync(state, engine, out, pid=pid)
    except ControlError as exc:
        raise UsageError(
            f"the registry is updated but the running broker is not: {exc}; "
            f"run `xl-provision broker-config --out {out}` once it answers"
        ) from None
    if restart:
        done += f"; broker restarted (pid {broker_config.restart(out, pid)})"
    return done


def print_outcome(outcome: Outcome, total: int) -> None:
    for row, reason in sorted(outcome.errors, key=lambda e: e[0] or 0):
        where = f"row {row}" if row is not None else "error"
        print(f"{where}: {reason}", file=sys.stderr)
    print(
        f"{total} rows: {outcome.count(NEW)} new, {outcome.count(REISSUED)} reissued, "
        f"{outcome.count(UNCHANGED)} unchanged, {len(outcome.errors)} failed"
    )


def batch(state: State, engine: Engine, csv_path: Path, *, reissue: bool, broker_dir: Path | None, quiet: bool) -> int:
    outcome = Outcome()
    rows, ignored = read_rows(csv_path, outcome)
    unreadable = len(outcome.errors)
    if ignored:
        print(f"ignoring column(s): {', '.join(ignored)}", file=sys.stderr)
    enroller = Enroller(state, engine, reissue=reissue)
    with tqdm(total=len(rows), unit="dev", disable=quiet, file=sys.stderr) as bar:

        def advance(n: int) -> None:
            bar.update(n)

        enroller.run(rows, outcome, progress=advance)
    print_outcome(outcome, len(rows) + unreadable)
    if outcome.results:  # also unchanged rows: a household may have moved to another group
        print(_refresh_broker(state, engine, broker_dir, None, False))
    return 1 if outcome.errors else 0


def device_add(
    state: State, engine: Engine, values: dict[str, str | None], *, reissue: bool, broker_dir: Path | None
) -> int:
    try:
        spec = parse_spec(values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    outcome = Enroller(state, engine, reissue=reissue, replace_revoked=True).run([(None, spec)])
    if outcome.errors:
        raise UsageError(outcome.errors[0][1])
    result = outcome.results[0]
    if result.action == UNCHANGED:
        print(
            f"{result.device_id} already provisioned for household {spec.household} "
            "(unchanged; --reissue for a new certificate)"
        )
    else:
        print(f"{result.device_id} {result.action}: bundle {state.bundle_dir(result.device_id)}")
        print(_refresh_broker(state, engine, broker_dir, None, False))
    return 0


def revoke(
    state: State,
    engine: Engine,
    device_id: str,
    *,
    reason: str,
    broker_dir: Path | None,
    pid: int | None,
    restart: bool,
) -> int:
    try:
        parse_device_id(device_id)
    except ProtocolError as exc:
        raise UsageError(exc.detail) from None
    registry = Registry(engine)
    record = registry.get_device(device_id)
    if record is None:
        raise UsageError(f"device {device_id} is not registered")
    with engine.connect() as conn:
        serial = conn.execute(select(devices.c.cert_serial).where(devices.c.id == device_id)).scalar()
    if serial:
        state.add_revoked([(serial, device_id, reason)])
    state.write_crl()
    changed = registry.revoke_device(device_id, reason)
    settings = state.load_settings()
    if device_id not in settings.pending_session_ends:
        settings.pending_session_ends.append(device_id)
        state.save_settings(settings)
    print(
        f"{device_id} {'revoked' if changed else 'was already revoked'}; certificate serial {serial or '?'} "
        "is in the CRL"
    )
    print(_refresh_broker(state, engine, broker_dir, pid, restart))
    return 0


def run_verify(state: State, engine: Engine, device_id: str, broker: str | None, timeout: float) -> int:
    settings = state.load_settings()
    host, port = settings.broker_host, settings.broker_port
    if broker:
        host, _, port_text = broker.rpartition(":")
        if not host or not port_text.isdigit():
            raise UsageError(f"--broker must be HOST:PORT, got {broker!r}")
        port = int(port_text)
    try:
        parse_device_id(device_id)
    except ProtocolError as exc:
        raise UsageError(exc.detail) from None
    record = Registry(engine).get_device(device_id)
    if record is None or record.status != "active":
        print(f"FAIL registry: {device_id} is {'not registered' if record is None else record.status}")
        print("FAIL")
        return 1
    print(f"PASS registry: household {record.household_id}, group {record.group_id}")
    print(f"waiting up to {timeout:g}s for {device_id}: walk past the camera")
    verdict = verify(
        device_id,
        host,
        port,
        ca=str(state.ca_cert),
        cert=str(state.client_cert(COMMISSION_CN)),
        key=str(state.client_key(COMMISSION_CN)),
        timeout=timeout,
    )
    for line in verdict.lines():
        print(line)
    print("PASS" if verdict.passed else "FAIL")
    return 0 if verdict.passed else 1
