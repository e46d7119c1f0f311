"""Hub storage: SQLAlchemy 2 Core on SQLite (default) or PostgreSQL (by URL)."""

from hub.db.engine import make_engine
from hub.db.migrate import current_version, upgrade

__all__ = ["current_version", "make_engine", "upgrade"]
