"""The clips room's Alembic branch (``clips``): the clip index and fetch requests.

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
