"""The contacts room's Alembic branch (``contacts``).

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
