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


_METRIC_KEY = "site, device_id, name, at, message_id"
_METRIC_COLUMNS = "message_id, site, device_id, kind, at, name, value"


def _metric_values_keyed_by_series(conn: Connection) -> None:
    """metric_values gets the primary key (site, device_id, name, at, message_id) in place of the series index;
    on SQLite it becomes a WITHOUT ROWID table, so that each metric row is one b-tree insert, not two."""
    if conn.dialect.name == "sqlite":
        ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'metric_values'")
        if "WITHOUT ROWID" in str(ddl.scalar() or "").upper():
            return  # created by version 1 from the current definition
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_metric_values_series")
        conn.exec_driver_sql("ALTER TABLE metric_values RENAME TO metric_values_v1")
        schema.metric_values.create(conn)
        # Sorted by the new key: the rows go in as appends, not as random inserts.
        conn.exec_driver_sql(
            f"INSERT OR IGNORE INTO metric_values ({_METRIC_COLUMNS}) "
            f"SELECT {_METRIC_COLUMNS} FROM metric_values_v1 ORDER BY {_METRIC_KEY}"
        )
        conn.exec_driver_sql("DROP TABLE metric_values_v1")
        return
    if inspect(conn).get_pk_constraint("metric_values").get("constrained_columns"):
        return
    conn.exec_driver_sql(f"ALTER TABLE metric_values ADD CONSTRAINT metric_values_pkey PRIMARY KEY ({_METRIC_KEY})")
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_metric_values_series")


def _drop_scores_device_index(conn: Connection) -> None:
    """No query reads scores by (site, device, window_end); every stored message paid for the index."""
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_scores_device_time")


_SCORES_KEY = ["site", "device_id", "message_id"]


def _scores_keyed_by_device(conn: Connection) -> None:
    """scores gets the primary key (site, device_id, message_id) in place of message_id alone, so that one device
    cannot take another's message ids; rows are kept (message ids were unique, so they are under the new key)."""
    if inspect(conn).get_pk_constraint("scores").get("constrained_columns") == _SCORES_KEY:
        return  # created by version 1 from the current definition
    if conn.dialect.name == "postgresql":
        name = inspect(conn).get_pk_constraint("scores")["name"]
        conn.exec_driver_sql(f'ALTER TABLE scores DROP CONSTRAINT "{name}"')
        conn.exec_driver_sql(f"ALTER TABLE scores ADD CONSTRAINT scores_pkey PRIMARY KEY ({', '.join(_SCORES_KEY)})")
        return
    # SQLite cannot change a primary key in place: the table is rebuilt, its index with it.
    columns = ", ".join(c.name for c in schema.scores.columns)
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_scores_site_kind_time")
    conn.exec_driver_sql("ALTER TABLE scores RENAME TO scores_v3")
    schema.scores.create(conn)
    conn.exec_driver_sql(
        f"INSERT INTO scores ({columns}) SELECT {columns} FROM scores_v3 ORDER BY {', '.join(_SCORES_KEY)}"
    )
    conn.exec_driver_sql("DROP TABLE scores_v3")


def _user_sessions(conn: Connection) -> None:
    """users gets session_version (raised to end a user's sessions) and disabled. Existing users start at 0,
    which no cookie from before carries, so everyone logs in once more."""
    have = {c["name"] for c in inspect(conn).get_columns("users")}
    false = "false" if conn.dialect.name == "postgresql" else "0"
    if "session_version" not in have:
        conn.exec_driver_sql("ALTER TABLE users ADD COLUMN session_version BIGINT NOT NULL DEFAULT 0")
    if "disabled" not in have:
        conn.exec_driver_sql(f"ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT {false}")


def _followup(conn: Connection) -> None:
    """users get a role (existing users: staff, aggregates only); followup_events records each change of a
    positive walk-through's follow-up status."""
    if "role" not in {c["name"] for c in inspect(conn).get_columns("users")}:
        conn.exec_driver_sql("ALTER TABLE users ADD COLUMN role VARCHAR(16) NOT NULL DEFAULT 'staff'")
    schema.followup_events.create(conn, checkfirst=True)
    for index in schema.followup_events.indexes:
        index.create(conn, checkfirst=True)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "scores, metrics, devices, dead letters, alerts, users", _initial),
    Migration(2, "metric_values keyed by series and time (SQLite: WITHOUT ROWID)", _metric_values_keyed_by_series),
    Migration(3, "drop the unused scores index on site, device, window_end", _drop_scores_device_index),
    Migration(4, "scores keyed by site, device and message id, not message id alone", _scores_keyed_by_device),
    Migration(5, "users: session version and disabled flag, to revoke sessions", _user_sessions),
    Migration(6, "users: role; followup_events: the screening follow-up and its audit trail", _followup),
)
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
