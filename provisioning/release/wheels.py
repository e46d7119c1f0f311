"""Which wheels of a wheelhouse a device of a given ``platform.machine()`` can install.

Read from the wheel filename's tags (PEP 427/425) alone, for the one Python
the devices run: 3.11, Raspberry Pi OS Bookworm's, with glibc 2.36.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# platform.machine() values a release may name; armv7l cannot install the agent (docs/ota.md).
PLATFORMS = ("aarch64", "x86_64")
PYTHON_MINOR = 11
GLIBC = (2, 36)

_WHEEL = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-(?P<build>\d[^-]*))?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$"
)
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$")
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


class WheelError(ValueError):
    pass


@dataclass(frozen=True)
class WheelName:
    filename: str
    name: str
    version: str
    python: tuple[str, ...]
    abi: tuple[str, ...]
    platforms: tuple[str, ...]

    @property
    def pure(self) -> bool:
        return self.platforms == ("any",)


def parse(filename: str) -> WheelName:
    m = _WHEEL.match(filename)
    if not m:
        raise WheelError(f"{filename}: not a wheel filename (name-version-python-abi-platform.whl)")
    return WheelName(
        filename,
        m["name"],
        m["version"],
        tuple(m["py"].split(".")),
        tuple(m["abi"].split(".")),
        tuple(m["plat"].split(".")),
    )


def _python_ok(wheel: WheelName) -> bool:
    for tag in wheel.python:
        if tag in ("py3", f"py3{PYTHON_MINOR}", f"cp3{PYTHON_MINOR}"):
            return True
        # cp37-abi3 and the like: the stable ABI of an older CPython loads in 3.11.
        m = re.fullmatch(r"cp3(\d+)", tag)
        if m and "abi3" in wheel.abi and int(m.group(1)) <= PYTHON_MINOR:
            return True
    return False


def _abi_ok(wheel: WheelName) -> bool:
    return any(tag in ("none", "abi3", f"cp3{PYTHON_MINOR}") for tag in wheel.abi)


def _platform_ok(tag: str, machine: str) -> bool:
    if tag == "any":
        return True
    if tag == f"linux_{machine}":
        return True
    legacy, _, arch = tag.partition("_")
    if legacy in _LEGACY_MANYLINUX:
        return arch == machine and _LEGACY_MANYLINUX[legacy] <= GLIBC
    m = _MANYLINUX.match(tag)
    return m is not None and m.group(3) == machine and (int(m.group(1)), int(m.group(2))) <= GLIBC


def installable(wheel: WheelName, machine: str) -> bool:
    return _python_ok(wheel) and _abi_ok(wheel) and any(_platform_ok(t, machine) for t in wheel.platforms)


def select(wheelhouse: Path, machine: str, exclude: str = "xueliang_edge") -> list[Path]:
    """The wheels in ``wheelhouse`` a ``machine`` device installs (except our own, which is its own target)."""
    if machine not in PLATFORMS:
        raise WheelError(f"platform {machine!r}: releases are for {', '.join(PLATFORMS)} (platform.machine() values)")
    chosen = []
    for path in sorted(wheelhouse.glob("*.whl")):
        wheel = parse(path.name)
        if wheel.name != exclude and installable(wheel, machine):
            chosen.append(path)
    return chosen
