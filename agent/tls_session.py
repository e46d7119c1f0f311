"""The link's TLS context: the device certificate, one TLS version, and session resumption.

A reconnect over a metered 4G card is mostly TLS: a full handshake sends both
certificate chains (bench/link_bytes.py: 4.7 KB of the 5.5 KB a reconnect
cost). Resuming the previous session with the ticket the broker gave skips
the certificate exchange. paho builds a new socket per connection through
``SSLContext.wrap_socket``, so the context itself offers the last ticket.

Mosquitto's tickets are OpenSSL's stateless ones. They carry the device's
certificate (the broker needs it to know who a resumed client is), so a
ticket is about 750 bytes, and that decides the version:
- TLS 1.2 (the default): the ClientHello carries the ticket and the broker
  answers with a ServerHello and its Finished; the ticket stays good for
  every reconnect until it expires. A resumed handshake is ~1.2 KB.
- TLS 1.3: the broker sends a fresh ticket after every handshake, two after
  a full one, so a resumed handshake is ~2.3 KB and a full one 4.7 KB
  (TLS 1.2: 3.6 KB). In exchange 1.3 encrypts the certificates and makes a
  fresh key exchange on resumption.
The cipher suites are ECDHE with AEAD only, as TLS 1.3 has.

Tickets last 2 hours (the broker's lifetime hint). After that, or after the
broker restarts or reloads (new ticket keys), the handshake is a full one,
which OpenSSL does by itself.

A resumed session skips the broker's CRL check. Revocation holds anyway
(tests/reliability/test_link_resumption.py): the SIGHUP that reloads the CRL
also gives Mosquitto new ticket keys, so every old ticket is worthless; and
where the office cannot signal the broker, the device is still deleted from
the dynamic-security model, so a thief who resumes may read and write nothing.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

# Forward secrecy and AEAD, as TLS 1.3 has; ECDSA only (the county's certificates are P-256),
# which also keeps the ClientHello short.
AEAD_ECDHE = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384"


class ResumingContext(ssl.SSLContext):
    """An SSLContext that offers the previous connection's session on the next handshake."""

    resume: ssl.SSLSession | None = None
    resumed = 0  # handshakes that resumed (tests, bench)
    full = 0  # handshakes that did not

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if self.resume is not None and kwargs.get("session") is None:
            kwargs["session"] = self.resume
        return super().wrap_socket(sock, *args, **kwargs)

    def remember(self, sock: object) -> None:
        """After the broker's CONNACK: keep this connection's session (and its ticket) for the next one."""
        if not isinstance(sock, ssl.SSLSocket):
            return
        if sock.session_reused:
            self.resumed += 1
        else:
            self.full += 1
        session = sock.session
        if session is not None and session.has_ticket:
            self.resume = session


def client_context(ca: Path, cert: Path, key: Path, version: str = "1.2") -> ResumingContext:
    ctx = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    pinned = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = pinned
    if pinned is ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers(AEAD_ECDHE)
    ctx.load_verify_locations(cafile=str(ca))
    ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    return ctx
