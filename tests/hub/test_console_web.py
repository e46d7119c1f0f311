"""The console in a real browser (Debian's Chromium via Playwright) against uvicorn
on a free port, a real SQLite database and a real Mosquitto for commands."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.console.tables import console_alarm_acks
from hub.db import make_engine
from hub.db.schema_ops import alarms, commands
from protocol.topics import cmd_topic
from tests.support.browser import SHOTS, chromium, console_with_broker, needs_chromium
from tests.support.console import PASSWORD, County, make_users, seed_county
from tests.support.mqtt_clients import Peer

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[County, str, int]]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('console') / 'hub.sqlite3'}")
    county = seed_county(engine)
    make_users(engine)
    with console_with_broker(engine) as (base, port):
        yield county, base, port
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


def login(browser: object, base: str, user: str = "op1", lang: str = "zh") -> object:
    # bypass_csp only lets Playwright's own wait_for_function predicates run (they use eval);
    # the page's CSP itself is asserted in test_every_page_renders_and_screenshots.
    ctx = browser.new_context(
        viewport={"width": 1440, "height": 900},
        locale="zh-CN",  # type: ignore[attr-defined]
        bypass_csp=True,
    )
    page = ctx.new_page()
    page.goto(f"{base}/lang?to={lang}&next=/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def shot(page: object, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def test_pages_need_login(world: tuple[County, str, int], browser: object) -> None:
    _, base, _ = world
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    page.goto(f"{base}/devices?status=offline")
    assert page.url == f"{base}/login?next=%2Fdevices%3Fstatus%3Doffline"
    assert page.locator("h2").inner_text() == "操作员登录"
    page.fill("input[name=username]", "op1")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert "用户名或密码错误" in page.locator(".error").inner_text()
    shot(page, "login")
    page.fill("input[name=username]", "op1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/devices?status=offline")  # back to where the operator was going
    assert page.locator("tr[data-device]").count() == 1


def test_every_page_renders_and_screenshots(world: tuple[County, str, int], browser: object) -> None:
    county, base, _ = world
    page = login(browser, base, "admin1")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    # Live polls cut off by navigating away are aborted, not failed; anything else is an error.
    page.on(
        "requestfailed", lambda r: errors.append(f"{r.url} {r.failure}") if "ABORTED" not in str(r.failure) else None
    )
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(base) else None)
    resp = page.goto(f"{base}/")
    assert "script-src 'self';" in resp.headers["content-security-policy"]
    page.wait_for_function("document.querySelector('[data-count=online]').textContent === '8'")
    assert page.locator("#ov-cards").inner_text().count("在线") >= 1
    assert page.locator("#ov-worst tr[data-device]").first.get_attribute("data-device") == county.devices["g0201-01"][2]
    overview = shot(page, "overview")
    for name, path in (
        ("devices", "/devices"),
        ("device", f"/devices/{county.devices['g0101-01'][2]}"),
        ("events", "/events"),
        ("alerts", "/alerts"),
        ("groups", "/groups"),
        ("group", "/groups/g0101-02"),
        ("forwarding", "/forwarding"),
        ("users", "/users"),
    ):
        page.goto(base + path)
        assert page.locator("main").inner_text().strip(), name
        shot(page, name)
    assert page.locator("svg.spark").count() == 0  # users page: no charts; device page checked below
    page.goto(f"{base}/devices/{county.devices['g0101-01'][2]}")
    assert page.locator("svg.spark polyline, svg.spark circle").count() >= 1
    page.goto(f"{base}/lang?to=en&next=/devices")
    assert "Online" in page.locator("header").inner_text() or "Devices" in page.locator("nav").inner_text()
    assert page.locator("th").first.inner_text().startswith("Device ID")
    shot(page, "devices-en")
    assert not errors, errors
    assert not external, external  # everything is served locally
    if os.environ.get("XL_UPDATE_DOCS"):  # `XL_UPDATE_DOCS=1 make test` refreshes the README's screenshot
        shutil.copyfile(overview, SHOTS.parents[1] / "docs" / "console.png")


def test_device_going_offline_shows_without_reload(world: tuple[County, str, int], browser: object) -> None:
    county, base, _ = world
    dev = county.devices["g0101-02"][2]
    page = login(browser, base)
    page.goto(f"{base}/devices?sort=id")
    row = page.locator(f"tr[data-device='{dev}'] td.status")
    assert row.inner_text().startswith("在线")
    page.evaluate("window.__noReload = 1")
    county.state(dev, "offline")  # the will, through ingest
    page.wait_for_function(
        f"document.querySelector(\"tr[data-device='{dev}'] td.status\").textContent.includes('离线')", timeout=15_000
    )
    assert page.evaluate("window.__noReload") == 1
    assert page.locator(f"tr[data-device='{dev}']").get_attribute("class") == "row-bad"
    county.state(dev, "online")


def test_new_event_with_snapshot_appears_and_shows_its_box(world: tuple[County, str, int], browser: object) -> None:
    county, base, _ = world
    dev = county.devices["g0201-01"][0]
    page = login(browser, base, "viewer1")
    page.goto(f"{base}/events")
    before = page.locator("tr[data-event]").count()
    page.evaluate("window.__noReload = 1")
    county.event(dev, (7 << 32) + 5, "person", snapshot=True, bbox=(100, 250, 300, 950))
    page.wait_for_function(f"document.querySelectorAll('tr[data-event]').length === {before + 1}", timeout=15_000)
    assert page.evaluate("window.__noReload") == 1
    first = page.locator("tr[data-event]").first
    assert dev in first.inner_text()
    img = first.locator("td.thumb img")
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 320", arg=img.element_handle())
    img.click()
    page.wait_for_selector("svg.snapsvg rect.bbox")
    rect = page.locator("rect.bbox")
    # 100‰ of 320 px = 32, 250‰ of 180 px = 45; 200‰ wide = 64, 700‰ high = 126.
    assert [float(rect.get_attribute(a) or 0) for a in ("x", "y", "width", "height")] == [32, 45, 64, 126]
    assert page.evaluate("() => document.querySelector('svg.snapsvg image').getBBox().width") == 320
    shot(page, "event")


def test_acknowledge_alarm(world: tuple[County, str, int], browser: object) -> None:
    county, base, _ = world
    with county.engine.connect() as conn:
        alarm_id = conn.execute(select(alarms.c.id).where(alarms.c.kind == "camera_error")).scalar_one()
    viewer = login(browser, base, "viewer1")
    viewer.goto(f"{base}/alerts")
    assert viewer.locator(f"tr[data-alarm='{alarm_id}'] button").count() == 0  # viewers cannot
    page = login(browser, base, "op1")
    page.goto(f"{base}/alerts")
    # The header counters are filled by the page's first live poll; until then they show "–".
    page.wait_for_function(r"/^\d+$/.test(document.querySelector('[data-count=unacked_alarms]').textContent.trim())")
    unacked = int(page.locator("[data-count=unacked_alarms]").inner_text())
    # A POST without the session's CSRF token is refused, even with a valid session cookie.
    resp = page.request.post(f"{base}/alarms/{alarm_id}/ack", form={"back": "/alerts"})
    assert resp.status == 403
    page.locator(f"tr[data-alarm='{alarm_id}'] button").click()
    page.wait_for_url(f"{base}/alerts?notice=acked")
    assert "op1 已确认" in page.locator(f"tr[data-alarm='{alarm_id}'] td.ack").inner_text()
    page.wait_for_function(f"document.querySelector('[data-count=unacked_alarms]').textContent === '{unacked - 1}'")
    with county.engine.connect() as conn:
        assert (
            conn.execute(
                select(console_alarm_acks.c.user_name).where(console_alarm_acks.c.alarm_id == alarm_id)
            ).scalar_one()
            == "op1"
        )


def test_command_is_published_and_its_ack_shows_live(world: tuple[County, str, int], browser: object) -> None:
    county, base, port = world
    dev = county.devices["g0101-01"][1]
    device = Peer(port, f"dev-{uuid.uuid4().hex[:6]}")
    device.subscribe(cmd_topic(dev))
    page = login(browser, base, "op1")
    page.goto(f"{base}/devices/{dev}")
    page.click("button[data-op=identify]")
    page.wait_for_url(lambda url: "notice=cmd_sent" in url)
    topic, payload, _ = device.get(10)
    cmd = json.loads(payload)
    assert topic == cmd_topic(dev) and cmd["op"] == "identify" and cmd["a"] == {"s": 30}
    row = page.locator(f"tr[data-command='{cmd['id']}'] td.result")
    assert "等待回执" in row.inner_text()
    county.ack_command(dev, cmd["id"], ok=True)  # the device's ack, through ingest
    page.wait_for_function(
        f"document.querySelector(\"tr[data-command='{cmd['id']}'] td.result\").textContent.includes('成功')",
        timeout=15_000,
    )
    with county.engine.connect() as conn:
        assert conn.execute(select(commands.c.ok).where(commands.c.id == cmd["id"])).scalar_one() is True
    device.close()


def test_sql_injection_through_page_filters(world: tuple[County, str, int], browser: object) -> None:
    _, base, _ = world
    page = login(browser, base, "viewer1")
    page.goto(f"{base}/devices")
    total = page.locator("tr[data-device]").count()
    page.fill("input[name=q]", "' OR '1'='1' --")
    page.click("form.filters button")
    assert page.locator("tr[data-device]").count() == 0
    page.goto(f"{base}/devices?village=1%20OR%201%3D1&sort=id%3BDROP%20TABLE%20devices")
    assert page.locator("tr[data-device]").count() == total
    page.goto(f"{base}/events?kind=person%27%20OR%20%271%27%3D%271")
    assert page.locator("tr[data-event]").count() >= 1
    page.goto(f"{base}/devices")
    assert page.locator("tr[data-device]").count() == total
