"""The updates room's Alembic branch (``updates``): bytes served per device.

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
