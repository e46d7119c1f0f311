#!/bin/sh
# Xueliang first boot: installs this device's bundle from the SD card's boot
# partition. Run once as root, e.g. from Raspberry Pi Imager's firstrun hook or
# by hand: sudo sh /boot/firmware/xueliang/first-boot.sh
# Device @{device_id} (household @{household_sh}, group @{group}).
set -eu

SRC=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
ETC=/etc/xueliang
ROOT=/opt/xueliang
UPDATE=/var/lib/xueliang/update
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
# The first release, laid out as every later one (docs/ota.md section 3):
# releases/<version>/venv, files/, manifest.json, and current -> releases/<version>.
# Built under a dot name and renamed when complete, as agent/update/install.py does,
# so an interrupted first boot never leaves a release that looks installed.
install -d -m 0755 -o xueliang -g xueliang "$ROOT" "$ROOT/releases"
if [ ! -x "$ROOT/current/venv/bin/xl-agent" ]; then
    PARTIAL="$ROOT/releases/.first-boot.partial"
    rm -rf "$PARTIAL"
    mkdir -p "$PARTIAL/files" "$PARTIAL/model"
    python3 -m venv --system-site-packages "$PARTIAL/venv"
    if ls "$SRC"/wheels/*.whl >/dev/null 2>&1; then
        # Kept in files/: the next update copies unchanged wheels from here instead of downloading them.
        cp "$SRC"/wheels/*.whl "$PARTIAL/files/"
        "$PARTIAL/venv/bin/pip" install --no-cache-dir --no-index --find-links "$PARTIAL/files" "@{pip_requirement}"
    else
        "$PARTIAL/venv/bin/pip" install --no-cache-dir "@{pip_requirement}"
    fi
    VERSION=$("$PARTIAL/venv/bin/python" -I -c 'import agent; print(agent.__version__)')
    FINAL="$ROOT/releases/$VERSION"
    # A venv holds its own path in its scripts' #! lines: name the folder it is renamed to.
    find "$PARTIAL/venv/bin" -maxdepth 1 -type f -exec grep -l "$PARTIAL" {} + | while read -r f; do
        sed -i "s|$PARTIAL/venv|$FINAL/venv|g" "$f"
    done
    sed -i "s|$PARTIAL/venv|$FINAL/venv|g" "$PARTIAL/venv/pyvenv.cfg"
    "$PARTIAL/venv/bin/python" -I - "$PARTIAL" "$VERSION" "@{pip_requirement}" <<'PY'
import json, pathlib, platform, sys
import agent
part, version, requirement = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
wheels = sorted(p.name for p in (part / "files").glob("*.whl"))
ours = [w for w in wheels if w.startswith("xueliang_edge-")]
model = pathlib.Path(agent.__file__).parent / "models" / "person_ssdlite_uint8.tflite"
if model.is_file():
    (part / "model" / model.name).write_bytes(model.read_bytes())
manifest = {  # not signed: this release came on the card, not from the repository
    "format": 1, "version": version, "min_from": None, "released_ms": None,
    "agent": f"agent/{version}/{ours[0] if ours else f'xueliang_edge-{version}-py3-none-any.whl'}",
    "model": f"agent/{version}/{model.name}" if model.is_file() else None,
    "platforms": {platform.machine(): [f"wheels/{w}" for w in wheels if w not in ours]},
    "requirement": requirement, "first_boot": True,
}
(part / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
PY
    sync
    rm -rf "$FINAL"
    mv "$PARTIAL" "$FINAL"
    ln -sfn "releases/$VERSION" "$ROOT/.current.first-boot"
    mv -T "$ROOT/.current.first-boot" "$ROOT/current"
fi
# The guard systemd runs before each start (ExecStartPre): from the installed release,
# standard library only. It writes state.json from the current link at the first start.
GUARD=$("$ROOT/current/venv/bin/python" -I -c 'import agent.update.guard as g; print(g.__file__)')
install -m 0644 -o xueliang -g xueliang "$GUARD" "$ROOT/guard.py"
chown -R xueliang:xueliang "$ROOT"  # the agent installs, switches and prunes releases itself
install -d -m 0750 -o xueliang -g xueliang "$UPDATE" "$UPDATE/tuf"
if [ -f "$SRC/tuf/root.json" ]; then
    # The trust anchor for signed updates (docs/ota.md section 1).
    install -m 0644 -o xueliang -g xueliang "$SRC/tuf/root.json" "$UPDATE/tuf/root.json"
fi
sync

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
