"""Write a device's SD-card bundle (copied to the boot partition as ``xueliang/``).

::

    agent.yaml               identity, broker URL, TLS paths on the Pi, schedule, GPIO
    tls/ca.crt device.crt device.key (0600 here; FAT on the card, so first-boot deletes it)
    system/*                 systemd unit and drop-ins, config.txt fragment
    tuf/root.json            the update repository's trusted root (when the state has one; docs/ota.md)
    first-boot.sh            installs all of the above on the Pi
    label.svg                printable QR label

Bundles are written into a hidden staging folder and renamed into place only
after the registry commit, so a crash never leaves a bundle for a device the
hub does not know (or a half-written one).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from provisioning.label import label_svg
from provisioning.pki import write_private
from provisioning.templates import render

STAGING_PREFIX = ".staging-"
PIP_REQUIREMENT = "xueliang-edge[agent,pi]"


@dataclass(frozen=True)
class DeviceSpec:
    township: str  # 2-digit code
    township_name: str
    village: str
    household: str
    group: str
    lat: float | None = None
    lon: float | None = None
    name: str | None = None
    phone: str | None = None
    leader: bool = False
    armed_from: str | None = None
    armed_to: str | None = None


def _yaml_str(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar, whatever it contains.
    return json.dumps(value, ensure_ascii=False)


def agent_yaml(device_id: str, spec: DeviceSpec, broker_url: str, issued_date: str, update_url: str) -> str:
    return render(
        "agent.yaml",
        {
            "device_id": device_id,
            "household": _yaml_str(spec.household),
            "group": spec.group,
            "issued_date": issued_date,
            "broker_url": broker_url,
            "update_url": update_url,
            "armed_from": spec.armed_from or "22:00",
            "armed_to": spec.armed_to or "06:00",
        },
    )


def first_boot_sh(device_id: str, spec: DeviceSpec) -> str:
    return render(
        "first-boot.sh",
        {
            "device_id": device_id,
            "household_sh": spec.household,
            "group": spec.group,
            "pip_requirement": PIP_REQUIREMENT,
        },
    )


def write_bundle(
    dest: Path,
    device_id: str,
    spec: DeviceSpec,
    *,
    key_pem: bytes,
    cert_pem: bytes,
    ca_pem: bytes,
    broker_url: str,
    update_url: str,
    pi_files: dict[str, str],
    issued_date: str,
    update_root: bytes | None = None,
) -> None:
    """Write a complete bundle into ``dest`` (which must not exist yet)."""
    (dest / "tls").mkdir(parents=True)
    (dest / "system").mkdir()
    write_private(dest / "tls" / "device.key", key_pem)
    (dest / "tls" / "device.crt").write_bytes(cert_pem)
    (dest / "tls" / "ca.crt").write_bytes(ca_pem)
    (dest / "agent.yaml").write_text(agent_yaml(device_id, spec, broker_url, issued_date, update_url), encoding="utf-8")
    if update_root is not None:
        # A device trusts updates signed under this root and the roots it signs after it.
        (dest / "tuf").mkdir()
        (dest / "tuf" / "root.json").write_bytes(update_root)
    for rel, text in pi_files.items():
        (dest / rel).write_text(text, encoding="utf-8")
    script = dest / "first-boot.sh"
    script.write_text(first_boot_sh(device_id, spec), encoding="utf-8")
    os.chmod(script, 0o755)
    label = label_svg(device_id, spec.household, spec.group, issued_date, spec.name)
    (dest / "label.svg").write_text(label, encoding="utf-8")


def staging_dir(bundles: Path, device_id: str) -> Path:
    return bundles / f"{STAGING_PREFIX}{device_id}"


def promote(bundles: Path, device_id: str) -> None:
    """Move a staged bundle into place, replacing an older one (a reissue)."""
    staged = staging_dir(bundles, device_id)
    final = bundles / device_id
    if final.exists():
        old = bundles / f"{STAGING_PREFIX}old-{device_id}"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        staged.rename(final)
        shutil.rmtree(old)
    else:
        staged.rename(final)


def discard_staging(bundles: Path) -> None:
    """Remove leftovers of an interrupted run (never promoted, so never registered)."""
    if bundles.is_dir():
        for entry in bundles.iterdir():
            if entry.name.startswith(STAGING_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
