"""The devices' mTLS server as ``xl-hub run`` wires it from the config
(hub.service.ota_extensions): it runs when updates or clips are on, and serves
only what is on. Clips without OTA take uploads and serve no TUF path; OTA
without clips serves no ``/clips/``. Real TLS and registry checks either way:
a revoked device is refused, a device touches only its own clips. SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import Engine, select

from hub.clips.tables import clips
from hub.config import HubConfig, parse_config
from hub.core.forwarding import MemoryForwardSink
from hub.service import Extension, Hub, ota_extensions
from hub.updates.server import UpdateServer
from protocol.ids import make_device_id
from tests.support.update_hub import registered_fleet

GOOD, OTHER, REVOKED = (str(make_device_id(1, n)) for n in (1, 2, 3))
TIMESTAMP = "/tuf/metadata/timestamp.json"


class Publisher:
    def publish(self, items: Sequence[tuple[str, bytes, int, Any]], timeout: float = 5.0) -> list[int]:
        return [0 for _ in items]

    def is_connected(self) -> bool:
        return True


@dataclass
class County:
    tmp: Path
    db_url: str
    engine: Engine
    ca: Path
    certs: dict[str, tuple[Path, Path]]


@pytest.fixture
def county(db_url: str, tmp_path: Path) -> Iterator[County]:
    engine, certs = registered_fleet(db_url, tmp_path, (GOOD, OTHER, REVOKED), revoked=(REVOKED,))
    repo = tmp_path / "repo"
    (repo / "metadata").mkdir(parents=True)
    (repo / "metadata" / "timestamp.json").write_text('{"signed": {}}')
    (tmp_path / "keys").mkdir()
    yield County(tmp_path, db_url, engine, tmp_path / "ca.crt", certs)
    engine.dispose()


def config(c: County, *, updates: bool, clips_on: bool) -> HubConfig:
    server, key = c.certs["server"]
    section: dict[str, Any] = {"enabled": updates, "host": "127.0.0.1", "port": 0}
    section.update(ca=str(c.ca), cert=str(server), key=str(key))
    if updates:
        section.update(repo=str(c.tmp / "repo"), keys_dir=str(c.tmp / "keys"))
    return parse_config(
        {
            "database": {"url": c.db_url},
            "updates": section,
            "rollout": {"enabled": False},
            "clips": {"enabled": clips_on, "path": str(c.tmp / "clips")},
        }
    )


@pytest.fixture
def started(county: County, request: pytest.FixtureRequest) -> Iterator[UpdateServer]:
    """The server (and the clip parts) ``ota_extensions`` makes for ``request.param`` = (updates, clips)."""
    updates, clips_on = request.param
    hub = SimpleNamespace(engine=county.engine, sink=MemoryForwardSink(), worker=SimpleNamespace(transport=Publisher()))
    parts = ota_extensions(config(county, updates=updates, clips_on=clips_on), cast(Hub, hub))
    servers = [p for p in parts if isinstance(p, UpdateServer)]
    assert len(servers) == 1
    running: list[Extension] = [p for p in parts if type(p).__name__ != "OnlineSigner"]  # it needs real keys
    for p in running:
        p.start()
    yield servers[0]
    for p in reversed(running):
        p.stop()


def call(
    county: County, server: UpdateServer, method: str, path: str, who: str = GOOD, body: bytes | None = None
) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(county.ca))
    ctx.load_cert_chain(*map(str, county.certs[who]))
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)
    headers = {}
    if body is not None:
        headers = {
            "Upload-Offset": "0",
            "Upload-Length": str(len(body)),
            "Clip-Sha256": hashlib.sha256(body).hexdigest(),
        }
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("started", [(False, True)], indirect=True)
def test_clips_without_updates_take_uploads_and_serve_no_tuf(county: County, started: UpdateServer) -> None:
    data = os.urandom(4000)
    assert call(county, started, "HEAD", f"/clips/{GOOD}/7")[0] == 404  # nothing yet
    assert call(county, started, "PATCH", f"/clips/{GOOD}/7", body=data)[0] == 204
    assert call(county, started, "HEAD", f"/clips/{GOOD}/7")[0] == 200
    with county.engine.connect() as conn:
        assert conn.execute(select(clips.c.device_id, clips.c.event_id, clips.c.bytes)).all() == [(GOOD, 7, 4000)]
    assert (county.tmp / "clips" / GOOD / "7.mp4").read_bytes() == data
    # No repository: the TUF paths are not there, though the file is on disk.
    assert call(county, started, "GET", TIMESTAMP) == (404, b"nothing is served here\n")
    assert call(county, started, "HEAD", TIMESTAMP)[0] == 404
    # The same checks as with updates: a revoked certificate, another device's path.
    assert call(county, started, "PATCH", f"/clips/{REVOKED}/7", REVOKED, body=data)[0] == 403
    assert call(county, started, "PATCH", f"/clips/{OTHER}/8", GOOD, body=data)[0] == 403
    assert call(county, started, "HEAD", f"/clips/{GOOD}/7", OTHER)[0] == 403
    with county.engine.connect() as conn:
        assert len(conn.execute(select(clips.c.event_id)).all()) == 1


@pytest.mark.parametrize("started", [(True, False)], indirect=True)
def test_updates_without_clips_serve_no_clips(county: County, started: UpdateServer) -> None:
    assert call(county, started, "GET", TIMESTAMP) == (200, b'{"signed": {}}')
    assert call(county, started, "HEAD", f"/clips/{GOOD}/7")[0] == 404
    assert call(county, started, "PATCH", f"/clips/{GOOD}/7", body=b"x" * 100)[0] == 404
    assert call(county, started, "GET", TIMESTAMP, REVOKED)[0] == 403
    assert not (county.tmp / "clips").exists()


@pytest.mark.parametrize("started", [(True, True)], indirect=True)
def test_both_on_serve_both(county: County, started: UpdateServer) -> None:
    assert call(county, started, "GET", TIMESTAMP)[0] == 200
    assert call(county, started, "PATCH", f"/clips/{GOOD}/9", body=b"y" * 100)[0] == 204


def test_neither_on_starts_no_server(county: County) -> None:
    hub = SimpleNamespace(engine=county.engine, sink=MemoryForwardSink(), worker=SimpleNamespace(transport=Publisher()))
    assert ota_extensions(config(county, updates=False, clips_on=False), cast(Hub, hub)) == []
