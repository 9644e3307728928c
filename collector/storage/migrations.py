"""Versioned schema migrations: a list of steps, each applied once and recorded in schema_migrations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, func, inspect, select

from collector.storage import schema
from collector.timeutil import utcnow_naive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _initial(conn: Connection) -> None:
    schema.metadata.create_all(conn, checkfirst=True)


MIGRATIONS: tuple[Migration, ...] = (Migration(1, "scores, metrics, devices, dead letters, alerts, users", _initial),)
LATEST = MIGRATIONS[-1].version

# Any constant works; it only has to be the same for every collector sharing one PostgreSQL database.
_PG_LOCK_KEY = 0x45444753


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_migrations"):
        return 0
    version = conn.execute(select(func.max(schema.schema_migrations.c.version))).scalar()
    return int(version or 0)


def migrate(conn: Connection) -> list[int]:
    """Bring the schema to LATEST inside the caller's transaction; returns the versions applied."""
    if conn.dialect.name == "postgresql":
        # Serialise collectors starting at the same time against one database.
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
    schema.schema_migrations.create(conn, checkfirst=True)
    have = current_version(conn)
    if have > LATEST:
        raise RuntimeError(f"database schema version {have} is newer than this collector ({LATEST}); upgrade it")
    applied = []
    for step in MIGRATIONS:
        if step.version <= have:
            continue
        log.info("applying schema migration %d: %s", step.version, step.description)
        step.apply(conn)
        conn.execute(
            schema.schema_migrations.insert().values(
                version=step.version, description=step.description, applied_at=utcnow_naive()
            )
        )
        applied.append(step.version)
    return applied
