"""The console in a real browser: Debian's Chromium through Playwright, and a console whose
commands go to a real Mosquitto. Playwright is imported only when a browser is launched, so a
module using these constants still collects (and skips) on a machine without it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from hub.commands import PahoPublisher
from hub.config import MqttConfig
from hub.console.server import MqttPublisher
from hub.mqtt.client import make_client
from tests.support.broker import run_broker
from tests.support.console import serve_console
from tests.support.wait import wait_for

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@contextmanager
def chromium(args: list[str] = ARGS) -> Iterator[Any]:
    """A headless Chromium for the length of the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def console_with_broker(engine: Engine) -> Iterator[tuple[str, int]]:
    """The console on a free port, its commands published on a fresh Mosquitto: (base URL, broker port)."""
    with run_broker() as broker:
        client = make_client(MqttConfig(host="127.0.0.1", port=broker.port), f"console-{uuid.uuid4().hex[:6]}")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        try:
            wait_for(client.is_connected, 5, "console MQTT connection")
            with serve_console(engine, MqttPublisher(engine, PahoPublisher(client))) as base:
                yield base, broker.port
        finally:
            client.disconnect()
            client.loop_stop()
