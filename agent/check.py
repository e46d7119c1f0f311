"""``xl-agent check``: the installer's doorstep test, one PASS/WARN/FAIL line per part.

Config, certificates, camera (open and read one frame), person model (load it
and run it once), broker (TLS handshake with the device certificate, then
CONNACK). Each step has a time limit, so a dead camera or a black-holed link
gives a FAIL line, not a hang.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from agent.capture import source_factory
from agent.certs import check_tls_files
from agent.config import AgentConfig, ConfigError, load

STEP_TIMEOUT_S = 15.0


@dataclass
class Result:
    name: str
    status: str  # PASS, WARN, FAIL, SKIP
    detail: str


def _within(fn: Callable[[], str], timeout: float) -> str:
    """Run fn on a helper thread; a TimeoutError if it does not finish in time."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["ok"] = fn()
        except BaseException as exc:
            box["err"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:.0f} s")
    if "err" in box:
        raise box["err"]
    return str(box["ok"])


def check_camera(cfg: AgentConfig) -> str:
    source = source_factory(cfg.camera)()
    source.open()
    try:
        frame = source.read()
        if frame is None:
            raise RuntimeError("the source gave no frame")
        return f"{cfg.camera.source}: frame {frame.width}x{frame.height}"
    finally:
        source.close()


def check_model(cfg: AgentConfig) -> str:
    import numpy as np

    from agent.vision.replay import build_detector

    if cfg.vision is None or not cfg.vision.detect.enabled:
        return "detection disabled in the config"
    detector = build_detector(cfg.vision)
    assert detector is not None
    detector.detect(np.zeros((360, 640, 3), dtype=np.uint8))
    model = getattr(detector, "model_path", "model")
    return f"{model} on {detector.runtime_name}, {detector.last_inference_ms or 0:.0f} ms"


def check_broker(cfg: AgentConfig, timeout: float = 10.0) -> str:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    b = cfg.broker
    done = threading.Event()
    outcome: dict[str, str] = {}

    def on_connect(client: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        outcome["reason"] = str(reason)
        outcome["failed"] = "1" if reason.is_failure else ""
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.device.id, protocol=mqtt.MQTTv5)
    client.username_pw_set(cfg.device.id)
    client.tls_set(ca_certs=str(b.ca), certfile=str(b.cert), keyfile=str(b.key))
    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    # Keep the device's persistent session (queued commands) intact: no clean start.
    props.SessionExpiryInterval = b.session_expiry
    client.connect(b.host, b.port, keepalive=30, clean_start=False, properties=props)
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise TimeoutError(f"no CONNACK from {b.host}:{b.port} within {timeout:.0f} s")
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        client.loop_stop()
    if outcome.get("failed"):
        raise RuntimeError(f"broker refused the connection: {outcome['reason']}")
    return f"{b.host}:{b.port} TLS ok, CONNACK {outcome['reason']}"


def run_checks(path: Path, out: TextIO, skip: frozenset[str] = frozenset()) -> int:
    results: list[Result] = []

    def emit(r: Result) -> None:
        results.append(r)
        print(f"{r.status:<4} {r.name:<12} {r.detail}", file=out, flush=True)

    try:
        cfg = load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            emit(Result("config", "FAIL", problem))
        return 1
    emit(Result("config", "PASS", f"{path} (device {cfg.device.id}, group {cfg.device.group})"))

    report = check_tls_files(cfg.broker.ca, cfg.broker.cert, cfg.broker.key)
    for problem in report.errors:
        emit(Result("certificate", "FAIL", problem))
    for warning in report.warnings:
        emit(Result("certificate", "WARN", warning))
    if report.ok and not report.warnings:
        expiry = report.expiry.get("broker.cert")
        emit(Result("certificate", "PASS", f"valid until {expiry:%Y-%m-%d}" if expiry else "ok"))

    steps: list[tuple[str, Callable[[], str]]] = [
        ("camera", lambda: check_camera(cfg)),
        ("model", lambda: check_model(cfg)),
        ("broker", lambda: "certificate files failed" if not report.ok else check_broker(cfg)),
    ]
    for name, step in steps:
        if name in skip:
            emit(Result(name, "SKIP", "skipped on request"))
            continue
        if name == "broker" and not report.ok:
            emit(Result(name, "FAIL", "not tried: fix the certificate files first"))
            continue
        try:
            emit(Result(name, "PASS", _within(step, STEP_TIMEOUT_S)))
        except Exception as exc:
            emit(Result(name, "FAIL", f"{type(exc).__name__}: {exc}"[:300]))
    failed = sum(r.status == "FAIL" for r in results)
    print(f"{'FAIL' if failed else 'PASS'} overall      {failed} failed of {len(results)} checks", file=out)
    return 1 if failed else 0
