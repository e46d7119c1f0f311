"""The maintenance room's Alembic branch (``maintenance``): windows and snoozes.

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
