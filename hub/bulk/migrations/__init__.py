"""The bulk room's Alembic branch (``bulk``): bulk jobs and their per-device results.

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
