"""A village's cards in order: ``xl-provision sd-card`` (one card, or a village's list) and ``labels``.

The order is the registry's household order within the village, the same for
the list of card commands and for the label sheet, so card N gets label N.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from sqlalchemy import Engine, select

from hub.db.schema import devices, households, villages
from provisioning.label_sheet import LabelInfo, write_sheet
from provisioning.sdcard import write_card
from provisioning.state import State


class CardsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Card:
    device_id: str
    household: str
    group: str
    name: str | None
    village: str
    township: str


def village_cards(engine: Engine, village: str, township: str | None = None) -> list[Card]:
    """Active devices of one village, in household order."""
    q = (
        select(
            devices.c.id,
            households.c.id,
            households.c.group_id,
            households.c.name,
            villages.c.name,
            villages.c.township_code,
        )
        .join(households, households.c.id == devices.c.household_id)
        .join(villages, villages.c.id == households.c.village_id)
        .where(villages.c.name == village, devices.c.status == "active")
        .order_by(households.c.id, devices.c.id)
    )
    if township is not None:
        q = q.where(villages.c.township_code == township)
    with engine.connect() as conn:
        rows = [Card(*row) for row in conn.execute(q)]
    townships = {c.township for c in rows}
    if len(townships) > 1:
        raise CardsError(f"village {village!r} exists in townships {sorted(townships)}: pass --township")
    if not rows:
        raise CardsError(f"no active devices in village {village!r}")
    return rows


def install_date(state: State, device_id: str) -> str:
    """The day the device's certificate was issued (what its label and bundle say)."""
    cert = x509.load_pem_x509_certificate((state.bundle_dir(device_id) / "tls" / "device.crt").read_bytes())
    return f"{cert.not_valid_before_utc:%Y-%m-%d}"


def labels_for(state: State, cards: list[Card]) -> list[LabelInfo]:
    return [LabelInfo(c.device_id, c.household, c.group, install_date(state, c.device_id), c.name) for c in cards]


def sd_card(state: State, device_id: str, image: Path, wheels: Path) -> int:
    bundle = state.bundle_dir(device_id)
    if not bundle.is_dir():
        raise CardsError(f"no bundle for {device_id} in {bundle.parent}")
    for line in write_card(image, bundle, wheels):
        print(f"{device_id}: {line}")
    print(f"{device_id}: card ready; put it in the Pi, power on, and run `xl-provision verify {device_id}`")
    return 0


def village_plan(
    state: State, engine: Engine, village: str, township: str | None, image: str, wheels: Path, labels: Path | None
) -> int:
    """Print one command per card in the village's order; write the label sheet if asked."""
    cards = village_cards(engine, village, township)
    sheets = write_sheet(labels_for(state, cards), village, labels) if labels is not None else []
    for path in sheets:
        print(f"# labels: {path}")
    for i, c in enumerate(cards, 1):
        who = c.household + (f" {c.name}" if c.name else "")
        page, pos = divmod(i - 1, 24)
        print(
            f"# card {i}/{len(cards)}: household {who}, group {c.group}; label sheet {page + 1}, "
            f"row {pos // 3 + 1}, column {pos % 3 + 1}"
        )
        print(
            f"xl-provision sd-card {c.device_id} --state {shlex.quote(str(state.root))} "
            f"--image {shlex.quote(image)} --wheels {shlex.quote(str(wheels))}"
        )
    return 0
