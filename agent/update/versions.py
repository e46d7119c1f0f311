"""Release versions compared the PEP 440 way, with the standard library only.

The device decides "is this newer?" (downgrade refusal, ``min_from``) before
anything else of the release is trusted to run, and the running agent must not
grow a dependency for it, so ``packaging`` is not imported here. What is
covered is what our releases use: an optional epoch, release segments, one
pre-release (a/b/rc, with the usual alternate spellings), post and dev
releases. Local versions (``+abc``) are refused: a release the fleet runs must
be one the county office published.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_PATTERN = re.compile(
    r"""
    v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?:[-_.]?(?P<pre_l>alpha|beta|preview|pre|rc|a|b|c)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?P<post>-(?P<post_implicit>[0-9]+)|[-_.]?(?:post|rev|r)[-_.]?(?P<post_n>[0-9]+)?)?
    (?P<dev>[-_.]?dev[-_.]?(?P<dev_n>[0-9]+)?)?
    """,
    re.VERBOSE | re.IGNORECASE,
)
_PRE_NAMES = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "c": "rc", "rc": "rc", "pre": "rc", "preview": "rc"}
_PRE_ORDER = {"a": 0, "b": 1, "rc": 2}

# Sort keys for the parts that may be absent. A missing pre-release sorts after
# every pre-release (1.0 > 1.0rc1), except on a bare dev release, which sorts
# before them (1.0.dev0 < 1.0a1); a missing post sorts before every post; a
# missing dev sorts after every dev (1.0 > 1.0.dev9).
_BEFORE_ALL = (-1, -1)
_AFTER_ALL = (99, 0)


class VersionError(ValueError):
    pass


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    epoch: int
    release: tuple[int, ...]
    pre: tuple[str, int] | None
    post: int | None
    dev: int | None

    def __str__(self) -> str:
        text = f"{self.epoch}!" if self.epoch else ""
        text += ".".join(str(n) for n in self.release)
        if self.pre is not None:
            text += f"{self.pre[0]}{self.pre[1]}"
        if self.post is not None:
            text += f".post{self.post}"
        if self.dev is not None:
            text += f".dev{self.dev}"
        return text

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None or self.dev is not None

    def _key(self) -> tuple[object, ...]:
        release = list(self.release)
        while len(release) > 1 and release[-1] == 0:  # 1.0 == 1.0.0
            release.pop()
        if self.pre is not None:
            pre = (_PRE_ORDER[self.pre[0]], self.pre[1])
        elif self.post is None and self.dev is not None:
            pre = _BEFORE_ALL
        else:
            pre = _AFTER_ALL
        post = self.post if self.post is not None else -1
        dev = self.dev if self.dev is not None else float("inf")
        return (self.epoch, tuple(release), pre, post, dev)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()


def parse(text: str) -> Version:
    """A version, or VersionError naming what was found."""
    if not isinstance(text, str):
        raise VersionError(f"a version must be a string, found {type(text).__name__}")
    m = _PATTERN.fullmatch(text.strip())
    if m is None:
        raise VersionError(f"not a release version: {text[:40]!r} (expected e.g. 0.3.0, 0.3.0rc1, 0.3.1.dev2)")
    pre = None
    if m.group("pre_l"):
        pre = (_PRE_NAMES[m.group("pre_l").lower()], int(m.group("pre_n") or 0))
    post = None
    if m.group("post") is not None:  # "1.0.post" is 1.0.post0, "1.0-3" is 1.0.post3
        post = int(m.group("post_implicit") or m.group("post_n") or 0)
    dev = int(m.group("dev_n") or 0) if m.group("dev") is not None else None
    return Version(
        epoch=int(m.group("epoch") or 0),
        release=tuple(int(n) for n in m.group("release").split(".")),
        pre=pre,
        post=post,
        dev=dev,
    )


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as or newer than ``b``."""
    va, vb = parse(a), parse(b)
    return (va > vb) - (va < vb)


def newest_first(versions: list[str]) -> list[str]:
    return sorted(versions, key=parse, reverse=True)
