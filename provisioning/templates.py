"""Render the ``firmware_config/`` templates.

Placeholders are ``@{name}``; anything else (``$VAR`` in shell, ``%i`` in
systemd) passes through untouched. A missing value is an error, never an
empty string, and no value may contain a newline: one line of a unit file or
config must not be able to smuggle in another.
"""

from __future__ import annotations

import re
import string
from functools import cache
from pathlib import Path

# Installed as a package when packaged; in a source checkout it sits beside provisioning/.
_CANDIDATES = (Path(__file__).resolve().parent.parent / "firmware_config",)


class TemplateError(ValueError):
    pass


class _AtTemplate(string.Template):
    delimiter = "@"
    # A string, as string.Template wants: its __init_subclass__ compiles it with the
    # class flags (typeshed types the attribute as the compiled pattern).
    pattern = r"@(?:(?P<escaped>@(?=\{))|\{(?P<braced>[a-z_][a-z0-9_]*)\}|(?P<named>(?!))|(?P<invalid>(?!)))"  # type: ignore[assignment]


def template_dir() -> Path:
    try:
        import firmware_config

        return Path(firmware_config.__file__).resolve().parent
    except ImportError:
        pass
    for candidate in _CANDIDATES:
        if candidate.is_dir():
            return candidate
    raise TemplateError("firmware_config templates not found (is the package installed?)")


@cache
def _load(name: str) -> _AtTemplate:
    path = template_dir() / name
    try:
        return _AtTemplate(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError(f"no template {name!r} in {path.parent}") from None


def placeholders(name: str) -> set[str]:
    return {m.group("braced") for m in re.finditer(_AtTemplate.pattern, _load(name).template) if m.group("braced")}


def render(name: str, values: dict[str, object]) -> str:
    for key, value in values.items():
        if "\n" in str(value) or "\r" in str(value):
            raise TemplateError(f"value for @{{{key}}} in {name} must be one line, got {str(value)[:40]!r}")
    try:
        return _load(name).substitute({k: str(v) for k, v in values.items()})
    except KeyError as exc:
        raise TemplateError(f"template {name} needs a value for @{{{exc.args[0]}}}") from None


# The Pi-side files of a bundle: (template, path inside the bundle).
PI_FILES = (
    ("xueliang-agent.service", "system/xueliang-agent.service"),
    ("config.txt", "system/config.txt"),
    ("watchdog.conf", "system/watchdog.conf"),
    ("journald.conf", "system/journald.conf"),
    ("timesyncd.conf", "system/timesyncd.conf"),
)

PI_DEFAULTS: dict[str, object] = {
    "watchdog_sec": 60,
    "restart_sec": 5,
    "agent_bin": "/opt/xueliang/current/venv/bin/xl-agent",  # current -> releases/<version> (docs/ota.md)
    "config_path": "/etc/xueliang/agent.yaml",
    "memory_max": "400M",
    "runtime_watchdog_sec": 14,
    "journal_max_use": "32M",
    "ntp_fallback": "ntp.aliyun.com cn.pool.ntp.org",
}


def render_pi_files(ntp_server: str, **overrides: object) -> dict[str, str]:
    """Bundle path -> text of every Pi-side system file (the same for every device)."""
    values = {**PI_DEFAULTS, "ntp_server": ntp_server, **overrides}
    return {dest: render(tpl, values) for tpl, dest in PI_FILES}
