"""``xl-provision sd-card``: put a device's bundle on a Raspberry Pi OS card, so its first boot provisions it.

The installer writes Raspberry Pi OS (64-bit) with Raspberry Pi Imager, then
runs this on the card (``/dev/sdX``) or on the image file before writing it.
It works with mtools on the FAT boot partition, so it needs neither root nor a
loop mount, and it never touches the root partition:

* the bundle goes to ``/boot/firmware/xueliang/``, with the aarch64 wheels
  (``tools/pi-wheels.sh``) in ``xueliang/wheels/``: the agent installs with no
  network, and xueliang-edge is not on PyPI;
* first boot runs it through the kernel command line's ``systemd.run`` hook,
  the mechanism Imager's own customisation (``firstrun.sh``) uses. If Imager
  already put a firstrun.sh there (Wi-Fi, user), our step is inserted into it
  before it removes itself, so both run.

For a village, ``--village`` prints one command per card in household order,
with each card's place on the village's label sheet (``labels``).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E}
HOOK = (
    "systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target"
)
OUR_STEP = "XL_FIRST_BOOT_NO_REBOOT=1 sh /boot/firmware/xueliang/first-boot.sh"
FIRSTRUN = f"""#!/bin/bash
# Written by xl-provision sd-card: runs once at first boot from the kernel command
# line (systemd.run), then removes itself; systemd reboots when it exits 0.
set +e
{OUR_STEP}
rm -f /boot/firmware/firstrun.sh
sed -i 's| systemd.run.*||g' /boot/firmware/cmdline.txt
exit 0
"""


class SdCardError(RuntimeError):
    pass


@dataclass(frozen=True)
class Partition:
    number: int
    type_id: int
    offset: int  # bytes
    size: int


def partitions(image: Path) -> list[Partition]:
    """The MBR's primary partitions (Raspberry Pi OS images and cards use an MBR)."""
    with open(image, "rb") as f:
        mbr = f.read(SECTOR)
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        return []
    found = []
    for i in range(4):
        entry = mbr[446 + 16 * i : 446 + 16 * (i + 1)]
        type_id = entry[4]
        start, count = struct.unpack("<II", entry[8:16])
        if type_id and count:
            found.append(Partition(i + 1, type_id, start * SECTOR, count * SECTOR))
    return found


def boot_target(image: Path) -> str:
    """The mtools drive spec of the boot partition: ``image@@offset``, or the image itself if it is bare FAT."""
    parts = partitions(image)
    fat = [p for p in parts if p.type_id in FAT_TYPES]
    if fat:
        return f"{image}@@{fat[0].offset}"
    with open(image, "rb") as f:
        boot = f.read(SECTOR)
    if boot[54:59] == b"FAT16" or boot[82:87] == b"FAT32" or boot[54:59] == b"FAT12":
        return str(image)  # a partition device such as /dev/sdb1
    kinds = ", ".join(f"{p.number}: type 0x{p.type_id:02x}" for p in parts) or "no MBR"
    raise SdCardError(f"{image}: no FAT boot partition found ({kinds}); is this a Raspberry Pi OS image or card?")


class Fat:
    """The few mtools calls needed on one FAT filesystem."""

    def __init__(self, target: str) -> None:
        missing = [t for t in ("mcopy", "mtype", "mmd", "mdeltree", "mdir") if shutil.which(t) is None]
        if missing:
            raise SdCardError(f"mtools missing ({', '.join(missing)}): apt install mtools")
        self.target = target
        # Cards written by other tools often fail mtools' geometry sanity check harmlessly.
        self.env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run([args[0], "-i", self.target, *args[1:]], env=self.env, capture_output=True, check=False)
        if check and done.returncode != 0:
            raise SdCardError(f"{' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
        return done

    def exists(self, path: str) -> bool:
        return self._run("mdir", "-b", f"::{path}", check=False).returncode == 0

    def read(self, path: str) -> bytes:
        # mcopy to stdout is byte-exact (mtype may convert line ends).
        return self._run("mcopy", "-n", f"::{path}", "-").stdout

    def write(self, path: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(data)
            tmp.flush()
            self._run("mcopy", "-o", "-n", tmp.name, f"::{path}")

    def replace_tree(self, src: Path, dest: str) -> None:
        if self.exists(dest):
            self._run("mdeltree", f"::{dest}")
        self._run("mcopy", "-s", "-n", "-Q", str(src), f"::{dest}")


def _hook_existing_firstrun(text: str) -> str:
    """Imager's firstrun.sh ends by deleting itself; run our step just before that."""
    if OUR_STEP in text:
        return text
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.strip().startswith("rm -f") and "firstrun.sh" in line:
            lines.insert(i, OUR_STEP + "\n")
            return "".join(lines)
    raise SdCardError(
        "the card's firstrun.sh does not remove itself as Imager's does; add this line to it: " + OUR_STEP
    )


def write_card(image: Path, bundle: Path, wheels: Path) -> list[str]:
    """Copy ``bundle`` (and ``wheels``) onto the card's boot partition and hook first boot. Returns what it did."""
    if not (bundle / "first-boot.sh").is_file():
        raise SdCardError(f"{bundle}: not a device bundle (no first-boot.sh)")
    wheel_files = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if not any(w.name.startswith("xueliang_edge-") for w in wheel_files):
        raise SdCardError(f"{wheels}: no xueliang_edge wheel; make the folder with tools/pi-wheels.sh")
    fat = Fat(boot_target(image))
    if not fat.exists("/cmdline.txt"):
        raise SdCardError(f"{image}: the boot partition has no cmdline.txt; is this a Raspberry Pi OS card?")
    done = []
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "xueliang"
        shutil.copytree(bundle, staged)
        shutil.copytree(wheels, staged / "wheels", dirs_exist_ok=True)
        fat.replace_tree(staged, "/xueliang")
    done.append(f"bundle and {len(wheel_files)} wheels -> /boot/firmware/xueliang/")
    cmdline = fat.read("/cmdline.txt").decode().strip()
    if "systemd.run=" in cmdline:
        if "firstrun.sh" not in cmdline or not fat.exists("/firstrun.sh"):
            raise SdCardError(f"cmdline.txt already runs something else at first boot: {cmdline}")
        text = fat.read("/firstrun.sh").decode()
        fat.write("/firstrun.sh", _hook_existing_firstrun(text).encode())
        done.append("first boot: added to Imager's firstrun.sh")
    else:
        fat.write("/firstrun.sh", FIRSTRUN.encode())
        # cmdline.txt must stay one line.
        fat.write("/cmdline.txt", (cmdline + " " + HOOK + "\n").encode())
        done.append("first boot: firstrun.sh + systemd.run in cmdline.txt")
    return done
