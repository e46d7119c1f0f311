"""A small disk image laid out like Raspberry Pi OS Bookworm's, for the SD-card tests.

MBR; partition 1 FAT32 (type 0x0c) from sector 8192, as Pi OS puts its boot
partition, holding a cmdline.txt and config.txt like the image's; partition 2
Linux (0x83), filled with a pattern so a test can prove nothing wrote there.
Only smaller: 192 MiB + 8 MiB instead of 512 MiB + a few GiB (sparse; the aarch64
wheels the card carries are about 80 MB).
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

SECTOR = 512
BOOT_START = 8192
BOOT_SECTORS = 192 * 2048
ROOT_SECTORS = 8 * 2048
ROOT_PATTERN = b"rootfs-untouched"
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
CONFIG_TXT = "# For more options and information see http://rptl.io/configtxt\ndtparam=audio=on\n\n[all]\n"
# The end of the firstrun.sh Raspberry Pi Imager writes when it customises a card (Wi-Fi, user).
IMAGER_FIRSTRUN = """#!/bin/bash

set +e

CURRENT_HOSTNAME=`cat /etc/hostname | tr -d " \\t\\n\\r"`
echo "pi-h1" >/etc/hostname
rm -f /boot/firmware/firstrun.sh
sed -i 's| systemd.run.*||g' /boot/firmware/cmdline.txt
exit 0
"""
IMAGER_HOOK = (
    " systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target"
)


def _entry(type_id: int, start: int, count: int) -> bytes:
    # Status, CHS start (unused: 0xfe 0xff 0xff), type, CHS end, LBA start, sector count.
    return struct.pack("<B3sB3sII", 0, b"\xfe\xff\xff", type_id, b"\xfe\xff\xff", start, count)


def mtools_env() -> dict[str, str]:
    return {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


def make_image(path: Path, *, imager_customised: bool = False) -> Path:
    root_start = BOOT_START + BOOT_SECTORS
    total = root_start + ROOT_SECTORS
    with open(path, "wb") as f:
        f.truncate(total * SECTOR)
        mbr = bytearray(SECTOR)
        mbr[440:444] = bytes.fromhex("9190634e")  # disk id, as PARTUUID=4e639091-02 refers to
        mbr[446:462] = _entry(0x0C, BOOT_START, BOOT_SECTORS)
        mbr[462:478] = _entry(0x83, root_start, ROOT_SECTORS)
        mbr[510:512] = b"\x55\xaa"
        f.seek(0)
        f.write(mbr)
        f.seek(root_start * SECTOR)
        f.write(ROOT_PATTERN * (ROOT_SECTORS * SECTOR // len(ROOT_PATTERN)))
    subprocess.run(
        ["mkfs.vfat", "-F", "32", "-n", "bootfs", "--offset", str(BOOT_START), str(path), str(BOOT_SECTORS // 2)],
        check=True,
        capture_output=True,
    )
    files = {"cmdline.txt": CMDLINE, "config.txt": CONFIG_TXT}
    if imager_customised:
        files["cmdline.txt"] = CMDLINE.strip() + IMAGER_HOOK + "\n"
        files["firstrun.sh"] = IMAGER_FIRSTRUN
    for name, text in files.items():
        local = path.parent / f".{name}"
        local.write_text(text)
        fat_put(path, local, name)
        local.unlink()
    return path


def drive(path: Path) -> str:
    return f"{path}@@{BOOT_START * SECTOR}"


def fat_put(image: Path, local: Path, name: str) -> None:
    subprocess.run(
        ["mcopy", "-o", "-i", drive(image), str(local), f"::{name}"], check=True, env=mtools_env(), capture_output=True
    )


def fat_read(image: Path, name: str) -> bytes:
    return subprocess.run(
        ["mcopy", "-n", "-i", drive(image), f"::{name}", "-"], check=True, env=mtools_env(), capture_output=True
    ).stdout


def fat_extract(image: Path, dest: Path) -> None:
    """The whole boot partition into ``dest`` (what the Pi sees as /boot/firmware)."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mcopy", "-s", "-n", "-i", drive(image), "::*", str(dest)], check=True, env=mtools_env(), capture_output=True
    )


def root_untouched(image: Path) -> bool:
    with open(image, "rb") as f:
        f.seek((BOOT_START + BOOT_SECTORS) * SECTOR)
        data = f.read(ROOT_SECTORS * SECTOR)
    return data == ROOT_PATTERN * (len(data) // len(ROOT_PATTERN))
