"""Attacks on the over-the-air updates (issue 17, docs/ota.md), with real
processes, real mTLS and real files: the hub's repository server
(hub/updates/server.py) flooded and slow-walked by strangers and by a stolen
device certificate, and the device's side against a hostile hub or network.
Each test names the attacker of the threat model it plays."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.update.guard import State, Trial, write_state
from agent.update.layout import Layout
from hub.updates import server as server_mod
from protocol.ids import make_device_id
from tests.support.update_hub import UpdateHub, start_update_hub
from tests.support.update_release import fake_release, install_guard

GOOD, THIEF = (str(make_device_id(1, n)) for n in (1, 2))
MAX_CONNECTIONS = getattr(server_mod, "MAX_CONNECTIONS", 256)
MAX_PER_DEVICE = getattr(server_mod, "MAX_PER_DEVICE", 4)


Hub = UpdateHub


@pytest.fixture
def hub(sqlite_url: str, tmp_path: Path) -> Iterator[Hub]:
    h = start_update_hub(sqlite_url, tmp_path, (GOOD, THIEF))
    (h.repo / "metadata" / "timestamp.json").write_text('{"signed": {}}')
    yield h
    h.stop()


def _ctx(h: Hub, who: str) -> ssl.SSLContext:
    return h.context(who)


def _get(h: Hub, who: str = GOOD, path: str = "/tuf/metadata/timestamp.json") -> int:
    conn = http.client.HTTPSConnection("127.0.0.1", h.server.port, context=_ctx(h, who), timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _handler_threads() -> int:
    """Threads serving a connection (socketserver names them after process_request_thread)."""
    return sum(1 for t in threading.enumerate() if "process_request_thread" in t.name)


def _closed_by_peer(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:  # reset
        return True


def _connect(h: Hub) -> socket.socket:
    for _ in range(100):
        try:
            return socket.create_connection(("127.0.0.1", h.server.port), timeout=5)
        except ConnectionRefusedError:  # the listen queue is full for a moment
            time.sleep(0.02)
    raise AssertionError("cannot connect")


# -- the hub's repository server ------------------------------------------------


def test_a_stranger_holding_many_idle_connections_cannot_take_every_thread_and_file(hub: Hub) -> None:
    """Anyone who reaches the port (no certificate needed: the handshake is in the
    request's thread) opens connections and sends nothing. Before the fix each one
    held a thread and a file descriptor for as long as the attacker liked; ~1,000
    of them exhaust the hub process's descriptors (systemd's soft limit is 1,024),
    and the hub's ingest, database and broker connections share that process."""
    held = [_connect(hub) for _ in range(MAX_CONNECTIONS + 60)]
    try:
        time.sleep(1.0)
        assert _handler_threads() <= MAX_CONNECTIONS
        # The excess was closed at once, not queued behind the others.
        closed = sum(_closed_by_peer(s, 0.05) for s in held[-40:])
        assert closed == 40
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _handler_threads() > 0:
        time.sleep(0.1)
    assert _get(hub) == 200  # an honest device is served again


