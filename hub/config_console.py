"""The ``console:`` section of the hub config: the console's settings and its login throttle.

Defined here, beneath the console, so the hub's config can validate the
section without importing the web app; hub.console.app and hub.console.auth
use these classes as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field

from xlconfig import SECTION, Bool, Float, Int, Str


@dataclass(frozen=True)
class Throttle:
    user_failures: Annotated[Int, Field(ge=1, description="Failed logins per account ...")] = 5
    ip_failures: Annotated[Int, Field(ge=1, description="... and per source address, within ...")] = 20
    window_s: Annotated[Int, Field(ge=1, description="... this window; then locked for ...")] = 900
    lockout_s: Annotated[Int, Field(ge=1, description="... this long.")] = 900


@dataclass(frozen=True)
class ConsoleSettings:
    host: Str = "127.0.0.1"
    port: Annotated[Int, Field(ge=1, le=65535)] = 8080
    session_hours: Annotated[
        Float, Field(gt=0, description="One shift plus a margin; logging in again each morning is expected.")
    ] = 12.0
    secure_cookie: Annotated[Bool, Field(description="Set true behind TLS (a reverse proxy).")] = False
    refresh_s: Annotated[Int, Field(ge=1, description="How often the pages refresh.")] = 5
    throttle: Annotated[Throttle, SECTION, Field(alias="login_throttle")] = field(default_factory=Throttle)


@dataclass(frozen=True)
class ConsoleSection(ConsoleSettings):
    """The section as written: the settings, and whether ``xl-hub run`` serves the console at all."""

    enabled: Annotated[Bool, Field(description="false: the section is kept but no console runs.")] = True
