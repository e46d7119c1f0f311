"""The join every list of devices starts from: each device with where it is and how it last was."""

from __future__ import annotations

from sqlalchemy import Join

from hub.db.schema import devices, households, townships, villages
from hub.db.schema_ops import health_latest


def devices_with_place() -> Join:
    """devices ⋈ households ⋈ villages ⋈ townships, and their latest health (outer: a device
    that never reported still shows). The console's fleet list and bulk selections read this."""
    return (
        devices.join(households, households.c.id == devices.c.household_id)
        .join(villages, villages.c.id == households.c.village_id)
        .join(townships, townships.c.code == villages.c.township_code)
        .outerjoin(health_latest, health_latest.c.device_id == devices.c.id)
    )
