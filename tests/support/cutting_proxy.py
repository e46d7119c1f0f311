"""A TCP proxy that cuts connections at random byte offsets, as a flaky 4G link does.

It counts the bytes it delivers to the device (what a metered SIM bills for a
download, TCP/IP headers aside), TLS handshakes and HTTP headers included.
Its socket towards the device has a small send buffer, like the queue of a
radio link: bytes the proxy has counted but the device never read are lost at
a cut, as on a real link.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time

from sim.ports import free_port


class _Pace:
    """A link's rate: ``take(n)`` sleeps until ``n`` more bytes fit (one per direction)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        if self.rate is None:
            return
        with self._lock:
            now = time.monotonic()
            self._next = max(self._next, now) + n / self.rate
            wait = self._next - now
        if wait > 0:
            time.sleep(wait)


class CuttingProxy:
    def __init__(
        self,
        target_port: int,
        *,
        cuts: int,
        mean_gap: int,
        seed: int = 17,
        upload: bool = False,
        rate_bytes_per_s: float | None = None,
    ) -> None:
        """``cuts`` connections are cut, each after a random number of delivered bytes
        (uniform in 1 .. 2×``mean_gap``); the connections after those run to the end.

        ``upload``: count the bytes the device sends instead (a clip upload).
        ``rate_bytes_per_s``: the link's speed, each way (1 Mbit/s = 125,000)."""
        self.upload = upload
        self._pace = (_Pace(rate_bytes_per_s), _Pace(rate_bytes_per_s))  # down, up
        self.target_port = target_port
        self.port = free_port()
        self.cuts_left = cuts
        self.mean_gap = mean_gap
        self.rng = random.Random(seed)
        self.down_bytes = 0  # delivered to the device
        self.up_bytes = 0
        self.cut_at: list[int] = []  # bytes into the connection at each cut
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                budget = None
                if self.cuts_left > 0:
                    self.cuts_left -= 1
                    budget = self.rng.randint(1, 2 * self.mean_gap)
            pair = (client, upstream)
            down_budget, up_budget = (None, budget) if self.upload else (budget, None)
            threading.Thread(target=self._down, args=(upstream, client, down_budget, pair), daemon=True).start()
            threading.Thread(target=self._up, args=(client, upstream, up_budget, pair), daemon=True).start()

    def _down(
        self, src: socket.socket, dst: socket.socket, budget: int | None, pair: tuple[socket.socket, ...]
    ) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(16 * 1024)
                if not data:
                    break
                if budget is not None and sent + len(data) >= budget:
                    data = data[: budget - sent]
                    dst.sendall(data)
                    with self._lock:
                        self.down_bytes += len(data)
                        self.cut_at.append(budget)
                    break
                self._pace[0].take(len(data))
                dst.sendall(data)
                sent += len(data)
                with self._lock:
                    self.down_bytes += len(data)
        except OSError:
            pass
        finally:
            _close(pair)

    def _up(self, src: socket.socket, dst: socket.socket, budget: int | None, pair: tuple[socket.socket, ...]) -> None:
        sent = 0
        try:
            # Small reads at a rate, as a radio link's uplink: the device's send buffer fills, not ours.
            while data := src.recv(4 * 1024 if self._pace[1].rate else 16 * 1024):
                if budget is not None and sent + len(data) >= budget:
                    data = data[: budget - sent]
                    dst.sendall(data)
                    with self._lock:
                        self.up_bytes += len(data)
                        self.cut_at.append(budget)
                    break
                self._pace[1].take(len(data))
                dst.sendall(data)
                sent += len(data)
                with self._lock:
                    self.up_bytes += len(data)
        except OSError:
            pass
        finally:
            _close(pair)


def _close(pair: tuple[socket.socket, ...]) -> None:
    for s in pair:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            s.close()
