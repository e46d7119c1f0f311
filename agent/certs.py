"""Checks on the device's TLS files: present, key private, certificates in date.

A device whose certificate expired cannot connect, and from the hub it looks
exactly like a dead device; catching it at start (and in ``xl-agent check``)
turns a silent outage into a line the installer can read.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

WARN_DAYS = 30


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
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        report.errors.append(f"{key}: found {str(path)!r}, expected a PEM certificate")
        return
    after = cert.not_valid_after_utc
    report.expiry[key] = after
    if cert.not_valid_before_utc > now:
        # Usually the clock, not the certificate: a Pi without RTC before NTP sync.
        report.warnings.append(f"{key}: not valid before {cert.not_valid_before_utc:%Y-%m-%d} (clock not set?)")
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
