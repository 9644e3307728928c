"""Storage of the collector: one SQLAlchemy Core code path for SQLite (WAL) and PostgreSQL."""

from collector.storage.engine import Database, open_database

__all__ = ["Database", "open_database"]
