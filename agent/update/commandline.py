"""``xl-agent update …``: the argument parsing, apart from the child's body.

``xl-agent run`` builds the same parser, and must not import python-tuf by
doing so: agent.update.apply_cli (and with it tuf, securesystemslib and
cryptography) is imported only when ``update apply`` actually runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_update_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from agent.config import DEFAULT_PATH

    update = sub.add_parser("update", help="over-the-air updates (docs/ota.md)")
    actions = update.add_subparsers(dest="update_action", metavar="ACTION", required=True)
    apply = actions.add_parser("apply", help="fetch, verify and install a release (the agent runs this as a child)")
    apply.add_argument("--config", type=Path, help=f"config (default {DEFAULT_PATH})")
    apply.add_argument("--version", dest="target", required=True, metavar="V", help="the release to install")
    apply.add_argument("--allow-downgrade", action="store_true", help="the rollout allows an older release")
    apply.add_argument("--force", action="store_true", help="the hub forced it (ignore armed hours)")
    apply.add_argument("--rollout", metavar="ID", help="rollout id, echoed in progress and health")
    apply.set_defaults(handler=_apply, config_fallback=DEFAULT_PATH)


def _apply(args: argparse.Namespace) -> int:
    from agent.config import ConfigError, load
    from agent.update.apply_cli import apply_release

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config %s", problem)
        return 2
    return apply_release(cfg, args.target, allow_downgrade=args.allow_downgrade, rollout=args.rollout)
