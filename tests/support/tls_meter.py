"""A TCP proxy that meters a device's TLS link record by record (bench/link_bytes.py, link tests).

The bytes pass unchanged, so TLS stays end to end. The meter sees only what
a carrier would see: when each chunk crossed and the TLS record framing
(5-byte header: content type, version, length). That is enough to tell a
2-byte MQTT PINGREQ (a 24-byte record) from a heartbeat, and a handshake from
application data.

``chunk_cost`` and ``open_close_cost`` estimate what the SIM card is billed,
IPv4 and TCP headers included, from the chunks: a 4G link carries at most ``MSS`` payload bytes per
segment, each segment costs 52 bytes of headers (IPv4 20, TCP 20, timestamps
12), and the receiver sends a pure ACK unless its own data goes back within
Linux's 40 ms delayed-ACK time (and one per two full segments of a burst).
Opening a connection costs a SYN, SYN-ACK and ACK; closing one, two FINs and
their ACKs.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.proxy import CountingProxy

MSS = 1400  # a 4G bearer's MTU is 1,420-1,500 bytes; 1,400 payload bytes is a common clamp
HEADER = 52  # IPv4 20 + TCP 20 + the timestamp option 12 (Linux sends it on every segment)
SYN = 60  # IPv4 20 + TCP 20 + MSS, SACK-permitted, timestamps, window scale (20)
DELAYED_ACK_S = 0.040
TLS13_OVERHEAD = 17  # a TLS 1.3 record: 16-byte AEAD tag + 1 inner content-type byte
# TLS 1.2 AES-GCM: an 8-byte explicit nonce + the 16-byte tag; ChaCha20-Poly1305: the tag only.
TLS12_OVERHEAD = {0xC02B: 24, 0xC02C: 24, 0xC02F: 24, 0xC030: 24, 0xCCA8: 16, 0xCCA9: 16}
HANDSHAKE, APPDATA = 22, 23  # TLS content types


@dataclass(frozen=True, slots=True)
class Record:
    t: float  # time.monotonic() when the chunk that completed it arrived
    up: bool  # device → broker
    kind: int  # TLS content type
    length: int  # the record's body length (its 5-byte header comes on top)
    overhead: int = TLS13_OVERHEAD  # of an encrypted record, by the version and suite the ServerHello chose

    @property
    def size(self) -> int:
        return self.length + 5

    @property
    def plaintext(self) -> int:
        """Bytes of the MQTT stream inside an application record."""
        return self.length - self.overhead


@dataclass(frozen=True, slots=True)
class Chunk:
    t: float
    up: bool
    n: int


@dataclass
class Connection:
    opened: float
    closed: float | None = None
    chunks: list[Chunk] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    overhead: int = TLS13_OVERHEAD
    _buf: dict[bool, bytearray] = field(default_factory=lambda: {True: bytearray(), False: bytearray()})

    def feed(self, t: float, up: bool, data: bytes) -> None:
        self.chunks.append(Chunk(t, up, len(data)))
        buf = self._buf[up]
        buf += data
        while len(buf) >= 5:
            length = int.from_bytes(buf[3:5], "big")
            if len(buf) < 5 + length:
                break
            if not up and buf[0] == HANDSHAKE and buf[5] == 2:  # the ServerHello, in clear
                self.overhead = _overhead(bytes(buf[5 : 5 + length]))
            self.records.append(Record(t, up, buf[0], length, self.overhead))
            del buf[: 5 + length]

    def payload(self, up: bool | None = None, since: float = 0.0, until: float = math.inf) -> int:
        return sum(c.n for c in self.chunks if (up is None or c.up == up) and since <= c.t < until)


def _overhead(hello: bytes) -> int:
    """Bytes an encrypted record adds to its plaintext, from the ServerHello's version and cipher suite."""
    at = 4 + 2 + 32  # handshake header, legacy version, random
    at += 1 + hello[at]  # session id
    suite = int.from_bytes(hello[at : at + 2], "big")
    at += 2 + 1 + 2  # suite, compression, extensions length
    while at + 4 <= len(hello):
        ext, size = int.from_bytes(hello[at : at + 2], "big"), int.from_bytes(hello[at + 2 : at + 4], "big")
        if ext == 0x002B and hello[at + 4 : at + 6] == b"\x03\x04":  # supported_versions: TLS 1.3
            return TLS13_OVERHEAD
        at += 4 + size
    return TLS12_OVERHEAD.get(suite, 24)


def segments(n: int) -> int:
    return max(1, math.ceil(n / MSS))


def chunk_cost(conn: Connection, i: int) -> int:
    """Bytes on the wire chunk ``i`` costs: its payload and headers, and the ACKs the far side sends for it."""
    c = conn.chunks[i]
    segs = segments(c.n)
    answered = any(o.up != c.up and 0 <= o.t - c.t <= DELAYED_ACK_S for o in conn.chunks[i + 1 : i + 8])
    acks = segs // 2 + (0 if answered or segs % 2 == 0 else 1)
    if segs == 1:
        acks = 0 if answered else 1
    return c.n + segs * HEADER + acks * HEADER


def open_close_cost(conn: Connection, since: float = -math.inf, until: float = math.inf) -> int:
    """The TCP handshake (SYN, SYN-ACK, ACK) and teardown (FIN and ACK each way) inside the window."""
    cost = 0
    if since <= conn.opened < until:
        cost += 2 * SYN + HEADER
    if conn.closed is not None and since <= conn.closed < until:
        cost += 4 * HEADER
    return cost


class MeteringProxy(CountingProxy):
    """Device ↔ broker relay that records every connection's chunks and TLS records.

    ``freeze()`` stops forwarding and keeps the sockets open: a 4G outage or a
    power cut as the broker sees it (silence, no FIN). ``drop()`` closes both
    sides (the device sees its link drop and reconnects).
    """

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        super().__init__(target_port, host)
        self.connections: list[Connection] = []
        self._frozen = threading.Event()

    def start(self) -> MeteringProxy:
        super().start()
        return self

    def freeze(self) -> None:
        self._frozen.set()

    def snapshot(self) -> list[Connection]:
        with self._lock:
            return list(self.connections)

    def _opened(self) -> Connection:
        conn = Connection(time.monotonic())
        self.connections.append(conn)
        return conn

    def _passed(self, state: Any, up: bool, data: bytes) -> bool:
        if self._frozen.is_set():
            return False  # swallowed: the far side hears nothing
        super()._passed(state, up, data)
        state.feed(time.monotonic(), up, data)
        return True

    def _ended(self, state: Any) -> None:
        if state.closed is None:
            state.closed = time.monotonic()
