"""The forwarding room's Alembic branch (``forward``): the outbox tables.

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
