"""Hub storage: SQLAlchemy 2 Core on SQLite (default) or PostgreSQL (by URL)."""

from hub.db.engine import make_engine
from hub.db.migrate import schema_problem, status, upgrade

__all__ = ["make_engine", "schema_problem", "status", "upgrade"]
