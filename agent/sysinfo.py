"""What the Pi can say about itself, read from /proc, /sys and vcgencmd.

Every probe returns None when the file or tool is missing (a laptop, a
container, an older Pi OS) instead of raising: health degrades field by field.
``root`` lets tests point the probes at a fake filesystem.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from agent.watchdog import child_env

ROOT = Path("/")


def cpu_temp_c(root: Path = ROOT) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        return int((root / "sys/class/thermal/thermal_zone0/temp").read_text().strip()) / 1000.0
    return None


def throttled(vcgencmd: str | None = "auto") -> int | None:
    """``vcgencmd get_throttled`` → ``throttled=0x50000`` → 0x50000."""
    tool = shutil.which("vcgencmd") if vcgencmd == "auto" else vcgencmd
    if not tool:
        return None
    try:
        out = subprocess.run(
            [tool, "get_throttled"], capture_output=True, text=True, timeout=3, check=False, env=child_env()
        )
    except (OSError, subprocess.SubprocessError):
        return None
    _, _, value = out.stdout.strip().partition("=")
    with contextlib.suppress(ValueError):
        return int(value, 16)
    return None


def load1(root: Path = ROOT) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return float((root / "proc/loadavg").read_text().split()[0])
    return None


def memory_mb(root: Path = ROOT) -> tuple[int | None, int | None]:
    """(available, total) in MB from /proc/meminfo."""
    fields: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in (root / "proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[name] = int(parts[0])  # kB
    avail, total = fields.get("MemAvailable"), fields.get("MemTotal")
    return (None if avail is None else avail // 1024, None if total is None else total // 1024)


def disk_free_mb(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize // (1024 * 1024)


def wifi_rssi_dbm(root: Path = ROOT) -> int | None:
    """Signal level of the first wireless interface in /proc/net/wireless."""
    with contextlib.suppress(OSError):
        lines = (root / "proc/net/wireless").read_text().splitlines()
        for line in lines[2:]:  # two header lines
            parts = line.split()
            if len(parts) >= 4:
                with contextlib.suppress(ValueError):
                    level = int(float(parts[3].rstrip(".")))
                    # Some drivers report 0..255 "unsigned dBm"; map back to negative dBm.
                    level = level - 256 if level > 0 else level
                    if -150 <= level <= 0:
                        return level
    return None
