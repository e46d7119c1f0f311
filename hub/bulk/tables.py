"""The bulk room's tables (its migrations: the ``bulk`` branch, hub/bulk/migrations).

A branch of its own: no foreign key reaches the registry or ``commands`` (the
commands table is pruned on its own schedule, and a job's results must outlive
it). A result that is still moving (``sent``) takes its answer from the
device's ack in ``commands`` by a join, as ``config_pushes`` does; when the job
ends every result is frozen here (``ok`` / ``failed`` / ``expired``), so a
device that answers after the job's expiry does not rewrite history.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table

metadata = MetaData()

_BigId = BigInteger().with_variant(Integer(), "sqlite")

ACTIONS = ("arm", "disarm", "snapshot", "config", "maintenance")
# pending: not sent yet; sent: published, no ack; then one of the final three.
STATUSES = ("pending", "sent", "ok", "failed", "expired")
FINAL = ("ok", "failed", "expired")

bulk_jobs = Table(
    "bulk_jobs",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("action", String(16), nullable=False),
    Column("selection", JSON, nullable=False),  # the criteria as chosen (hub.bulk.select.Selection)
    Column("args", JSON, nullable=True),  # config: the document's source; maintenance: the window
    Column("created_ms", BigInteger, nullable=False),
    Column("created_by", String(32), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),  # no ack by then: the device's result is `expired`
    Column("total", Integer, nullable=False),
    Column("finished_ms", BigInteger, nullable=True),  # set once, by the caller that froze the results
    Column("counts", JSON, nullable=True),  # the final count per status
    Index("ix_bulk_jobs_created", "created_ms"),
)

bulk_results = Table(
    "bulk_results",
    metadata,
    Column("job_id", BigInteger, nullable=False),
    Column("device_id", String(20), nullable=False),
    Column("status", String(8), nullable=False),
    Column("command_id", String(36), nullable=True),  # commands.id once sent
    Column("reason", String(200), nullable=True),  # why it failed (not sent, or the device's error)
    Column("sent_ms", BigInteger, nullable=True),
    Column("done_ms", BigInteger, nullable=True),
    PrimaryKeyConstraint("job_id", "device_id", name="pk_bulk_results"),
)

BULK_TABLES = (bulk_jobs, bulk_results)
