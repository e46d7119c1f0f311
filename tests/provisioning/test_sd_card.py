"""``xl-provision sd-card`` and ``labels`` on a small image laid out like Raspberry Pi OS's.

The first boot itself, from what this writes, runs in tests/pi/test_first_boot.py.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from provisioning.cli import main
from provisioning.label import qr_payload
from provisioning.sdcard import FIRSTRUN, HOOK, OUR_STEP, partitions
from tests.support.provisioned_county import build_county, spec
from tests.support.sd_image import (
    BOOT_START,
    CMDLINE,
    IMAGER_FIRSTRUN,
    fat_extract,
    fat_read,
    make_image,
    root_untouched,
)


@pytest.fixture(scope="module")
def village(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A county with 26 households in 和平村 (two label sheets) and one elsewhere."""
    root = tmp_path_factory.mktemp("sd")
    c = build_county(root, households=tuple((f"HH{i:04d}", f"g{i // 10}") for i in range(26)))
    from provisioning.enroll import Enroller

    Enroller(c.state, c.engine).run([(None, spec("XX0001", "g9", village="红星村"))])
    wheels = root / "wheels"
    wheels.mkdir()
    # The real wheel set comes from tools/pi-wheels.sh (tests/pi uses it); here only its shape matters.
    (wheels / "xueliang_edge-0.1.0-py3-none-any.whl").write_bytes(b"PK\x05\x06" + bytes(18))
    yield c, wheels
    c.engine.dispose()


def test_writes_the_bundle_and_hooks_first_boot(village, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c, wheels = village
    dev = c.devices["HH0003"]
    image = make_image(tmp_path / "raspios.img")
    assert [(p.number, p.type_id, p.offset) for p in partitions(image)][:1] == [(1, 0x0C, BOOT_START * 512)]
    rc = main(["sd-card", dev.device_id, "--state", str(c.state.root), "--image", str(image), "--wheels", str(wheels)])
    assert rc == 0
    for rel in (
        "first-boot.sh",
        "agent.yaml",
        "tls/ca.crt",
        "tls/device.crt",
        "tls/device.key",
        "system/xueliang-agent.service",
        "system/config.txt",
    ):
        assert fat_read(image, f"xueliang/{rel}") == (dev.bundle / rel).read_bytes(), rel
    assert fat_read(image, "xueliang/wheels/xueliang_edge-0.1.0-py3-none-any.whl").startswith(b"PK")
    cmdline = fat_read(image, "cmdline.txt").decode()
    assert cmdline == CMDLINE.strip() + " " + HOOK + "\n" and cmdline.count("\n") == 1  # still one line
    assert fat_read(image, "firstrun.sh").decode() == FIRSTRUN
    assert root_untouched(image)

    # Writing the card again (a reissue) replaces the bundle and does not hook first boot twice.
    assert (
        main(["sd-card", dev.device_id, "--state", str(c.state.root), "--image", str(image), "--wheels", str(wheels)])
        == 0
    )
    again = fat_read(image, "cmdline.txt").decode()
    assert again.count("systemd.run=") == 1
    # The firstrun hook as the Pi runs it: it calls first-boot.sh, then removes itself from cmdline.txt.
    boot = tmp_path / "boot"
    fat_extract(image, boot)
    assert (boot / "xueliang" / "first-boot.sh").is_file() and OUR_STEP in (boot / "firstrun.sh").read_text()
    sed = FIRSTRUN.splitlines()[-2].replace("/boot/firmware/cmdline.txt", shlex.quote(str(boot / "cmdline.txt")))
    subprocess.run(["bash", "-c", sed], check=True)
    assert (boot / "cmdline.txt").read_text() == CMDLINE


def test_joins_imagers_own_first_boot_script(village, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c, wheels = village
    image = make_image(tmp_path / "custom.img", imager_customised=True)
    before = fat_read(image, "cmdline.txt")
    assert (
        main(
            [
                "sd-card",
                c.devices["HH0004"].device_id,
                "--state",
                str(c.state.root),
                "--image",
                str(image),
                "--wheels",
                str(wheels),
            ]
        )
        == 0
    )
    assert fat_read(image, "cmdline.txt") == before  # Imager's hook already runs firstrun.sh
    lines = fat_read(image, "firstrun.sh").decode().splitlines()
    assert lines.index(OUR_STEP) == lines.index("rm -f /boot/firmware/firstrun.sh") - 1
    assert [line for line in lines if line != OUR_STEP] == IMAGER_FIRSTRUN.splitlines()


def test_refuses_what_is_not_a_pi_card(village, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    c, wheels = village
    dev = c.devices["HH0005"].device_id
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1 << 20))
    assert main(["sd-card", dev, "--state", str(c.state.root), "--image", str(blank), "--wheels", str(wheels)]) == 1
    assert "no FAT boot partition" in capsys.readouterr().err
    image = make_image(tmp_path / "ok.img")
    empty = tmp_path / "nowheels"
    empty.mkdir()
    assert main(["sd-card", dev, "--state", str(c.state.root), "--image", str(image), "--wheels", str(empty)]) == 1
    assert "tools/pi-wheels.sh" in capsys.readouterr().err
    assert fat_read(image, "cmdline.txt").decode() == CMDLINE  # nothing written


def _decode_qr_codes(png: Path) -> list[tuple[float, float, str]]:
    """(row centre, column centre, payload) of every QR code found on a sheet, by OpenCV's detector."""
    img = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    ok, texts, points, _ = cv2.QRCodeDetector().detectAndDecodeMulti(img)
    assert ok
    return [(float(np.mean(p[:, 1])), float(np.mean(p[:, 0])), t) for t, p in zip(texts, points, strict=True) if t]


def test_village_plan_and_label_sheet_agree(village, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    c, wheels = village
    sheet = tmp_path / "和平村.png"
    assert (
        main(
            [
                "sd-card",
                "--village",
                "和平村",
                "--state",
                str(c.state.root),
                "--image",
                "/dev/sdX",
                "--wheels",
                str(wheels),
                "--labels",
                str(sheet),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    commands = [line for line in out if line.startswith("xl-provision sd-card ")]
    households = sorted(f"HH{i:04d}" for i in range(26))
    ids = [c.devices[h].device_id for h in households]
    assert [cmd.split()[2] for cmd in commands] == ids  # one command per card, in household order
    assert all("--image /dev/sdX" in cmd for cmd in commands)
    assert "card 25/26: household HH0024" in "\n".join(out) and "label sheet 2, row 1, column 1" in "\n".join(out)
    pages = [sheet, sheet.with_name("和平村-2.png")]
    assert all(p.is_file() for p in pages)
    found: list[str] = []
    for page in pages:
        codes = sorted(_decode_qr_codes(page), key=lambda t: (round(t[0] / 300), t[1]))  # rows, then columns
        found += [t for _, _, t in codes]
    expected = [qr_payload(c.devices[h].device_id, h, c.devices[h].group) for h in households]
    assert found == expected  # label N is card N, and every QR code reads back

    pdf = tmp_path / "sheet.pdf"
    assert main(["labels", "--village", "和平村", "--state", str(c.state.root), "--out", str(pdf)]) == 0
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") >= 0
    assert b"/Count 2" in data  # two A4 pages for 26 labels
