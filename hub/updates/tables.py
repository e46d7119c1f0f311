"""The updates room's table (its migrations: the ``updates`` branch, hub/updates/migrations).

One row per device, counters only: what a county pays for on metered 4G is
bytes per SIM, and a row per request would grow with every resumed download.
``refused`` counts requests answered 403/404/416 etc., so a device stuck
asking for a file it cannot have shows up without reading logs.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table

metadata = MetaData()

update_downloads = Table(
    "update_downloads",
    metadata,
    Column("device_id", String(20), primary_key=True),
    Column("bytes", BigInteger, nullable=False),  # response body bytes written to the device
    Column("requests", BigInteger, nullable=False),
    Column("refused", BigInteger, nullable=False),
    Column("first_ms", BigInteger, nullable=False),
    Column("last_ms", BigInteger, nullable=False),
)
