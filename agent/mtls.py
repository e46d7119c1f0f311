"""The device's HTTPS connection to the hub, for a metered and flaky 4G link:
shared by the update download (agent/update/fetch.py) and the clip upload
(agent/clips/upload.py), so both present the same certificate, trust only the
county CA, and pay for a full TLS handshake only once per cut.

- mTLS: the device shows its own client certificate (the broker's) and accepts
  only a server certificate from the county CA with the hub's name in it.
- TLS session resumption after a cut: a resumed handshake skips the server's
  certificate chain, about 2 KB less each time.
- A token bucket for a bandwidth cap in bytes/s, and a socket buffer set
  before connect (receive for downloads, send for uploads), so what sits in
  kernel buffers when the link is cut (lost and billed) stays small.

Only the standard library: the update child imports this, and so does the
running agent without weighing on its memory.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    ca: Path  # the county CA: the only issuer of the hub's certificate
    cert: Path  # this device's certificate (the broker's)
    key: Path


class TlsFileMissing(Exception):
    """A CA, certificate or key file of the identity does not exist."""


class TokenBucket:
    """``rate`` bytes/s with a burst of ``burst`` bytes; ``take`` sleeps off any debt."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"bandwidth cap must be positive, got {rate}")
        self.rate, self.burst = rate, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = burst
        self._last = clock()

    def take(self, n: int) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate) - n
        self._last = now
        if self._tokens < 0:
            # Sleep off the debt; the next take() refills exactly what this slept.
            self._sleep(-self._tokens / self.rate)


class MtlsConnection(http.client.HTTPSConnection):
    """An HTTPS connection that resumes the last TLS session, and whose socket
    gets its buffers set before connect, so the TCP window is small from the
    first byte."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        context: ssl.SSLContext,
        *,
        rcvbuf: int | None = None,
        sndbuf: int | None = None,
        session: ssl.SSLSession | None = None,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls = context
        self._bufs = (rcvbuf, sndbuf)
        self._session = session

    def connect(self) -> None:
        raw = open_socket((self.host, self.port), self.timeout, *self._bufs)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = self._tls.wrap_socket(raw, server_hostname=self.host, session=self._session)
        except BaseException:
            raw.close()
            raise

    @property
    def session(self) -> ssl.SSLSession | None:
        return self.sock.session if isinstance(self.sock, ssl.SSLSocket) else None


def open_socket(
    address: tuple[str, int], timeout: float | None, rcvbuf: int | None = None, sndbuf: int | None = None
) -> socket.socket:
    err: OSError | None = None
    for family, kind, proto, _, addr in socket.getaddrinfo(*address, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if sndbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            sock.settimeout(timeout)
            sock.connect(addr)
            return sock
        except OSError as exc:
            sock.close()
            err = exc
    raise err or OSError(f"cannot resolve {address[0]}")


def client_context(identity: TlsIdentity, what: str = "update") -> ssl.SSLContext:
    """``what`` names the user in the error (``update TLS CA … does not exist``)."""
    for name, path in (("CA", identity.ca), ("certificate", identity.cert), ("key", identity.key)):
        if not path.is_file():
            raise TlsFileMissing(f"{what} TLS {name} {path} does not exist")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(identity.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(identity.cert), str(identity.key))
    return ctx
