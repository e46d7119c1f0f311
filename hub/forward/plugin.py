"""``forward:`` in the hub config → a running Forwarder plugged into ingest.

::

    forward:
      dead_after_h: 72            # an item undeliverable this long becomes a dead letter
      retry_base_s: 5
      retry_cap_s: 600
      viid:                       # GA/T 1400 视图库 (optional)
        base_url: http://10.62.6.21:8080
        gateway_id: "62062100002000000001"   # the hub's registered 20-digit ID (Digest username)
        password_file: /etc/xueliang/viid.password
        keepalive_s: 45
        event_sort: 4
        verify_tls: true          # or a CA bundle path
      webhook:                    # signed JSON webhook (optional)
        url: https://zz.minqin.example/xl/events
        secret_file: /etc/xueliang/webhook.secret
        include_snapshot: true
        event_kinds: [person, panic, tamper]

Secrets come from files (or inline ``password``/``secret`` for tests) and are
never logged. Every error names its key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from hub.config import ConfigError
from hub.forward.forwarder import Forwarder, RetryPolicy
from hub.forward.sink import Sink
from hub.forward.viid import ViidConfig, ViidSink
from hub.forward.webhook import WebhookConfig, WebhookSink

_TOP = {"dead_after_h", "retry_base_s", "retry_cap_s", "viid", "webhook"}
_VIID = {"base_url", "gateway_id", "password", "password_file", "keepalive_s", "event_sort", "verify_tls",
         "timeout_s"}
_HOOK = {"url", "secret", "secret_file", "include_snapshot", "event_kinds", "verify_tls", "timeout_s"}


def _keys(section: Any, where: str, known: set[str]) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a mapping, found {type(section).__name__}")
    extra = sorted(set(section) - known)
    if extra:
        raise ConfigError(f"{where}.{extra[0]}: unknown key (known: {', '.join(sorted(known))})")
    return section


def _secret(section: dict[str, Any], where: str, inline: str, file_key: str) -> str:
    if section.get(file_key):
        path = Path(str(section[file_key]))
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{where}.{file_key}: cannot read {path}: {exc.strerror}") from None
    value = section.get(inline)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: give {file_key} (a file holding it) or {inline}")
    return value


def _number(section: dict[str, Any], where: str, key: str, default: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}.{key}: expected a positive number, found {value!r}")
    return float(value)


def _verify(section: dict[str, Any], where: str) -> bool | str:
    value = section.get("verify_tls", True)
    if not isinstance(value, bool | str):
        raise ConfigError(f"{where}.verify_tls: expected true, false or a CA bundle path, found {value!r}")
    return value


def build_sinks(section: dict[str, Any]) -> list[Sink]:
    sinks: list[Sink] = []
    if section.get("viid") is not None:
        v = _keys(section["viid"], "forward.viid", _VIID)
        try:
            sinks.append(ViidSink(ViidConfig(
                base_url=str(v.get("base_url", "")).rstrip("/"),
                gateway_id=str(v.get("gateway_id", "")),
                password=_secret(v, "forward.viid", "password", "password_file"),
                keepalive_s=_number(v, "forward.viid", "keepalive_s", 45.0),
                timeout_s=_number(v, "forward.viid", "timeout_s", 10.0),
                event_sort=int(_number(v, "forward.viid", "event_sort", 4)),
                verify_tls=_verify(v, "forward.viid"),
            )))
        except (ValueError, TypeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"forward.viid: {exc}") from None
    if section.get("webhook") is not None:
        w = _keys(section["webhook"], "forward.webhook", _HOOK)
        url = w.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"forward.webhook.url: expected an http(s) URL, found {url!r}")
        kinds = w.get("event_kinds", ["person", "panic", "tamper"])
        if not isinstance(kinds, list) or not all(k in {"motion", "person", "panic", "tamper"} for k in kinds):
            raise ConfigError(f"forward.webhook.event_kinds: expected a list of event kinds, found {kinds!r}")
        sinks.append(WebhookSink(WebhookConfig(
            url=url,
            secret=_secret(w, "forward.webhook", "secret", "secret_file").encode(),
            include_snapshot=bool(w.get("include_snapshot", True)),
            event_kinds=frozenset(kinds),
            timeout_s=_number(w, "forward.webhook", "timeout_s", 10.0),
            verify_tls=_verify(w, "forward.webhook"),
        )))
    if not sinks:
        raise ConfigError("forward: configure at least one of viid or webhook (or remove the forward section)")
    return sinks


def create(engine: Engine, section: dict[str, Any]) -> tuple[Forwarder, list[Forwarder]]:
    """The hub's plug-in entry point (see hub.service.PLUGIN_ENTRY_POINTS)."""
    section = _keys(section or {}, "forward", _TOP)
    policy = RetryPolicy(
        base_s=_number(section, "forward", "retry_base_s", 5.0),
        cap_s=_number(section, "forward", "retry_cap_s", 600.0),
        dead_after_s=_number(section, "forward", "dead_after_h", 72.0) * 3600.0,
    )
    forwarder = Forwarder(engine, build_sinks(section), policy=policy)
    return forwarder, [forwarder]  # the hub's ForwardSink, and an Extension to start and stop
