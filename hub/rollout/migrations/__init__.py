"""The rollout room's Alembic branch (``rollout``): rollouts, cohorts, devices, audit.

A package only so that a wheel carries the files; Alembic skips ``__init__.py``.
"""
