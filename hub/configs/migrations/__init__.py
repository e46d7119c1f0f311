"""The configs room's Alembic branch (``configs``): the history of config pushes.

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
