"""The contacts table: the people an escalation notifies beyond the household buzzers.

Phone numbers are personal information (PIPL): the row keeps only what a
delivery needs (a name to greet, the role and scope that select the contact,
the phone the county's SMS/voice gateway dials, the MQTT device of a 治安户长
who has one) and nothing else: no ID card number, no address. The phone is
read by the webhook sink when it sends, so it never sits in an outbox row.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table

metadata = MetaData()

# 治安户长, 网格员, the township's duty officer, the county 综治中心 duty desk.
ROLES = ("security_head", "grid_worker", "township_duty", "county_desk")

contacts = Table(
    "contacts",
    metadata,
    Column("id", String(32), primary_key=True),  # the county's own key for the person: re-imports match on it
    Column("name", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("phone", String(16), nullable=True),  # digits only (a leading + kept); None: reached by device only
    Column("township_code", String(2), nullable=True),
    Column("village_id", Integer, nullable=True),
    Column("device_id", String(20), nullable=True),  # a 治安户长's own device, for the MQTT channel
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("updated_ms", BigInteger, nullable=False),
    Column("updated_by", String(64), nullable=True),
    Index("ix_contacts_role_village", "role", "village_id"),
    Index("ix_contacts_device", "device_id"),
)
