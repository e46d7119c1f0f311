"""The hub's TUF repository server with real mTLS (a throwaway county PKI),
a real registry on SQLite and PostgreSQL: Range semantics, refusals (revoked,
unregistered, unknown CA, no certificate, traversal, folders), bytes counted
per device; and the online signer re-signing a real repository's timestamp."""

from __future__ import annotations

import datetime as dt
import http.client
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.updates.online import OnlineSigner, xlrelease_signing
from hub.updates.tables import update_downloads
from protocol.ids import make_device_id
from tests.support.update_hub import OTHER_CA, UpdateHub, start_update_hub

GOOD, REVOKED, STRANGER = (str(make_device_id(1, n)) for n in (1, 2, 3))
BODY = bytes(range(256)) * 40  # 10,240 bytes


World = UpdateHub


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    hub = start_update_hub(db_url, tmp_path, (GOOD, REVOKED), revoked=(REVOKED,), unregistered=(STRANGER,),
                           other_ca_for=GOOD)  # fmt: skip
    repo = hub.repo
    (repo / "targets" / "agent").mkdir(parents=True)
    (repo / "metadata" / "timestamp.json").write_text('{"signed": {}}')
    (repo / "targets" / "agent" / "abc.wheel.whl").write_bytes(BODY)
    (tmp_path / "secret.txt").write_text("outside the repository")
    (repo / "targets" / "escape").symlink_to(tmp_path / "secret.txt")
    yield hub
    hub.stop()


def _client(w: World, who: str | None) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", w.server.port, context=w.context(who), timeout=10)


