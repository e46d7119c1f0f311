"""The console's rollout pages in headless Chromium against a real console
server and SQLite: per cohort and per village counts, failures with their
reasons, and pause/abort buttons only for operators, audited twice (the
rollout's log and the console's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from hub.console.tables import console_audit
from hub.db import make_engine
from hub.rollout import store
from hub.rollout.engine import RolloutEngine
from hub.rollout.tables import rollout_audit
from tests.support.console import PASSWORD, make_users, now_ms, serve_console
from tests.support.rollout import NEW, Clock, Recorder, make_villages, report

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
REASON = "health gate: pipeline never ran within 600 s"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Engine, int, str]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    fleet = make_villages(engine, per_village=5)
    make_users(engine)
    clock = Clock(now_ms())
    rid = store.create(engine, store.NewRollout(NEW, ["village:和平村", "all"], 60, 40), "zhang", clock())
    eng = RolloutEngine(engine, Recorder(), timezone="Asia/Shanghai", resend_after_s=3600, clock=clock)
    eng.tick()
    peace = fleet["和平村"]
    for d in peace[:3]:
        report(engine, d, clock(), ver=NEW, update_state="ok", update_version=NEW, update_rollout=str(rid))
    report(
        engine, peace[3], clock(), update_state="rb", update_version=NEW, update_error=REASON, update_rollout=str(rid)
    )
    eng.tick()  # 3 of 5 committed (60 %), 1 failed (20 % <= 40 %): the second cohort starts
    with serve_console(engine) as base:
        yield engine, rid, base
    engine.dispose()


def _login(browser: Any, base: str, user: str) -> Any:
    page = browser.new_context(locale="zh-CN").new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def test_rollout_pages_and_buttons(world: tuple[Engine, int, str]) -> None:
    engine, rid, base = world
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        viewer = _login(browser, base, "viewer1")
        viewer.click("nav a[href='/rollouts']")
        assert viewer.locator(f"tr[data-rollout='{rid}']").inner_text().split("\t")[:4] == [
            str(rid),
            NEW,
            "进行中",
            "3 / 10",
        ]
        viewer.click(f"tr[data-rollout='{rid}'] a")
        cohort = viewer.locator("tr[data-cohort='0']").inner_text()
        assert "village:和平村" in cohort and "3 (60%)" in cohort and "1 (20%)" in cohort
        assert "0.2.0: 2" in cohort and "0.3.0: 3" in cohort  # the versions the cohort runs
        assert "已下发 5" in viewer.locator("tr[data-cohort='1']").inner_text()  # the second cohort started
        assert "3 (60%)" in viewer.locator("tr[data-village='和平村']").inner_text()
        assert "已下发 5" in viewer.locator("tr[data-village='红星村']").inner_text()
        assert REASON in viewer.locator("#ro-failures").inner_text()
        assert viewer.locator("#ro-actions").count() == 0  # a viewer gets no buttons
        viewer.context.close()

        op = _login(browser, base, "op1")
        op.goto(f"{base}/rollouts/{rid}")
        op.click("button[data-action=pause]")
        op.wait_for_url(f"{base}/rollouts/{rid}?did=pause")
        assert op.locator("#ro-status").inner_text() == "已暂停"
        assert op.locator("button[data-action=resume]").count() == 1
        op.click("button[data-action=abort]")
        op.wait_for_url(f"{base}/rollouts/{rid}?did=abort")
        assert op.locator("#ro-status").inner_text() == "已终止"
        assert op.locator("#ro-actions button").count() == 0
        assert "op1" in op.locator("#ro-audit").inner_text()
        browser.close()
    with engine.connect() as conn:
        mine = conn.execute(
            select(rollout_audit.c.actor, rollout_audit.c.action).where(rollout_audit.c.actor == "op1")
        ).all()
        console = conn.execute(
            select(console_audit.c.action, console_audit.c.target).where(console_audit.c.action.like("rollout_%"))
        ).all()
    assert [tuple(r) for r in mine] == [("op1", "pause"), ("op1", "abort")]
    assert [tuple(r) for r in console] == [("rollout_pause", str(rid)), ("rollout_abort", str(rid))]