def test_a_handshake_trickled_a_byte_at_a_time_is_dropped_at_its_deadline(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slowloris before any certificate: one byte of a ClientHello every 0.3 s
    keeps every recv() under the idle timeout. Held: CPython's do_handshake keeps
    one deadline (the socket timeout) across all its reads, so the whole handshake
    must finish within IDLE_TIMEOUT_S (60 s; 1 s here)."""
    monkeypatch.setattr(server_mod, "IDLE_TIMEOUT_S", 1.0)
    hello = bytes.fromhex("16030100c8010000c40303") + bytes(200)  # the start of a TLS ClientHello
    sock = _connect(hub)
    started = time.monotonic()
    dropped_after = None
    try:
        for b in hello:
            try:
                sock.send(bytes([b]))
            except OSError:
                dropped_after = time.monotonic() - started
                break
            if _closed_by_peer(sock, 0.3):
                dropped_after = time.monotonic() - started
                break
            if time.monotonic() - started > 8:
                break
    finally:
        sock.close()
    assert dropped_after is not None, "the trickled handshake was still held after 8 s"
    assert dropped_after < 3.0
    assert _get(hub) == 200


def test_a_stolen_certificate_holds_only_a_few_connections(hub: Hub) -> None:
    """With a device's certificate the attacker completes the handshake and then
    sends its request line slowly. It may use the repository like any device (the
    releases are the same for all), but it may not fill the server."""
    ctx = _ctx(hub, THIEF)
    held: list[ssl.SSLSocket] = []
    try:
        for _ in range(MAX_PER_DEVICE + 6):
            tls = ctx.wrap_socket(_connect(hub), server_hostname="127.0.0.1")
            tls.sendall(b"GET /tuf/")  # and never the rest
            held.append(tls)
        time.sleep(0.5)
        open_ = [s for s in held if not _closed_by_peer(s, 0.2)]
        assert len(open_) <= MAX_PER_DEVICE
        assert _get(hub, GOOD) == 200  # another device is not held up
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    assert _get(hub, THIEF) == 200  # its slots come back once it lets go


@pytest.mark.parametrize(
    "path",
    [
        "/tuf/%2e%2e/ca.crt",
        "/tuf/%2E%2E%2Fca.crt",
        "/tuf/metadata/%2e%2e/%2e%2e/ca.crt",
        "/tuf/metadata/..%5c..%5cca.crt",
        "/tuf/metadata/timestamp.json%00.txt",
        "/tuf/./metadata/timestamp.json",
        "//127.0.0.1/tuf/../ca.crt",
        "/tuf/metadata/%ff%fe",
        "/tuf/" + "a/" * 3000 + "x",
    ],
)
def test_a_device_cannot_read_outside_the_repository(hub: Hub, path: str) -> None:
    (hub.repo.parent / "ca.key").write_text("secret")
    conn = http.client.HTTPSConnection("127.0.0.1", hub.server.port, context=_ctx(hub, THIEF), timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status in (400, 404, 414), (path, resp.status)
    assert b"BEGIN" not in body and b"secret" not in body
    assert _get(hub) == 200


def test_a_stolen_device_certificate_cannot_pose_as_the_hub(hub: Hub, tmp_path: Path) -> None:
    """A hostile Wi-Fi or 4G operator with a stolen device certificate and key
    (issued by the same county CA) runs its own update server: the device refuses
    it (a device certificate names no host and is for client auth only)."""
    from agent.update.fetch import FetchError, HttpsFetcher, TlsIdentity

    cert, key = hub.certs[THIEF]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            with ctx.wrap_socket(raw, server_side=True) as s:
                s.recv(1024)
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        except (OSError, ssl.SSLError):
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    good_cert, good_key = hub.certs[GOOD]
    fetcher = HttpsFetcher(TlsIdentity(hub.ca, good_cert, good_key), give_up_s=0.1, sleep=lambda _s: None)
    try:
        with pytest.raises(FetchError, match="not trusted"):
            fetcher.get(f"https://localhost:{port}/tuf/metadata/timestamp.json", 1000)
    finally:
        fetcher.close()
        listener.close()


# -- the device: a full SD card under the guard ----------------------------------

needs_mounts = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1) to mount a small tmpfs"
)


def _guard_on_a_full_card(tmp_path: Path, attempts: int) -> tuple[str, str]:
    """A device whose card is full (a real tmpfs, filled until ENOSPC) with 0.3.0 on
    trial after 0.2.0, as systemd starts the guard: (the release ``current`` names
    afterwards, the guard's stderr)."""
    src = tmp_path / "card"
    layout = Layout(src / "opt", src / "var" / "update")
    install_guard(layout)
    for v in ("0.2.0", "0.3.0"):
        fake_release(layout, v)
    now = int(time.time() * 1000)
    trial = Trial("0.3.0", "0.2.0", now, now + 3_600_000, max_attempts=3, attempts=attempts)
    write_state(layout, State(current="0.3.0", good=["0.2.0"], trial=trial, us="trial", uv="0.3.0"))
    os.symlink("releases/0.3.0", layout.current)
    card = tmp_path / "mnt"
    card.mkdir()
    script = (
        f"mount -t tmpfs -o size=1m tmpfs {card} && cp -a {src}/. {card}/ && "
        f"(dd if=/dev/zero of={card}/fill bs=4k 2>/dev/null; true) && "
        f"{sys.executable} -I {card}/opt/guard.py --root {card}/opt --state-dir {card}/var/update; "
        f"echo; echo LINK=$(readlink {card}/opt/current)"
    )
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True, text=True, timeout=60, cwd="/",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    link = proc.stdout.rsplit("LINK=", 1)[-1].strip()
    return link, proc.stderr


@needs_mounts
def test_a_crash_looping_trial_on_a_full_card_is_still_rolled_back(tmp_path: Path) -> None:
    """The trial used up its starts and the card is full: the rollback cannot write
    state.json (ENOSPC). Before the fix the guard gave up before the switch, so the
    broken release started again, and again, for as long as the card stayed full."""
    link, err = _guard_on_a_full_card(tmp_path, attempts=3)
    assert link == "releases/0.2.0", err


@needs_mounts
def test_a_trial_whose_starts_cannot_be_counted_goes_back_to_the_good_release(tmp_path: Path) -> None:
    """The card is full at the trial's first start: the guard cannot record the start.
    Before the fix it started the trial release uncounted, so a crash loop was never
    seen (the count stayed at 0 every time); now an uncountable trial is not run."""
    link, err = _guard_on_a_full_card(tmp_path, attempts=0)
    assert link == "releases/0.2.0", err


# -- the device against a hostile hub or network path ----------------------------


def test_metadata_trickled_a_byte_at_a_time_ends_in_a_refusal_not_a_hang(hub: Hub) -> None:
    """The slow-retrieval attack (TUF's threat model): a compromised hub, or a 4G
    operator holding back the hub's TLS records, sends timestamp.json a byte every
    0.2 s. Every read gets a byte before its timeout, so before the fix the update
    child waited for hours ("dl" in health, every other update command answered
    "busy"); now a body slower than ``min_bytes_per_s`` after ``slow_grace_s`` is a
    failure, retried until ``give_up_s``, then an error."""
    from agent.update.fetch import FetchError, HttpsFetcher, TlsIdentity

    cert, key = hub.certs["server"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def trickle(raw: socket.socket) -> None:
        try:
            with ctx.wrap_socket(raw, server_side=True) as s:
                s.recv(4096)
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n")
                while not stop.is_set():
                    s.sendall(b" ")
                    time.sleep(0.2)
        except (OSError, ssl.SSLError):
            pass

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=trickle, args=(raw,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    good_cert, good_key = hub.certs[GOOD]
    fetcher = HttpsFetcher(TlsIdentity(hub.ca, good_cert, good_key), give_up_s=2.0, sleep=lambda _s: None)
    fetcher.min_bytes_per_s, fetcher.slow_grace_s = 100.0, 1.0
    outcome: list[BaseException | bytes] = []

    def get() -> None:
        try:
            outcome.append(fetcher.get(f"https://localhost:{port}/tuf/metadata/timestamp.json", 16_384))
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=get, daemon=True)
    started = time.monotonic()
    t.start()
    t.join(10)
    stop.set()
    listener.close()
    assert not t.is_alive(), "the update child was still reading a trickled timestamp.json after 10 s"
    assert isinstance(outcome[0], FetchError) and "slow" in str(outcome[0]), outcome
    assert time.monotonic() - started < 10
    fetcher.close()
