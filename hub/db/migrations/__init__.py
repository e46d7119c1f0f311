"""Alembic's environment for the hub database (``env.py``); the hub room's revisions are in ``versions/``."""
