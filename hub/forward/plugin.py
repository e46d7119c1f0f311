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
        clips: true               # clips stored at the hub as VideoSlices
        video_source: "99"        # 视频来源 code; confirm with the platform
      webhook:                    # signed JSON webhook (optional)
        url: https://zz.minqin.example/xl/events
        secret_file: /etc/xueliang/webhook.secret
        include_snapshot: true
        event_kinds: [person, panic, tamper]
        clips: link               # clips stored at the hub: link | bytes | off (default off)
        clip_base_url: https://hub.minqin.example:8080   # the console, for links
        clip_link_secret_file: /etc/xueliang/clip-link.secret  # signs the links (clips: link)
        clip_link_days: 7         # how long a link works

The section's schema, with every key's default, is hub/config_forward.py;
this module turns what it validated into running sinks. Secrets come from
files (or inline ``password``/``secret`` for tests) and are never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from hub.config import ConfigError
from hub.config_forward import ForwardConfig, ViidSection, WebhookSection, forward_problems
from hub.forward.clip_links import MIN_SECRET_BYTES
from hub.forward.forwarder import Forwarder, RetryPolicy
from hub.forward.sink import Sink
from hub.forward.viid import ViidConfig, ViidSink
from hub.forward.webhook import WebhookConfig, WebhookSink
from xlconfig import problem, validate


def _secret(sink: ViidSection | WebhookSection, where: str, file_key: str, inline: str) -> str:
    path: Path | None = getattr(sink, file_key)
    if path is None:
        return str(getattr(sink, inline))  # forward_problems made sure one of the two is there
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(problem(f"{where}.{file_key}", str(path), f"a readable file ({exc.strerror})")) from None


def clip_link_key(section: ForwardConfig | None) -> bytes | None:
    """The key that signs the webhook's clip links, for the console that checks them.

    None unless the webhook sends links (``clips: link``): then the console
    accepts no signed link and every clip needs a login."""
    hook = None if section is None else section.webhook
    if hook is None or hook.clips != "link":
        return None
    where = "forward.webhook"
    key = _secret(hook, where, "clip_link_secret_file", "clip_link_secret").encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(problem(f"{where}.clip_link_secret_file", "(hidden)", f"at least {MIN_SECRET_BYTES} bytes"))
    if key == _secret(hook, where, "secret_file", "secret").encode():
        # The receiver holds the webhook's secret: with it, it could sign a link to any clip.
        other = "a key other than the webhook's secret"
        raise ConfigError(problem(f"{where}.clip_link_secret_file", "(hidden)", other))
    return key


def build_sinks(section: ForwardConfig) -> list[Sink]:
    sinks: list[Sink] = []
    if (v := section.viid) is not None:
        sinks.append(
            ViidSink(
                ViidConfig(
                    base_url=v.base_url.rstrip("/"),
                    gateway_id=v.gateway_id,
                    password=_secret(v, "forward.viid", "password_file", "password"),
                    keepalive_s=v.keepalive_s,
                    timeout_s=v.timeout_s,
                    event_sort=v.event_sort,
                    verify_tls=v.verify_tls,
                    clips=v.clips,
                    video_source=v.video_source,
                )
            )
        )
    if (w := section.webhook) is not None:
        sinks.append(
            WebhookSink(
                WebhookConfig(
                    url=w.url,
                    secret=_secret(w, "forward.webhook", "secret_file", "secret").encode(),
                    include_snapshot=w.include_snapshot,
                    event_kinds=frozenset(w.event_kinds),
                    timeout_s=w.timeout_s,
                    verify_tls=w.verify_tls,
                    clips=w.clips,
                    clip_base_url=w.clip_base_url,
                    clip_link_secret=clip_link_key(section),
                    clip_link_s=round(w.clip_link_days * 86400),
                )
            )
        )
    return sinks


def create(engine: Engine, section: ForwardConfig | Mapping[str, Any]) -> tuple[Forwarder, list[Forwarder]]:
    """The hub's plug-in entry point (see hub.service.PLUGIN_ENTRY_POINTS).

    ``load_config`` has validated the section already; a raw mapping is validated here.
    """
    if not isinstance(section, ForwardConfig):
        section = validate(ForwardConfig, section, "forward.")
        problems = forward_problems(section, "forward")
        if problems:
            raise ConfigError(problems)
    policy = RetryPolicy(
        base_s=section.retry_base_s, cap_s=section.retry_cap_s, dead_after_s=section.dead_after_h * 3600.0
    )
    forwarder = Forwarder(engine, build_sinks(section), policy=policy)
    return forwarder, [forwarder]  # the hub's ForwardSink, and an Extension to start and stop
