"""The bulk page in a real browser (Debian's Chromium via Playwright) under the console's own
CSP: an operator selects a village, previews it, runs arm, and the job page's poll shows the
devices' acks arrive until the job is done."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.commands import record_result, send_command
from hub.db import make_engine
from protocol.messages import Ack
from tests.support.console import PASSWORD, County, make_users, now_ms, seed_county, serve_console

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


class SlowDevices:
    """Commands recorded by hub.commands; each device acks 1.5 s later, so the page sees progress."""

    def __init__(self, county: County) -> None:
        self.county = county

    def send(self, device_id: str, op: str, args: dict[str, Any] | None, expires_ms: int | None = None) -> str:
        cid = send_command(self.county.engine, self, device_id, op, args, expires_ms)
        threading.Timer(1.5, self._ack, (device_id, cid)).start()
        return cid

    def _ack(self, device_id: str, cid: str) -> None:
        with self.county.engine.begin() as conn:
            record_result(conn, device_id, Ack(of="cmd", ref_id=cid, ok=True, time_ms=now_ms()), now_ms())

    def publish(self, items: Any, timeout: float = 5.0) -> list[int]:
        return [0 for _ in items]

    def is_connected(self) -> bool:
        return True


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[County, str]]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('bulk') / 'hub.sqlite3'}")
    county = seed_county(engine)
    make_users(engine)
    with serve_console(engine, SlowDevices(county)) as base:
        yield county, base
    engine.dispose()


def test_select_a_village_run_arm_and_watch_it_finish(world: tuple[County, str]) -> None:
    county, base = world
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN").new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("dialog", lambda d: d.accept())  # the "run on N devices?" confirmation
        page.goto(f"{base}/lang?to=zh&next=/login")
        page.fill("input[name=username]", "op1")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.click("nav a[href='/bulk']")
        page.select_option("#bulk-select select[name=village]", label="泉山镇 · 和平村")
        page.click("#bulk-preview")
        expect(page.locator("#bulk-count")).to_contain_text("已选 3 台设备")
        for dev in county.devices["g0101-01"]:
            expect(page.locator("#bulk-devices")).to_contain_text(dev)
        page.select_option("#bulk-action", "arm")
        started = time.monotonic()
        page.click("#bulk-go")
        page.wait_for_url(f"{base}/bulk/jobs/*")
        expect(page.locator("#bulk-state")).to_have_text("已完成", timeout=15_000)
        assert time.monotonic() - started >= 1.5  # it was the poll that showed the acks, not the first render
        expect(page.locator('[data-bulk="ok"]')).to_have_text("3")
        expect(page.locator('[data-bulk="expired"]')).to_have_text("0")
        expect(page.locator("#bulk-results tr")).to_have_count(3)
        expect(page.locator("#bulk-results .bulk-st.ok")).to_have_count(3)
        assert not [e for e in errors if "Content Security Policy" in e], errors
        browser.close()
