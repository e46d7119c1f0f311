"""The escalation room's Alembic branch (``escalation``).

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
