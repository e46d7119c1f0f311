"""Who may download: a TLS client whose certificate chains to the county CA
(the TLS layer checks that) and whose common name is a registered, active
device. When the registry holds the device's certificate fingerprint, the
certificate presented must be that one: a device re-provisioned with a new
key must not be reachable with the old card's certificate."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from hub.db.schema import devices
from protocol.ids import is_device_id


@dataclass(frozen=True, slots=True)
class Verdict:
    device_id: str | None  # the certificate's CN when it is a device id
    allowed: bool
    reason: str  # for the log and the 403 body; never secret


def common_name(peer: Mapping[str, Any] | None) -> str | None:
    """The subject CN of ``SSLSocket.getpeercert()``'s dict."""
    if not peer:
        return None
    subject = peer.get("subject")
    if not isinstance(subject, tuple):
        return None
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class DeviceGate:
    """Asks the registry on every request (one indexed read): a revocation is
    effective for the next request, with no cache to wait out."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def check(self, cn: str | None, der: bytes | None) -> Verdict:
        if cn is None:
            return Verdict(None, False, "client certificate has no common name")
        if not is_device_id(cn):
            return Verdict(None, False, f"client certificate CN {cn[:40]!r} is not a device id")
        with self.engine.connect() as conn:
            row = conn.execute(select(devices.c.status, devices.c.cert_fingerprint).where(devices.c.id == cn)).first()
        if row is None:
            return Verdict(cn, False, f"device {cn} is not registered")
        if row.status != "active":
            return Verdict(cn, False, f"device {cn} is {row.status}")
        if row.cert_fingerprint and der is not None and hashlib.sha256(der).hexdigest() != row.cert_fingerprint.lower():
            return Verdict(cn, False, f"device {cn} presented a certificate other than its registered one")
        return Verdict(cn, True, "ok")
