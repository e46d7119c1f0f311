"""The one config error of the project, and the shape of each of its lines."""

from __future__ import annotations

from collections.abc import Sequence

_SHOWN_MAX = 80  # a value longer than this is cut: the key and the expectation matter more


class ConfigError(ValueError):
    """Every problem found in one config, each a line naming its dotted key.

    ``problems`` may be one string (a problem found outside a file's schema,
    e.g. a plug-in the hub cannot load) or the list a validation produced.
    """

    def __init__(self, problems: str | Sequence[str], source: str = "config") -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))

    def lines(self) -> list[str]:
        """One printable line per problem, each naming the file it is in."""
        return [f"{self.source}: {p}" for p in self.problems]


def shown(value: object) -> str:
    text = repr(value)
    if len(text) <= _SHOWN_MAX:
        return text
    half = (_SHOWN_MAX - 3) // 2  # both ends: a path's file name is at its end
    return text[:half] + "..." + text[-half:]


def problem(key: str, value: object, expected: str) -> str:
    """The line for one problem: ``key: found <repr>, expected <what>``."""
    return f"{key or '(top level)'}: found {shown(value)}, expected {expected}"
