"""The console room's Alembic branch (``console``): accounts, sessions, audit.

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
