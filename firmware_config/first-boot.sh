#!/bin/sh
# Xueliang first boot: installs this device's bundle from the SD card's boot
# partition. Run once as root, e.g. from Raspberry Pi Imager's firstrun hook or
# by hand: sudo sh /boot/firmware/xueliang/first-boot.sh
# Device @{device_id} (household @{household_sh}, group @{group}).
set -eu

SRC=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
ETC=/etc/xueliang
VENV=/opt/xueliang/venv
DONE=/var/lib/xueliang/.first-boot-done

if [ "$(id -u)" -ne 0 ]; then
    echo "first-boot: must run as root" >&2
    exit 1
fi
if [ -e "$DONE" ]; then
    echo "first-boot: already done ($DONE); nothing to do"
    exit 0
fi

# A system user that can use the camera and GPIO but nothing else.
if ! id xueliang >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/xueliang --shell /usr/sbin/nologin --user-group xueliang
fi
for grp in video gpio; do
    getent group "$grp" >/dev/null || groupadd --system "$grp"
done
usermod -a -G video,gpio xueliang

install -d -m 0755 "$ETC"
install -d -m 0750 -o root -g xueliang "$ETC/tls"
install -d -m 0750 -o xueliang -g xueliang /var/lib/xueliang
install -m 0644 "$SRC/tls/ca.crt" "$ETC/tls/ca.crt"
install -m 0644 "$SRC/tls/device.crt" "$ETC/tls/device.crt"
# The agent refuses a key that anyone but its owner can read.
install -m 0600 -o xueliang -g xueliang "$SRC/tls/device.key" "$ETC/tls/device.key"
install -m 0640 -o root -g xueliang "$SRC/agent.yaml" "$ETC/agent.yaml"

install -d /etc/systemd/system.conf.d /etc/systemd/journald.conf.d /etc/systemd/timesyncd.conf.d
install -m 0644 "$SRC/system/xueliang-agent.service" /etc/systemd/system/xueliang-agent.service
install -m 0644 "$SRC/system/watchdog.conf" /etc/systemd/system.conf.d/xueliang-watchdog.conf
install -m 0644 "$SRC/system/journald.conf" /etc/systemd/journald.conf.d/xueliang.conf
install -m 0644 "$SRC/system/timesyncd.conf" /etc/systemd/timesyncd.conf.d/xueliang.conf

BOOTCFG=/boot/firmware/config.txt
[ -f "$BOOTCFG" ] || BOOTCFG=/boot/config.txt
if ! grep -q '^# --- xueliang begin' "$BOOTCFG"; then
    cat "$SRC/system/config.txt" >> "$BOOTCFG"
fi

# picamera2 and libcamera come from apt (Pi OS has them preinstalled); the venv
# sees them through --system-site-packages (pip cannot build libcamera).
pkgs=""
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || pkgs="python3-venv"
if ! python3 -c 'import picamera2' >/dev/null 2>&1; then
    if apt-cache show python3-picamera2 >/dev/null 2>&1; then
        pkgs="$pkgs python3-picamera2"
    else
        # Not Raspberry Pi OS (no archive.raspberrypi.com in apt's sources): install the
        # agent anyway, so it comes up, reports its health and can be fixed remotely;
        # `xl-agent check` fails its camera line until the package is there.
        echo "first-boot: WARNING: python3-picamera2 is not in this system's apt sources; the camera will not work until it is installed" >&2
    fi
fi
if [ -n "$pkgs" ]; then
    # A freshly written image may have no package lists yet.
    apt-get install -y --no-install-recommends $pkgs || { apt-get update && apt-get install -y --no-install-recommends $pkgs; }
fi
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv --system-site-packages "$VENV"
fi
if ls "$SRC"/wheels/*.whl >/dev/null 2>&1; then
    "$VENV/bin/pip" install --no-index --find-links "$SRC/wheels" "@{pip_requirement}"
else
    "$VENV/bin/pip" install "@{pip_requirement}"
fi

# /run/systemd/system exists only while systemd runs as PID 1; without it (a
# chroot or an image being prepared) systemctl can only do its offline work.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl restart systemd-journald systemd-timesyncd || true
fi
systemctl enable xueliang-agent.service

# The boot partition is FAT (no permissions): do not leave the key readable there.
rm -f "$SRC/tls/device.key"
touch "$DONE"
if [ "${XL_FIRST_BOOT_NO_REBOOT:-}" = 1 ]; then
    # Run from firstrun.sh (xl-provision sd-card): systemd reboots once that exits.
    echo "first-boot: done; the reboot enables the camera and the hardware watchdog"
elif [ ! -d /run/systemd/system ]; then
    echo "first-boot: done; not running under systemd, so not rebooting"
else
    echo "first-boot: done; rebooting to enable the camera and the hardware watchdog"
    systemctl reboot
fi
