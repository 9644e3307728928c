"""Open a collector database from a URL: `sqlite:///path` (WAL) or `postgresql://…` (psycopg 3)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from collector.storage.migrations import migrate
from contract.errors import UsageError

log = logging.getLogger(__name__)


class DatabaseUrlError(UsageError, ValueError):
    """A --db value this collector cannot use."""


def normalise_url(url: str) -> str:
    """Map `postgresql://` and `postgres://` to the psycopg 3 driver; accept `sqlite:///path` as is."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DatabaseUrlError(f"--db {url!r} is not a database URL (sqlite:///path or postgresql://…)") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        if parsed.drivername != "sqlite":
            raise DatabaseUrlError(f"--db {url!r}: use plain sqlite:///path")
        if not parsed.database or parsed.database == ":memory:":
            raise DatabaseUrlError(f"--db {url!r}: SQLite needs a file path (sqlite:///path/to/collector.db)")
        return url
    raise DatabaseUrlError(f"--db {url!r}: only sqlite:///path and postgresql://… are supported")


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    path = make_url(url).database
    assert path is not None
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transactions from the driver so that BEGIN is ours (see _on_begin).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process; only a power cut can lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # 64 MiB page cache (default 2 MiB): the message_id and series indexes of a busy day stay in memory.
        cursor.execute("PRAGMA cache_size=-65536")
        # Checkpoint every ~40 MiB of WAL, not every 4 MiB: an ingest commit of 2,000 messages writes about
        # 3 MiB, and the index pages it touches each time are then copied to the database once per
        # checkpoint instead of after nearly every commit.
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred read-then-write can fail with SQLITE_BUSY.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """A writer engine and a reader engine (the same one for PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        if self.url.startswith("sqlite"):
            self.dialect = "sqlite"
            self.engine = _sqlite_engine(self.url, immediate=True)
            self.reader = _sqlite_engine(self.url, immediate=False)
        else:
            self.dialect = "postgresql"
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=4, max_overflow=4)
            self.reader = self.engine

    def insert(self, table: Any) -> Any:
        """INSERT construct of this dialect (both have on_conflict_do_nothing / _do_update)."""
        return sqlite.insert(table) if self.dialect == "sqlite" else postgresql.insert(table)

    def migrate(self) -> list[int]:
        with self.engine.begin() as conn:
            return migrate(conn)

    def dispose(self) -> None:
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()


def open_database(url: str, migrate_schema: bool = True) -> Database:
    db = Database(url)
    if migrate_schema:
        applied = db.migrate()
        if applied:
            log.info("database %s migrated to version %d", make_url(db.url).render_as_string(), applied[-1])
    return db
