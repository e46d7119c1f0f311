"""A TCP proxy that meters a device's TLS link record by record (bench/link_bytes.py, link tests).

The bytes pass unchanged, so TLS stays end to end. The meter sees only what
a carrier would see: when each chunk crossed and the TLS record framing
(5-byte header: content type, version, length). That is enough to tell a
2-byte MQTT PINGREQ (a 24-byte record) from a heartbeat, and a handshake from
application data.

``wire_bytes`` estimates what the SIM card is billed, IPv4 and TCP headers
included, from the chunks: a 4G link carries at most ``MSS`` payload bytes per
segment, each segment costs 52 bytes of headers (IPv4 20, TCP 20, timestamps
12), and the receiver sends a pure ACK unless its own data goes back within
Linux's 40 ms delayed-ACK time (and one per two full segments of a burst).
Opening a connection costs a SYN, SYN-ACK and ACK; closing one, two FINs and
their ACKs.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from dataclasses import dataclass, field

from sim.ports import free_port

MSS = 1400  # a 4G bearer's MTU is 1,420-1,500 bytes; 1,400 payload bytes is a common clamp
HEADER = 52  # IPv4 20 + TCP 20 + the timestamp option 12 (Linux sends it on every segment)
SYN = 60  # IPv4 20 + TCP 20 + MSS, SACK-permitted, timestamps, window scale (20)
DELAYED_ACK_S = 0.040
TLS_OVERHEAD = 17  # TLS 1.3 application record: 16-byte AEAD tag + 1 inner content-type byte
HANDSHAKE, CCS, ALERT, APPDATA = 22, 20, 21, 23


@dataclass(frozen=True, slots=True)
class Record:
    t: float  # time.monotonic() when the chunk that completed it arrived
    up: bool  # device → broker
    kind: int  # TLS content type
    length: int  # the record's body length (its 5-byte header comes on top)

    @property
    def size(self) -> int:
        return self.length + 5

    @property
    def plaintext(self) -> int:
        """Bytes of the MQTT stream inside an application record (TLS 1.3)."""
        return self.length - TLS_OVERHEAD


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
    _buf: dict[bool, bytearray] = field(default_factory=lambda: {True: bytearray(), False: bytearray()})

    def feed(self, t: float, up: bool, data: bytes) -> None:
        self.chunks.append(Chunk(t, up, len(data)))
        buf = self._buf[up]
        buf += data
        while len(buf) >= 5:
            length = int.from_bytes(buf[3:5], "big")
            if len(buf) < 5 + length:
                break
            self.records.append(Record(t, up, buf[0], length))
            del buf[: 5 + length]

    def payload(self, up: bool | None = None, since: float = 0.0, until: float = math.inf) -> int:
        return sum(c.n for c in self.chunks if (up is None or c.up == up) and since <= c.t < until)


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


def wire_bytes(conn: Connection, since: float = -math.inf, until: float = math.inf) -> int:
    """Estimated bytes on the wire, both directions: payload, headers, ACKs, the TCP open and close."""
    chunks = sum(chunk_cost(conn, i) for i, c in enumerate(conn.chunks) if since <= c.t < until)
    return chunks + open_close_cost(conn, since, until)


class MeteringProxy:
    """Device ↔ broker relay that records every connection's chunks and TLS records.

    ``freeze()`` stops forwarding and keeps the sockets open: a 4G outage or a
    power cut as the broker sees it (silence, no FIN). ``cut()`` closes both
    sides (the device sees its link drop and reconnects).
    """

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = free_port()
        self.connections: list[Connection] = []
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._frozen = threading.Event()

    def start(self) -> MeteringProxy:
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((self.host, self.port))
        lst.listen(8)
        self._listener = lst
        threading.Thread(target=self._accept, args=(lst,), daemon=True).start()
        return self

    def freeze(self) -> None:
        self._frozen.set()

    def cut(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        lst, self._listener = self._listener, None
        if lst is not None:
            with contextlib.suppress(OSError):
                lst.shutdown(socket.SHUT_RDWR)
            lst.close()
        self.cut()

    def snapshot(self) -> list[Connection]:
        with self._lock:
            return list(self.connections)

    def _accept(self, lst: socket.socket) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            conn = Connection(time.monotonic())
            with self._lock:
                self.connections.append(conn)
                self._socks += [client, upstream]
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(conn, src, dst, up), daemon=True).start()

    def _pipe(self, conn: Connection, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self._frozen.is_set():
                    continue  # swallowed: the far side hears nothing
                with self._lock:
                    conn.feed(time.monotonic(), up, data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                if conn.closed is None:
                    conn.closed = time.monotonic()
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