def _get(
    w: World, path: str, who: str | None = GOOD, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = _client(w, who)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


WHEEL = "/tuf/targets/agent/abc.wheel.whl"


def test_whole_files_and_ranges(world: World) -> None:
    status, h, body = _get(world, WHEEL)
    assert (status, body, h["accept-ranges"], h["content-length"]) == (200, BODY, "bytes", "10240")
    assert h["content-type"] == "application/octet-stream"
    status, h, body = _get(world, WHEEL, Range="bytes=100-199")
    assert (status, h["content-range"], body) == (206, "bytes 100-199/10240", BODY[100:200])
    status, h, body = _get(world, WHEEL, Range="bytes=10000-")  # a resumed download
    assert (status, h["content-range"], body) == (206, "bytes 10000-10239/10240", BODY[10000:])
    status, h, body = _get(world, WHEEL, Range="bytes=-40")
    assert (status, h["content-range"], body) == (206, "bytes 10200-10239/10240", BODY[-40:])
    status, h, body = _get(world, WHEEL, Range="bytes=10000-99999")  # the end is clamped
    assert (status, h["content-range"], len(body)) == (206, "bytes 10000-10239/10240", 240)
    status, h, body = _get(world, WHEEL, Range="bytes=10240-")
    assert (status, h["content-range"]) == (416, "bytes */10240")
    assert b"the file has 10240 bytes" in body
    for ignored in ("bytes=0-1,5-9", "bytes=9-3", "items=0-4", "bytes=-"):
        assert _get(world, WHEEL, Range=ignored)[0] == 200, ignored
    status, h, _ = _get(world, WHEEL, Range="bytes=0-9")
    etag = h["etag"]
    assert _get(world, WHEEL, Range="bytes=0-9", **{"If-Range": etag})[0] == 206
    assert _get(world, WHEEL, Range="bytes=0-9", **{"If-Range": '"changed"'})[0] == 200
    status, h, body = _get(world, WHEEL, method="HEAD")
    assert (status, h["content-length"], body) == (200, "10240", b"")
    status, h, body = _get(world, "/tuf/metadata/timestamp.json")
    assert (status, h["content-type"], body) == (200, "application/json", b'{"signed": {}}')


def test_keep_alive_serves_several_files_over_one_handshake(world: World) -> None:
    conn = _client(world, GOOD)
    try:
        for path in ("/tuf/metadata/timestamp.json", WHEEL, "/tuf/metadata/timestamp.json"):
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read()
    finally:
        conn.close()


def test_refusals(world: World) -> None:
    status, _, body = _get(world, WHEEL, REVOKED)
    assert (status, body) == (403, f"device {REVOKED} is revoked\n".encode())
    status, _, body = _get(world, WHEEL, STRANGER)
    assert (status, body) == (403, f"device {STRANGER} is not registered\n".encode())
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(world, WHEEL, OTHER_CA)  # a certificate from another CA: the handshake fails
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(world, WHEEL, None)  # no certificate at all
    for path in (
        "/tuf/../secret.txt",
        "/tuf/%2e%2e/secret.txt",
        "/tuf/metadata/..%2f..%2fsecret.txt",
        "/tuf/metadata//timestamp.json",
        "/tuf/metadata/%00",
        "/tuf/metadata\\..\\..\\secret.txt",
        "/tuf/targets/escape",  # a symlink out of the repository
    ):
        status, _, body = _get(world, path)
        assert status == 400 and body.startswith(b"bad path"), path
    # Outside /tuf/ and every mounted route (/clips/ unless clips are on): nothing is there.
    for path in ("/secret.txt", "/clips/x", "/tuf"):
        assert _get(world, path)[:3:2] == (404, b"nothing is served here\n"), path
    for path in ("/tuf/targets", "/tuf/targets/agent", "/tuf/metadata/1.root.json"):
        assert _get(world, path)[0] == 404, path  # folders are never listed
    assert _get(world, WHEEL)[0] == 200  # the server is still fine after all that
    assert world.server.handshake_failures == 2


def test_bytes_are_counted_per_device(world: World) -> None:
    _get(world, WHEEL)
    _get(world, WHEEL, Range="bytes=10000-")
    _get(world, WHEEL, method="HEAD")
    _get(world, "/tuf/nothing")
    _get(world, WHEEL, REVOKED)
    assert world.server.counter.flush() == 2
    with world.engine.connect() as conn:
        rows = {r.device_id: r for r in conn.execute(select(update_downloads))}
    assert (rows[GOOD].bytes, rows[GOOD].requests, rows[GOOD].refused) == (10240 + 240, 4, 1)
    assert (rows[REVOKED].bytes, rows[REVOKED].requests, rows[REVOKED].refused) == (0, 1, 1)
    _get(world, WHEEL, Range="bytes=0-9")
    world.server.counter.flush()
    with world.engine.connect() as conn:
        got = conn.execute(select(update_downloads.c.bytes).where(update_downloads.c.device_id == GOOD)).scalar()
    assert got == 10240 + 240 + 10  # added to, not replaced


def test_the_online_signer_re_signs_the_timestamp(tmp_path: Path) -> None:
    from tuf.api.metadata import Metadata, Root, Timestamp

    from provisioning.release.repo import TufDir, init_repository
    from xlrelease.store import Repository

    tuf = TufDir(tmp_path / "tuf")
    repo = init_repository(tuf, Repository(tmp_path / "repo"))
    before = Metadata[Timestamp].from_file(str(repo.metadata_dir / "timestamp.json"))
    now = [0.0]
    signer = OnlineSigner(repo.path, tuf.online, refresh_s=21600, signing=xlrelease_signing(), clock=lambda: now[0])
    assert signer.tick() == "timestamp"  # at start: a hub that was off must not serve a stale one
    assert signer.tick() is None
    now[0] += 21600
    assert signer.tick() == "timestamp"
    after = Metadata[Timestamp].from_file(str(repo.metadata_dir / "timestamp.json"))
    assert after.signed.version > before.signed.version
    assert after.signed.expires > dt.datetime.now(dt.UTC) + dt.timedelta(hours=23)
    root = Metadata[Root].from_file(str(repo.metadata_dir / "root.json"))
    root.signed.verify_delegate("timestamp", after.signed_bytes, after.signatures)  # by the key root trusts
    (tuf.online / "timestamp.pem").unlink()
    now[0] += 21600
    assert signer.tick() is None and signer.last_error is not None and "timestamp.pem" in signer.last_error
