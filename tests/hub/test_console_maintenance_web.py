"""The maintenance page in a real browser (Debian's Chromium via Playwright) under the
console's own CSP: an operator sets a village window, sees its devices' alarm badged
on the alarms page, and ends the window early."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.db import make_engine
from hub.db.schema import villages
from hub.maintenance.service import active_windows
from tests.support.console import PASSWORD, County, make_users, now_ms, seed_county, serve_console

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[County, str]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    county = seed_county(engine)
    make_users(engine)
    with serve_console(engine) as base:
        yield county, base
    engine.dispose()


def test_an_operator_sets_a_village_window_and_ends_it(world: tuple[County, str]) -> None:
    county, base = world
    with county.engine.connect() as conn:
        village = conn.execute(select(villages.c.id).where(villages.c.name == "和平村")).scalar_one()
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "op1")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.click("nav >> text=维护")
        page.wait_for_url(f"{base}/maintenance")
        form = page.locator("#window-form")
        form.locator("select[name=scope]").select_option("village")
        form.locator("input[name=target]").fill(str(village))
        form.locator("input[name=reason]").fill("村电网检修")
        form.locator("button").click()
        page.wait_for_url(f"{base}/maintenance?notice=added")
        [w] = active_windows(county.engine, now_ms())
        row = page.locator(f'tr[data-window="{w.id}"]')
        expect(row).to_have_class("on")
        expect(row).to_contain_text("进行中（3 台设备）")
        page.goto(f"{base}/alerts")
        expect(page.locator("#alarms-table tr[data-alarm]").first).to_contain_text("维护中，至")
        page.goto(f"{base}/maintenance")
        page.locator(f'tr[data-window="{w.id}"] button').click()
        page.wait_for_url(f"{base}/maintenance?notice=ended")
        expect(page.locator(f'tr[data-window="{w.id}"]')).to_have_class("over")
        assert active_windows(county.engine, now_ms()) == []
        assert refused == []
        browser.close()
