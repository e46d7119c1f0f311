"""Signed, expiring clip links (docs/clips.md, issue 18): the webhook's ``clips: link`` sends a URL the
receiver can fetch without a console login, and nothing else.

Real HTTP against the console served by uvicorn, on SQLite and PostgreSQL (the audit rows are in the db):
a signed link fetches the MP4 (and a Range request gets 206), an expired, tampered or moved one is 403,
a missing clip with a valid signature is 404 only after the signature is checked, every request made
with a link is audited, the webhook's body carries a link that works, and the config names its keys."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import Engine, select

from hub.clips.files import files_of
from hub.clips.tables import clips
from hub.config import ConfigError, parse_config
from hub.config_console import ConsoleSettings
from hub.console import auth
from hub.console.clip_source import HubClips
from hub.console.context import ConsoleContext
from hub.console.server import ConsoleServer, link_key
from hub.console.tables import console_audit
from hub.core.items import ClipItem
from hub.db import make_engine
from hub.forward import ManualClock, WebhookConfig, WebhookSink
from hub.forward.clip_links import clip_path, signature, signed_clip_link
from hub.forward.plugin import clip_link_key
from sim.mock_webhook import MockWebhook
from sim.ports import free_port, wait_port
from tests.support.clip_files import make_mp4, sha256
from tests.support.console import PASSWORD, make_users, seed_county

KEY = b"clip-link-signing-key-32-bytes!!"
HOOK_SECRET = b"clip-webhook-shared-secret-32-by"
A, B = 4101, 4102  # two stored clips of one camera
GONE = 4199  # never stored


class NoPublisher:
    def is_connected(self) -> bool:
        return False

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("serving a clip publishes nothing")


@dataclass
class Console:
    engine: Engine
    base: str
    device: str
    mp4: dict[int, bytes]
    paths: dict[int, Path]

    def link(self, event_id: int, expires_s: int | None = None, device: str | None = None) -> str:
        exp = int(time.time()) + 3600 if expires_s is None else expires_s
        return signed_clip_link(self.base, KEY, device or self.device, event_id, exp)

    def audit(self) -> list[Any]:
        with self.engine.connect() as conn:
            q = select(console_audit).where(console_audit.c.action == "clip_link").order_by(console_audit.c.id)
            return list(conn.execute(q).mappings())


def store(engine: Engine, root: Path, device: str, event_id: int, mp4: bytes) -> Path:
    f = files_of(root, device, event_id)
    f.final.parent.mkdir(parents=True, exist_ok=True)
    f.final.write_bytes(mp4)
    with engine.begin() as conn:
        conn.execute(
            clips.insert().values(
                device_id=device, event_id=event_id, bytes=len(mp4), sha256=sha256(mp4), start_ms=1_000,
                end_ms=7_000, received_ms=int(time.time() * 1000), detections=[],
            )
        )  # fmt: skip
    return f.final


@pytest.fixture
def console(db_url: str, tmp_path: Path) -> Iterator[Console]:
    engine = make_engine(db_url)
    county = seed_county(engine)
    make_users(engine)
    device = county.devices["g0101-01"][0]
    root = tmp_path / "clips"
    mp4 = {A: make_mp4(tmp_path / "a.mp4", 2.0), B: make_mp4(tmp_path / "b.mp4", 3.0)}
    assert mp4[A] != mp4[B]
    paths = {e: store(engine, root, device, e, data) for e, data in mp4.items()}
    settings = ConsoleSettings(port=free_port(), refresh_s=2)
    ctx = ConsoleContext(engine, settings, None, HubClips(engine, root, NoPublisher()), clip_link_key=KEY)
    server = ConsoleServer(ctx)
    server.start()
    wait_port(settings.port)
    try:
        yield Console(engine, f"http://127.0.0.1:{settings.port}", device, mp4, paths)
    finally:
        server.stop()
        engine.dispose()


def get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, follow_redirects=False, timeout=10)


def test_a_signed_link_fetches_its_clip_with_range_and_is_audited(console: Console) -> None:
    url = console.link(A)
    resp = get(url)
    assert resp.status_code == 200 and resp.content == console.mp4[A]
    assert resp.headers["content-type"] == "video/mp4" and resp.headers["accept-ranges"] == "bytes"
    assert resp.headers["referrer-policy"] == "no-referrer"
    part = get(url, Range="bytes=100-1099")
    assert part.status_code == 206 and part.content == console.mp4[A][100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(console.mp4[A])}"
    tail = get(url, Range="bytes=-500")
    assert tail.status_code == 206 and tail.content == console.mp4[A][-500:]

    rows = console.audit()
    assert len(rows) == 3 and {r["user_name"] for r in rows} == {"signed link"}
    assert {r["target"] for r in rows} == {console.device}
    assert rows[0]["detail"].startswith(f"event {A} HTTP 200 bytes=all from 127.0.0.1 exp=")
    assert rows[1]["detail"].startswith(f"event {A} HTTP 206 bytes=bytes=100-1099 from 127.0.0.1")
    assert all(abs(r["at_ms"] - time.time() * 1000) < 60_000 for r in rows)

    # Without a link and without a login: the login page, as before.
    bare = get(f"{console.base}{clip_path(console.device, A)}")
    assert bare.status_code == 303 and bare.headers["location"].startswith("/login")


def test_expired_tampered_or_moved_links_are_403_whether_or_not_the_clip_exists(console: Console) -> None:
    now = int(time.time())
    url = console.link(A)
    q = parse_qs(urlsplit(url).query)
    exp, sig = q["exp"][0], q["sig"][0]
    path_a = clip_path(console.device, A)
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    refused = {
        "expired": console.link(A, expires_s=now - 1),
        "bad signature": f"{console.base}{path_a}?exp={exp}&sig={flipped}",
        "extended": f"{console.base}{path_a}?exp={int(exp) + 86400}&sig={sig}",
        "moved to clip B": f"{console.base}{clip_path(console.device, B)}?exp={exp}&sig={sig}",
        "moved to another camera": f"{console.base}/clips/{'9' * 20}/{A}.mp4?exp={exp}&sig={sig}",
        "no signature": f"{console.base}{path_a}?exp={exp}",
        "no expiry": f"{console.base}{path_a}?sig={sig}",
        "short signature": f"{console.base}{path_a}?exp={exp}&sig={sig[:32]}",
        "signed with another key": signed_clip_link(console.base, b"x" * 32, console.device, A, now + 60),
        "missing clip, bad signature": f"{console.base}{clip_path(console.device, GONE)}?exp={exp}&sig={sig}",
        "not a device id": f"{console.base}/clips/nope/{A}.mp4?exp={exp}&sig={sig}",
    }
    for why, bad in refused.items():
        resp = get(bad)
        assert resp.status_code == 403, why
        assert resp.content == b"", why  # the same empty 403 either way: nothing says whether the clip exists
    # A link for clip A never gets clip B's bytes, and a signature over A's path is not B's.
    assert signature(KEY, clip_path(console.device, A), int(exp)) != signature(
        KEY, clip_path(console.device, B), int(exp)
    )
    assert console.audit() == []  # refused requests are logged, not written to the audit

    # A valid signature for a clip that is not (or no longer) at the hub: 404, after the check.
    gone = get(console.link(GONE))
    assert gone.status_code == 404
    console.paths[B].unlink()  # retention took it
    assert get(console.link(B)).status_code == 404
    assert [r["detail"].split(" from ")[0] for r in console.audit()] == [
        f"event {GONE} HTTP 404 bytes=all",
        f"event {B} HTTP 404 bytes=all",
    ]


def test_with_a_login_the_clip_route_works_as_before_link_or_not(console: Console) -> None:
    token = auth.login(console.engine, "viewer1", PASSWORD, "127.0.0.1", session_s=3600)
    assert token is not None
    cookies = {auth.SESSION_COOKIE: token}
    path = clip_path(console.device, A)
    for url in (f"{console.base}{path}", console.link(A, expires_s=1)):  # an expired link does not stop a login
        resp = httpx.get(url, cookies=cookies, headers={"Range": "bytes=0-99"}, timeout=10)
        assert resp.status_code == 206 and resp.content == console.mp4[A][:100]
    assert console.audit() == []  # an operator's viewing is not a link's


def test_the_webhook_body_carries_a_link_that_fetches_the_clip_until_it_expires(console: Console) -> None:
    clock = ManualClock(int(time.time() * 1000))
    hook = MockWebhook(HOOK_SECRET, now_s=lambda: clock.now_ms() / 1000)
    config = WebhookConfig(
        hook.start(), HOOK_SECRET, clips="link", clip_base_url=console.base + "/", clip_link_secret=KEY
    )
    assert config.clip_link_s == 7 * 86400 and "clip-link" not in repr(config)
    sink = WebhookSink(config, clock)
    try:
        data = console.mp4[A]
        item = ClipItem(device_id=console.device, event_id=A, kind="person", path=str(console.paths[A]),
                        size=len(data), sha256=sha256(data), start_ms=1_000, end_ms=7_000, time_ms=1_000)  # fmt: skip
        sink.send(item)
    finally:
        sink.close()
        hook.stop()
    (body,) = hook.bodies
    clip = body["clip"]
    sent_s = clock.now_ms() // 1000
    assert clip["url_expires_s"] == sent_s + 7 * 86400
    assert clip["url"].startswith(f"{console.base}/clips/{console.device}/{A}.mp4?exp={clip['url_expires_s']}&sig=")
    resp = get(clip["url"])
    assert resp.status_code == 200 and resp.content == data and sha256(resp.content) == clip["sha256"]
    # The same link made a week and a second ago has expired.
    old = WebhookConfig("http://127.0.0.1:9/x", HOOK_SECRET, clips="link", clip_base_url=console.base,
                        clip_link_secret=KEY)  # fmt: skip
    from hub.forward.webhook import clip_link

    stale, _exp = clip_link(old, console.device, A, int(time.time()) - 7 * 86400 - 1)
    assert get(stale).status_code == 403


def _raw(tmp_path: Path, **hook: Any) -> dict[str, Any]:
    webhook = {"url": "https://zz.example/xl", "secret": HOOK_SECRET.decode(), "clips": "link",
               "clip_base_url": "https://hub.example:8080", **hook}  # fmt: skip
    return {"database": {"url": f"sqlite:///{tmp_path / 'h.sqlite3'}"}, "forward": {"webhook": webhook}}


def test_clips_link_needs_the_link_key_and_the_errors_name_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(_raw(tmp_path))
    assert "forward.webhook.clip_link_secret_file: found none" in str(exc.value).lower() or (
        "forward.webhook.clip_link_secret_file" in str(exc.value) and "clip_link_secret inline" in str(exc.value)
    )
    with pytest.raises(ConfigError, match=r"forward\.webhook\.clip_link_secret_file: .*a readable file"):
        parse_config(_raw(tmp_path, clip_link_secret_file=str(tmp_path / "absent.key")))
    with pytest.raises(ConfigError, match=r"forward\.webhook\.clip_link_secret: .*at least 16 bytes"):
        parse_config(_raw(tmp_path, clip_link_secret="short"))
    with pytest.raises(ConfigError, match=r"forward\.webhook\.clip_link_days"):
        parse_config(_raw(tmp_path, clip_link_secret=KEY.decode(), clip_link_days=0))
    with pytest.raises(ConfigError, match=r"forward\.webhook\.clip_link_days"):
        parse_config(_raw(tmp_path, clip_link_secret=KEY.decode(), clip_link_days=31))

    # The receiver holds the webhook's secret: the same key for links is refused, naming the key.
    same = parse_config(_raw(tmp_path, clip_link_secret=HOOK_SECRET.decode()))
    with pytest.raises(ConfigError, match=r"forward\.webhook\.clip_link_secret_file: .*other than the webhook"):
        clip_link_key(same.plugins["forward"])

    key_file = tmp_path / "clip-link.secret"
    key_file.write_text(KEY.decode() + "\n", encoding="utf-8")
    good = parse_config(_raw(tmp_path, clip_link_secret_file=str(key_file), clip_link_days=2))
    assert clip_link_key(good.plugins["forward"]) == KEY
    assert link_key(good) == KEY  # the console checks links with the key the webhook signs them with
    from hub.forward.plugin import build_sinks

    (sink,) = build_sinks(good.plugins["forward"])
    assert isinstance(sink, WebhookSink) and sink.config.clip_link_s == 2 * 86400
    sink.close()
    # bytes or off: no key needed, and the console accepts no links.
    plain = parse_config(_raw(tmp_path, clips="bytes"))
    assert clip_link_key(plain.plugins["forward"]) is None and link_key(plain) is None
    with pytest.raises(ValueError, match="clip_link_secret"):
        WebhookConfig("https://x.example/", HOOK_SECRET, clips="link", clip_base_url="https://hub.example")
