"""The provisioning state folder (``--state DIR``) and what lives in it.

::

    DIR/settings.json        broker host/port, SANs, NTP server, client identities, broker-config dir
    DIR/ca/ca.crt, ca.key    the county CA (key 0600)
    DIR/ca/server.crt/.key   the broker's TLS identity
    DIR/ca/clients/<cn>.*    hub-side client identities (``hub``, ``commission``)
    DIR/ca/revoked.csv       every revoked certificate serial (the CRL is rebuilt from it)
    DIR/ca/crl.pem           the current CRL
    DIR/bundles/<device id>/ one SD-card bundle per device
    DIR/hub.sqlite3          the default hub database when no --db is given
    DIR/tuf/                 update signing keys and repository (provisioning/release/repo.py);
                             its root.json, the newest root, goes into every bundle

The default database lives in the state folder so a county office laptop works
with no server; the production hub passes ``--db postgresql://…`` instead.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from provisioning.pki import CA, SERVER_DAYS, cert_pem, key_pem, new_key, write_private, write_public

# Roles of hub-side client identities, each becoming one ACL block.
ROLE_HUB = "hub"  # reads every uplink, writes commands and group alerts
ROLE_MONITOR = "monitor"  # reads every uplink; the commissioning check uses it
# Sends dynamic-security control commands to the broker; only xl-provision uses it.
ROLE_ADMIN = "admin"
ROLES = (ROLE_HUB, ROLE_MONITOR, ROLE_ADMIN)
ADMIN_CN = "xl-admin"


@dataclass
class Settings:
    broker_host: str
    broker_port: int = 8883
    # The hub's update server (hub updates.port), on the broker's host: devices fetch releases there.
    update_port: int = 8443
    server_names: list[str] = field(default_factory=list)
    ntp_server: str = ""
    clients: dict[str, str] = field(default_factory=dict)  # cn -> role
    broker_dir: str | None = None
    # Revoked identities whose broker session is still to be ended (the broker
    # was not running at the revoke); the next sync with a running broker does it.
    pending_session_ends: list[str] = field(default_factory=list)

    @property
    def broker_url(self) -> str:
        return f"mqtts://{self.broker_host}:{self.broker_port}"

    @property
    def update_url(self) -> str:
        return f"https://{self.broker_host}:{self.update_port}/tuf/"


class StateError(RuntimeError):
    pass


class State:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca_dir = root / "ca"
        self.clients_dir = self.ca_dir / "clients"
        self.bundles = root / "bundles"
        self.settings_path = root / "settings.json"
        self.ca_cert = self.ca_dir / "ca.crt"
        self.ca_key = self.ca_dir / "ca.key"
        self.server_cert = self.ca_dir / "server.crt"
        self.server_key = self.ca_dir / "server.key"
        self.crl_path = self.ca_dir / "crl.pem"
        self.revoked_path = self.ca_dir / "revoked.csv"
        self.tuf_root = root / "tuf" / "root.json"

    def default_db_url(self) -> str:
        return f"sqlite:///{(self.root / 'hub.sqlite3').resolve()}"

    def client_cert(self, cn: str) -> Path:
        return self.clients_dir / f"{cn}.crt"

    def client_key(self, cn: str) -> Path:
        return self.clients_dir / f"{cn}.key"

    def bundle_dir(self, device_id: str) -> Path:
        return self.bundles / device_id

    # -- settings -------------------------------------------------------------

    def load_settings(self) -> Settings:
        try:
            raw = json.loads(self.settings_path.read_text())
        except FileNotFoundError:
            raise StateError(f"{self.root} is not a provisioning state folder (run `xl-provision ca init`)") from None
        return Settings(**raw)

    def save_settings(self, settings: Settings) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_public(self.settings_path, (json.dumps(asdict(settings), indent=2, ensure_ascii=False) + "\n").encode())

    def load_ca(self) -> CA:
        return CA.load(self.ca_key, self.ca_cert)

    # -- revocation -----------------------------------------------------------

    def revoked(self) -> list[tuple[int, dt.datetime, str, str]]:
        """(serial, when, device or client, reason) for every revoked certificate."""
        if not self.revoked_path.exists():
            return []
        out = []
        with self.revoked_path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                when = dt.datetime.fromisoformat(row["revoked_at"])
                out.append((int(row["serial"], 16), when, row["subject"], row["reason"]))
        return out

    def add_revoked(self, entries: list[tuple[str, str, str]]) -> None:
        """Append (serial hex, subject, reason) rows; duplicates are ignored."""
        known = {serial for serial, *_ in self.revoked()}
        new = [e for e in entries if int(e[0], 16) not in known]
        if not new:
            return
        fresh = not self.revoked_path.exists()
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        with self.revoked_path.open("a", newline="") as fh:
            writer = csv.writer(fh)
            if fresh:
                writer.writerow(["serial", "revoked_at", "subject", "reason"])
            for serial, subject, reason in new:
                writer.writerow([serial, now, subject, reason])

    def write_crl(self, ca: CA | None = None) -> Path:
        ca = ca or self.load_ca()
        crl = ca.crl([(serial, when) for serial, when, _, _ in self.revoked()])
        write_public(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
        return self.crl_path

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()

    def trusted_update_root(self) -> bytes | None:
        """The update repository's newest root, or None before `xl-provision release keys init`."""
        try:
            return self.tuf_root.read_bytes()
        except FileNotFoundError:
            return None


def ensure_admin(state: State) -> str:
    """The broker admin identity; a state folder made before it existed gets it now."""
    settings = state.load_settings()
    for cn, role in settings.clients.items():
        if role == ROLE_ADMIN:
            return cn
    issue_client(state, state.load_ca(), ADMIN_CN)
    settings.clients[ADMIN_CN] = ROLE_ADMIN
    state.save_settings(settings)
    return ADMIN_CN


def issue_client(state: State, ca: CA, cn: str) -> None:
    key = new_key()
    cert = ca.issue(key.public_key(), cn, unit="Hub", days=SERVER_DAYS)
    state.clients_dir.mkdir(parents=True, exist_ok=True)
    write_private(state.client_key(cn), key_pem(key))
    write_public(state.client_cert(cn), cert_pem(cert))
