"""The health room's Alembic branch (``health``): presence history for flapping, recovery notices.

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
