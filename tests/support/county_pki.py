"""A county PKI for tests: one CA that issues the broker's, the hub's and a
certificate per device (``tls.make_pki`` makes a fresh CA for one device)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provisioning import pki
from tests.support.tls import Pki


@dataclass
class CountyPki:
    """One CA, the broker's and the hub's certificates, and a certificate per device."""

    base: Pki
    devices: dict[str, tuple[Path, Path]]  # device id -> (cert, key)


def county_pki(where: Path, device_ids: list[str]) -> CountyPki:
    where.mkdir(parents=True, exist_ok=True)
    ca = pki.CA.create("Reliability Test County CA")
    pki.write_public(where / "ca.crt", pki.cert_pem(ca.cert))

    def issue(name: str, cn: str, server: list[str] | None = None) -> tuple[Path, Path]:
        key = pki.new_key()
        cert = ca.issue(key.public_key(), cn, unit=name, days=30, server_names=server)
        pki.write_private(where / f"{name}.key", pki.key_pem(key))
        pki.write_public(where / f"{name}.crt", pki.cert_pem(cert))
        return where / f"{name}.crt", where / f"{name}.key"

    server = issue("server", "broker", ["127.0.0.1", "localhost"])
    hub = issue("hub", "hub")
    devices = {dev: issue(f"dev-{dev}", dev) for dev in device_ids}
    first = devices[device_ids[0]]
    base = Pki(where, where / "ca.crt", first[0], first[1], hub[0], hub[1], server[0], server[1])
    return CountyPki(base, devices)
