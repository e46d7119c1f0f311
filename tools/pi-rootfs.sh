#!/usr/bin/env bash
# Build (once) a Debian bookworm root filesystem for a Raspberry Pi's CPU, run
# through qemu-user-static, for the tests in tests/pi/. Prints its path.
#
#   tools/pi-rootfs.sh [arm64|armhf]
#
# The Raspberry Pi archive cannot be reached from here, so this is Debian's
# userland of the same release Pi OS Bookworm is built from, without libcamera
# or picamera2. It is cached outside the repository, under
# $XL_ROOTFS_CACHE (default /var/cache/xueliang), in a folder named by a hash of
# what goes into it (suite, architecture, packages, recipe version): changing
# one builds a new tree, and otherwise the old one is found in well under a
# second. Bump `recipe` when the steps after debootstrap change. The tests
# never write into it; they mount an overlay on top (tests/pi/chroot.py).
set -euo pipefail

arch="${1:-arm64}"
case "$arch" in
  arm64) qemu=qemu-aarch64 ;;
  armhf) qemu=qemu-arm ;;
  *) echo "pi-rootfs: unknown architecture $arch (arm64 or armhf)" >&2; exit 2 ;;
esac
suite=bookworm
mirror="${XL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What a Pi OS Lite image has that the agent and first-boot.sh use: Python with
# venv (the agent's venv), CA certificates (pip over HTTPS), systemd
# (systemctl enable, systemd-analyze verify), passwd (useradd). armhf also gets
# Debian's numpy 1.24: PyPI has no 32-bit ARM numpy wheel, and Pi OS ships
# python3-numpy from apt in the same way.
packages=python3,python3-venv,ca-certificates,systemd,passwd,procps
if [ "$arch" = armhf ]; then packages="$packages,python3-numpy"; fi

cache="${XL_ROOTFS_CACHE:-/var/cache/xueliang}"
recipe=2
key="$(printf '%s\n' "$recipe" "$suite" "$arch" "$packages" | sha256sum | cut -c1-12)"
dest="$cache/rootfs-$arch-$key"

log() { echo "pi-rootfs: $*" >&2; }

ensure_binfmt() {
  # qemu-user-static registers its interpreters with the F flag (opened at
  # registration), so a chroot needs no qemu binary copied into it.
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e "/proc/sys/fs/binfmt_misc/$qemu" ]; then
    update-binfmts --enable "$qemu" >/dev/null 2>&1 || true
  fi
  if [ ! -e "/proc/sys/fs/binfmt_misc/$qemu" ]; then
    local magic mask
    case "$arch" in
      arm64)
        magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
        mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' ;;
      armhf)
        magic='\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00'
        mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' ;;
    esac
    echo ":$qemu:M::$magic:$mask:/usr/bin/$qemu-static:F" > /proc/sys/fs/binfmt_misc/register
  fi
}

if [ "$(id -u)" != 0 ]; then
  log "must run as root (debootstrap, chroot and binfmt_misc need it)"
  exit 1
fi
ensure_binfmt

if [ -e "$dest/.xl-complete" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache"
# One builder at a time; a second caller waits and then finds the finished tree.
exec 9>"$cache/.rootfs-$arch.lock"
flock 9
if [ -e "$dest/.xl-complete" ]; then
  echo "$dest"
  exit 0
fi

start=$(date +%s)
work="$dest.partial"
rm -rf "$work"
log "building $suite $arch into $dest (debootstrap + qemu-user-static; about 10 minutes)"
# nice: the machine's cores are shared with other work.
nice -n 10 debootstrap --arch="$arch" --variant=minbase --include="$packages" \
  "$suite" "$work" "$mirror" >"$cache/rootfs-$arch-$key.log" 2>&1 || {
  log "debootstrap failed; last lines of $cache/rootfs-$arch-$key.log:"
  tail -20 "$cache/rootfs-$arch-$key.log" >&2
  exit 1
}
# Pi OS has the security suite too; apt inside (first-boot.sh) needs sources.
cat >"$work/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
# The boot partition's mount point, as on Pi OS; the SD card's FAT files go here.
mkdir -p "$work/boot/firmware"
# As on Pi OS: a hostname, and /etc/hosts naming localhost (debootstrap writes
# none, and then "localhost" does not resolve). A real Pi gets its machine-id at
# first boot; systemd-analyze verify only needs the file to exist.
echo raspberrypi >"$work/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\traspberrypi\n' >"$work/etc/hosts"
: >"$work/etc/machine-id"
rm -rf "$work/var/cache/apt/archives/"*.deb
touch "$work/.xl-complete"
mv "$work" "$dest"
# Older trees of this architecture were built from an older script.
for old in "$cache"/rootfs-"$arch"-*; do
  case "$old" in "$dest"|*.log|*.partial) continue ;; esac
  [ -d "$old" ] && rm -rf "$old"
done
log "built in $(( $(date +%s) - start )) s: $dest"
echo "$dest"
