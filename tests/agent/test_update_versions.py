"""agent.update.versions orders versions as packaging.version does, without packaging."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version as Reference

from agent.update.versions import VersionError, compare, newest_first, parse

ORDERED = [
    "0.2.0",
    "0.3.0.dev0",
    "0.3.0.dev2",
    "0.3.0a1.dev1",
    "0.3.0a1",
    "0.3.0b2",
    "0.3.0rc1",
    "0.3.0",
    "0.3.0.post1.dev1",
    "0.3.0.post1",
    "0.3.1.dev2",
    "0.3.1",
    "0.10.0",
    "1!0.1.0",
]


def test_our_release_versions_sort_as_pep_440_says() -> None:
    for older, newer in itertools.pairwise(ORDERED):
        assert compare(older, newer) == -1 and compare(newer, older) == 1, (older, newer)
    shuffled = ORDERED[:]
    random.Random(17).shuffle(shuffled)
    assert newest_first(shuffled) == list(reversed(ORDERED))


@pytest.mark.parametrize(
    ("a", "b"), [("1.0", "1.0.0"), ("0.3.0rc1", "0.3.0-rc.1"), ("0.3.0c1", "0.3.0rc1"), ("1.0.post", "1.0.post0"),
                 ("1.0-3", "1.0.post3"), ("v1.0", "1.0"), ("1.0alpha2", "1.0a2"), ("1.0.DEV1", "1.0.dev1")],
)  # fmt: skip
def test_spellings_that_are_the_same_version(a: str, b: str) -> None:
    assert compare(a, b) == 0 and parse(a) == parse(b) and hash(parse(a)) == hash(parse(b))
    assert str(parse(a)) == str(Reference(a)) or parse(a) == parse(str(Reference(a)))


@pytest.mark.parametrize("bad", ["", "abc", "1.0+local", "1..0", "1.0-", "0.3.0 rc1 x", "1.0.0beta.x", "٣.0"])
def test_what_is_not_a_release_version_is_refused_clearly(bad: str) -> None:
    with pytest.raises(VersionError, match="not a release version"):
        parse(bad)


def test_a_non_string_is_refused() -> None:
    with pytest.raises(VersionError, match="must be a string"):
        parse(3.0)  # type: ignore[arg-type]


_segments = st.lists(st.integers(0, 12), min_size=1, max_size=4).map(lambda ns: ".".join(map(str, ns)))
_pre = st.sampled_from(["", "a", "b", "rc"]).flatmap(
    lambda p: st.just("") if not p else st.integers(0, 3).map(lambda n: f"{p}{n}")
)
_post = st.sampled_from(["", ".post0", ".post1", ".post3"])
_dev = st.sampled_from(["", ".dev0", ".dev1", ".dev5"])
_version = st.tuples(st.sampled_from(["", "", "", "1!"]), _segments, _pre, _post, _dev).map("".join)


@given(_version, _version)
def test_ordering_agrees_with_packaging(a: str, b: str) -> None:
    ra, rb = Reference(a), Reference(b)
    assert compare(a, b) == (ra > rb) - (ra < rb), (a, b)
    assert str(parse(a)) == str(ra)
