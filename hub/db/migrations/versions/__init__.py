"""The hub room's Alembic branch (``hub``): registry and operational tables.

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
