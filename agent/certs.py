"""Checks on the device's TLS files: present, key private, certificates in date.

A device whose certificate expired cannot connect, and from the hub it looks
exactly like a dead device; catching it at start (and in ``xl-agent check``)
turns a silent outage into a line the installer can read.

The dates come from a small DER reader here, not from the ``cryptography``
package: importing it (and the ``email`` package it pulls in) cost the agent
about 11 MB of resident memory for two dates (bench/agent_footprint.py).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

WARN_DAYS = 30
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.S)


class BadCertificate(ValueError):
    pass


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER element at ``pos``."""
    if pos + 2 > len(der):
        raise BadCertificate("truncated")
    tag, first = der[pos], der[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(der):
            raise BadCertificate("bad length")
        length = int.from_bytes(der[pos : pos + n], "big")
        pos += n
    if pos + length > len(der):
        raise BadCertificate("truncated")
    return tag, pos, pos + length


def _time(der: bytes, pos: int) -> tuple[dt.datetime, int]:
    tag, start, end = _tlv(der, pos)
    text = der[start:end].decode("ascii", "replace")
    if tag == 0x17:  # UTCTime, YYMMDDHHMMSSZ: years 50-99 are 19xx (RFC 5280 4.1.2.5.1)
        when = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
        if when.year >= 2050:
            when = when.replace(year=when.year - 100)
    elif tag == 0x18:  # GeneralizedTime, YYYYMMDDHHMMSSZ (from 2050)
        when = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise BadCertificate(f"validity holds tag {tag:#x}, not a time")
    return when.replace(tzinfo=dt.UTC), end


def validity(pem: bytes) -> tuple[dt.datetime, dt.datetime]:
    """(not before, not after) of the first certificate in a PEM file, in UTC."""
    m = _PEM.search(pem)
    if m is None:
        raise BadCertificate("no PEM certificate block")
    try:
        der = base64.b64decode(b"".join(m.group(1).split()), validate=True)
    except binascii.Error as exc:
        raise BadCertificate(f"bad base64: {exc}") from None
    try:
        # Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
        #   serialNumber, signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... } ... }
        tag, pos, _ = _tlv(der, 0)
        tag2, pos, _ = _tlv(der, pos)
        if tag != 0x30 or tag2 != 0x30:
            raise BadCertificate("not an X.509 certificate")
        if der[pos] == 0xA0:
            pos = _tlv(der, pos)[2]
        for expected in (0x02, 0x30, 0x30):  # serial, signature algorithm, issuer
            tag, _, end = _tlv(der, pos)
            if tag != expected:
                raise BadCertificate("not an X.509 certificate")
            pos = end
        tag, pos, _ = _tlv(der, pos)
        if tag != 0x30:
            raise BadCertificate("no validity")
        not_before, pos = _time(der, pos)
        not_after, _ = _time(der, pos)
    except (IndexError, ValueError) as exc:
        raise BadCertificate(str(exc)) from None
    return not_before, not_after


@dataclass
class CertReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    expiry: dict[str, dt.datetime] = field(default_factory=dict)  # key -> not_valid_after (UTC)

    @property
    def ok(self) -> bool:
        return not self.errors


def _check_readable(report: CertReport, key: str, path: Path) -> bool:
    if not path.is_file():
        report.errors.append(f"{key}: found {str(path)!r}, expected an existing file")
        return False
    if not os.access(path, os.R_OK):
        report.errors.append(f"{key}: found {str(path)!r}, expected a file this user can read")
        return False
    return True


def _check_cert(report: CertReport, key: str, path: Path, now: dt.datetime) -> None:
    if not _check_readable(report, key, path):
        return
    try:
        before, after = validity(path.read_bytes())
    except ValueError:
        report.errors.append(f"{key}: found {str(path)!r}, expected a PEM certificate")
        return
    report.expiry[key] = after
    if before > now:
        # Usually the clock, not the certificate: a Pi without RTC before NTP sync.
        report.warnings.append(f"{key}: not valid before {before:%Y-%m-%d} (clock not set?)")
    if after <= now:
        report.errors.append(f"{key}: certificate expired on {after:%Y-%m-%d}, expected a valid certificate")
    elif after - now < dt.timedelta(days=WARN_DAYS):
        days = (after - now).days
        report.warnings.append(f"{key}: certificate expires in {days} days ({after:%Y-%m-%d}); renew it")


def check_tls_files(ca: Path, cert: Path, key: Path, now: dt.datetime | None = None) -> CertReport:
    now = now or dt.datetime.now(dt.UTC)
    report = CertReport()
    _check_cert(report, "broker.ca", ca, now)
    _check_cert(report, "broker.cert", cert, now)
    if _check_readable(report, "broker.key", key):
        mode = stat.S_IMODE(key.stat().st_mode)
        if mode & 0o044:
            report.errors.append(
                f"broker.key: found mode {mode:04o} on {str(key)!r}, expected no group/world read (chmod 600)"
            )
    return report
