"""The hub's update server as tests and benches start it: a throwaway county PKI,
a registered fleet, and the real ``hub.updates`` HTTPS server (real mTLS,
``DeviceGate`` against the registry) over an empty repository folder.

Used by the repository server's tests, the OTA attack tests and the clip
upload path (tests/support/clip_hub.py), which each add their own files and
routes to what this starts.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from hub.db import make_engine, upgrade
from hub.registry import Registry
from hub.updates.access import DeviceGate
from hub.updates.counters import ByteCounter
from hub.updates.server import UpdateServer, tls_context
from provisioning import pki

OTHER_CA = "other-ca"  # certs key: a device name signed by another county's CA


def issue(ca: pki.CA, where: Path, name: str, cn: str, server: list[str] | None = None) -> tuple[Path, Path]:
    """(cert, key) files for ``cn`` signed by ``ca``; ``server`` names make it a server certificate."""
    key = pki.new_key()
    cert = ca.issue(key.public_key(), cn, unit=name, days=30, server_names=server)
    pki.write_private(where / f"{name}.key", pki.key_pem(key))
    pki.write_public(where / f"{name}.crt", pki.cert_pem(cert))
    return where / f"{name}.crt", where / f"{name}.key"


@dataclass
class UpdateHub:
    engine: Engine
    server: UpdateServer
    ca: Path
    certs: dict[str, tuple[Path, Path]]  # device id (or "server", OTHER_CA) -> (cert, key)
    repo: Path

    def context(self, who: str | None) -> ssl.SSLContext:
        """A client TLS context trusting the county CA, with ``who``'s certificate (None: none)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if who is not None:
            cert, key = self.certs[who]
            ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def stop(self) -> None:
        self.server.stop()
        self.engine.dispose()


def registered_fleet(
    db_url: str,
    tmp: Path,
    devices: Sequence[str],
    *,
    revoked: Sequence[str] = (),
    unregistered: Sequence[str] = (),
    other_ca_for: str | None = None,
) -> tuple[Engine, dict[str, tuple[Path, Path]]]:
    """A throwaway county CA (``tmp/ca.crt``), a server certificate and one per device, and the
    registry: ``devices`` registered (one household each in 和平村), then ``revoked`` of them
    revoked; ``unregistered`` get certificates only; ``other_ca_for`` gets one from another CA
    as OTHER_CA. Returns the upgraded database's engine and the certificates."""
    ca = pki.CA.create("Test County CA")
    pki.write_public(tmp / "ca.crt", pki.cert_pem(ca.cert))
    certs = {"server": issue(ca, tmp, "server", "hub", ["127.0.0.1", "localhost"])}
    for n, dev in enumerate((*devices, *unregistered)):
        certs[dev] = issue(ca, tmp, f"device{n}", dev)
    if other_ca_for is not None:
        certs[OTHER_CA] = issue(pki.CA.create("Another County CA"), tmp, "other", other_ca_for)
    engine = make_engine(db_url)
    upgrade(engine)
    reg = Registry(engine)
    with engine.begin() as conn:
        reg.ensure_township(conn, "01", "泉山镇")
        vid = reg.ensure_village(conn, "01", "和平村")
        reg.ensure_group(conn, "g0101", vid)
        for n, dev in enumerate(devices):
            reg.ensure_household(conn, f"HH{n}", village_id=vid, group_id="g0101")
            reg.add_device(conn, dev, f"HH{n}")
    for dev in revoked:
        reg.revoke_device(dev, "stolen")
    return engine, certs


def start_update_hub(
    db_url: str,
    tmp: Path,
    devices: Sequence[str],
    *,
    revoked: Sequence[str] = (),
    unregistered: Sequence[str] = (),
    other_ca_for: str | None = None,
    start: bool = True,
) -> UpdateHub:
    """The repository server over ``registered_fleet``'s county (see there for the arguments)."""
    engine, certs = registered_fleet(
        db_url, tmp, devices, revoked=revoked, unregistered=unregistered, other_ca_for=other_ca_for
    )
    repo = tmp / "repo"
    (repo / "metadata").mkdir(parents=True)
    server = UpdateServer(
        repo,
        tls_context(str(tmp / "ca.crt"), *map(str, certs["server"])),
        DeviceGate(engine),
        ByteCounter(engine, flush_s=3600),  # the tests flush it themselves
        host="127.0.0.1",
        port=0,
    )
    if start:
        server.start()
    return UpdateHub(engine, server, tmp / "ca.crt", certs, repo)
