"""A TCP proxy between a device and the broker that counts the device's bytes
and can cut the link, as a 4G outage does (for byte bounds and link-cut tests).

It forwards bytes unchanged (TLS passes through), so what it counts is what a
metered SIM would bill for the device's upload, TCP/IP headers aside.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from sim.ports import free_port


class CountingProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = free_port()
        self.up_bytes = 0  # device → broker
        self.down_bytes = 0  # broker → device
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._closed = False

    def start(self) -> CountingProxy:
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((self.host, self.port))
        lst.listen(16)
        self._listener = lst
        threading.Thread(target=self._accept, args=(lst,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Drop every connection and refuse new ones until ``restore``."""
        lst, self._listener = self._listener, None
        if lst is not None:
            # shutdown() first: close() alone does not wake the thread blocked in
            # accept(), and the kernel would keep accepting for it.
            with contextlib.suppress(OSError):
                lst.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                lst.close()
        self.drop()

    def drop(self) -> None:
        """Drop every connection; new ones are still accepted (the device reconnects at once)."""
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def restore(self) -> None:
        if self._listener is None and not self._closed:
            self.start()

    def close(self) -> None:
        self._closed = True
        self.cut()

    def _accept(self, lst: socket.socket) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return
            if self._listener is not lst:  # cut meanwhile
                client.close()
                return
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # the 5 s was for connecting: an idle link (keepalive 240 s) must not time out
            with self._lock:
                self._socks += [client, upstream]
                state = self._opened()
            threading.Thread(target=self._pipe, args=(client, upstream, True, state), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False, state), daemon=True).start()

    # What a subclass records (tests/support/tls_meter.py); called under the lock.
    def _opened(self) -> Any:
        return None

    def _passed(self, _state: Any, up: bool, data: bytes) -> bool:
        """Count ``data``; False: swallow it instead of forwarding."""
        if up:
            self.up_bytes += len(data)
        else:
            self.down_bytes += len(data)
        return True

    def _ended(self, _state: Any) -> None:
        pass

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool, state: Any) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    forward = self._passed(state, up, data)
                if forward:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._ended(state)
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
