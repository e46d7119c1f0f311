"""Validating a config in a short-lived child process, so that the caller never imports pydantic.

``xl-agent run`` lives for years on a Pi Zero 2 W: pydantic, its Rust core and
the schemas it builds cost that process about 8 MB of RSS it would keep for
nothing after the first second (README, "Where the agent's memory goes"). The
child validates with the one schema (xlconfig) and hands back the section
dataclasses pickled; a config error comes back as the same ConfigError, every
problem and the source kept. Only the agent's own children ever send a pickle
here, over a pipe, never anything read from the network or a file.

A config push (agent.config_push) pays one child per push: about 1 s here on
x86, a few seconds on a Pi Zero, for a command the console sends a few times a
year per house.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from xlconfig.errors import ConfigError

CONFIG_ERROR = 3  # the child's exit status for a ConfigError (its problems as JSON on stdout)
# A Pi Zero 2 W on a slow card imports pydantic and numpy in well under this; and a start that
# validates twice (the file, then a kept push) still fits the unit's TimeoutStartSec=120.
TIMEOUT_S = 50.0

# The child learns the caller's sys.path before it imports anything of ours: the agent may run
# from a checkout (PYTHONPATH), an editable install or a venv, and the child must see the same code.
_BOOT = (
    "import pickle, sys; sys.path[:0] = pickle.load(sys.stdin.buffer); from xlconfig.isolated import _child; _child()"
)


class ValidatorFailed(RuntimeError):
    """The validating child did not give an answer (it could not start, crashed or hung)."""


def call(target: str, *args: Any, env: Mapping[str, str] | None = None) -> Any:
    """``module:function(*args)`` run in a fresh interpreter; its result, or its ConfigError, here.

    ValidatorFailed when the child dies another way (its stderr's tail in the message). ``env``:
    the child's environment (default this process's); the agent passes agent.watchdog.child_env()."""
    payload = pickle.dumps([p for p in sys.path if p]) + pickle.dumps((target, args))
    env = {**(os.environ if env is None else env), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _BOOT], input=payload, capture_output=True, timeout=TIMEOUT_S, env=env
        )
    except subprocess.TimeoutExpired:
        raise ValidatorFailed(f"validating the config ({target}) took over {TIMEOUT_S:g} s") from None
    if proc.returncode == 0:
        return pickle.loads(proc.stdout)
    if proc.returncode == CONFIG_ERROR:
        err = json.loads(proc.stdout)
        raise ConfigError(err["problems"], err["source"])
    tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
    raise ValidatorFailed(f"validating the config ({target}) failed, exit {proc.returncode}: {' | '.join(tail)}")


def _child() -> None:
    import importlib

    # The result goes out on a copy of stdout; anything a module prints on import goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    target, args = pickle.load(sys.stdin.buffer)
    module, _, name = target.partition(":")
    func = getattr(importlib.import_module(module), name)
    try:
        result = func(*args)
    except ConfigError as exc:
        out.write(json.dumps({"problems": exc.problems, "source": exc.source}).encode())
        out.close()
        sys.exit(CONFIG_ERROR)
    out.write(pickle.dumps(result))
    out.close()
