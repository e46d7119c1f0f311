"""Alembic's environment: run on the connection ``hub.db.migrate`` hands over.

There is no ``alembic.ini`` and no URL here on purpose: ``xl-hub db upgrade``
opens the connection (one transaction for the whole upgrade, see migrate.py),
and the ``alembic`` command line is not a supported way in.
"""

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `xl-hub db upgrade`, not the alembic command line")

context.configure(
    connection=connection,
    target_metadata=None,  # no autogenerate: every revision is written out by hand
    on_version_apply=config.attributes.get("on_version_apply"),
)
with context.begin_transaction():
    context.run_migrations()
