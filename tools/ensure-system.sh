#!/usr/bin/env bash
# Make sure the system services the tests and the demo need are installed and
# running. Idempotent; safe to run on every `make test`.
set -euo pipefail

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ "${XL_NEED_BROWSER:-1}" = 1 ] && [ ! -x /usr/bin/chromium ]; then need_apt+=(chromium); fi
if ! command -v systemd-analyze >/dev/null 2>&1; then need_apt+=(systemd); fi
# The emulated Raspberry Pi userland (tests/pi): an arm64 Debian built by debootstrap,
# run through qemu-user-static; mtools and dosfstools for the SD-card image tests.
if [ "${XL_NEED_PI:-1}" = 1 ]; then
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need_apt+=(debootstrap)
  [ -x /usr/bin/qemu-aarch64-static ] || need_apt+=(qemu-user-static)
  command -v update-binfmts >/dev/null 2>&1 || [ -x /usr/sbin/update-binfmts ] || need_apt+=(binfmt-support)
  command -v mcopy >/dev/null 2>&1 || need_apt+=(mtools)
  command -v mkfs.vfat >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.vfat ] || need_apt+=(dosfstools)
  # systemd-nspawn --boot, for first boot under systemd (tests/pi/test_first_boot.py).
  command -v systemd-nspawn >/dev/null 2>&1 || need_apt+=(systemd-container)
fi
# A CJK font so the console's Chinese text renders in the browser tests' screenshots.
if [ "${XL_NEED_BROWSER:-1}" = 1 ] && ! fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy\|noto sans cjk"; then
  need_apt+=(fonts-wqy-microhei)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-system: please install: ${need_apt[*]} (sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "ensure-system: installing ${need_apt[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# PostgreSQL: the machine's own server on 127.0.0.1:5432 (database `test`).
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "ensure-system: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
# The arm64 root filesystem, cached outside the repo (/var/cache/xueliang): about
# 3 minutes the first time, well under a second after. Built here rather than in
# a test, so its build does not count against a test's time limit.
if [ "${XL_NEED_PI:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
  bash "$(dirname "$0")/pi-rootfs.sh" arm64 >/dev/null || echo "ensure-system: could not build the arm64 root filesystem" >&2
fi
# Real clips for the replay tests (Debian's opencv-doc sample data).
bash "$(dirname "$0")/fetch-test-clips.sh" || echo "ensure-system: could not fetch test clips" >&2
exit 0
