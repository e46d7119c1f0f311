"""agent.certs reads certificate dates with its own DER reader: it must agree
with the cryptography package on every certificate the county's CA could
issue, and fail cleanly on anything else."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import random
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from agent.certs import BadCertificate, validity

ROOT = Path(__file__).resolve().parents[2]


def _cert(before: dt.datetime, after: dt.datetime, key: object, serial: int, cn: str = "62062101011198000042") -> bytes:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "民勤县")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(serial)
        .not_valid_before(before)
        .not_valid_after(after)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ((2026, 1, 1), (2036, 1, 1)),  # UTCTime both
        ((1999, 12, 31), (2049, 12, 31)),  # the last UTCTime year, a 19xx start
        ((2026, 6, 1), (2050, 1, 1)),  # GeneralizedTime from 2050
        ((2049, 1, 1), (2120, 3, 4)),
        ((1950, 1, 1), (1970, 1, 1)),
    ],
)
def test_dates_agree_with_cryptography(before: tuple[int, int, int], after: tuple[int, int, int]) -> None:
    b, a = dt.datetime(*before, 8, 30, 15, tzinfo=dt.UTC), dt.datetime(*after, 23, 59, 59, tzinfo=dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _cert(b, a, key, x509.random_serial_number())
    ref = x509.load_pem_x509_certificate(pem)
    assert validity(pem) == (ref.not_valid_before_utc, ref.not_valid_after_utc) == (b, a)


def test_long_fields_rsa_and_a_chain_file() -> None:
    """An RSA key and a big serial give multi-byte lengths; a bundle gives the first certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start, end = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    first = _cert(start, end, key, 2**150 + 7, "x" * 64)
    second = _cert(dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2021, 1, 1, tzinfo=dt.UTC), key, 5)
    assert validity(b"# comment\n" + first + second)[1] == dt.datetime(2031, 1, 1, tzinfo=dt.UTC)


def test_garbage_raises_a_value_error_only() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _cert(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2031, 1, 1, tzinfo=dt.UTC), key, 9)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    with pytest.raises(BadCertificate, match="no PEM"):
        validity(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    rng = random.Random(1400)
    for _ in range(400):
        broken = bytearray(der[: rng.randrange(1, len(der))])
        if rng.random() < 0.5 and broken:
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        text = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(bytes(broken)) + b"-----END CERTIFICATE-----\n"
        with contextlib.suppress(ValueError):  # BadCertificate, or a date strptime rejects
            validity(text)


def test_the_running_agent_does_not_import_cryptography() -> None:
    """cryptography cost the agent ~11 MB RSS; only tests and provisioning use it."""
    code = (
        "import sys, agent.cli, agent.runtime, agent.check, agent.vision.pipeline, agent.vision.detector;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
