"""One transaction per ingest batch: scores and their metrics once, device registry, rejects."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, delete, func, select

from collector.flatten import flatten, time_bounds
from collector.storage import schema
from collector.storage.engine import Database
from collector.timeutil import to_naive_utc
from edge.wire import DeviceMessage, GaitScreening, Heartbeat, Status

DEAD_LETTER_PAYLOAD_CHARS = 2048


@dataclass(frozen=True)
class Accepted:
    message: DeviceMessage
    payload: str
    received_at: datetime  # naive UTC


@dataclass(frozen=True)
class Rejected:
    topic: str
    reason: str
    detail: str
    payload: bytes
    received_at: datetime  # naive UTC


def write_batch(
    conn: Connection, db: Database, accepted: list[Accepted], rejected: list[Rejected], dead_letter_limit: int
) -> list[Accepted]:
    """Store a batch inside the caller's transaction; returns the messages that were new."""
    new, ends = _insert_scores(conn, db, accepted)
    if new:
        _insert_metrics(conn, db, new, ends)
    if accepted:
        _update_devices(conn, db, accepted)
    if rejected:
        _store_rejects(conn, db, rejected, dead_letter_limit)
    return [item for _, item in new]


_SCORE_COLUMNS = tuple(c.name for c in schema.scores.columns)
# The row tuples below are built in this order.
assert _SCORE_COLUMNS == (
    "message_id", "site", "device_id", "kind", "seq", "window_start", "window_end", "received_at", "label",
    "outcome", "payload",
)  # fmt: skip


def _sqlite_time(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime reads back (always with microseconds)."""
    return value.isoformat(sep=" ", timespec="microseconds")


def _same(value: datetime) -> datetime:
    return value


def _insert_scores(
    conn: Connection, db: Database, accepted: list[Accepted]
) -> tuple[list[tuple[str, Accepted]], dict[str, object]]:
    """Insert new score rows; returns (message id, item) of the new ones and each message's end time as stored."""
    unique: dict[str, Accepted] = {}
    for item in accepted:
        unique.setdefault(str(item.message.message_id), item)
    if not unique:
        return [], {}
    # Rows go to the driver as plain tuples (SQLite gets SQLAlchemy's DateTime text form directly).
    as_db: Callable[[datetime], object] = _sqlite_time if db.dialect == "sqlite" else _same
    received: dict[datetime, object] = {}
    rows: list[tuple[object, ...]] = []
    ends: dict[str, object] = {}
    for mid, item in unique.items():
        msg = item.message
        start, end = time_bounds(msg)
        end_db = as_db(to_naive_utc(end))
        start_db = end_db if start is end else as_db(to_naive_utc(start))
        ends[mid] = end_db
        got = received.get(item.received_at)
        if got is None:
            got = received[item.received_at] = as_db(item.received_at)
        gait = msg if isinstance(msg, GaitScreening) else None
        label, outcome = (gait.predicted, gait.outcome) if gait else (None, None)
        rows.append(
            (mid, msg.site, msg.device_id, msg.kind, msg.seq, start_db, end_db, got, label, outcome, item.payload)
        )
    insert_rows = _insert_scores_sqlite if db.dialect == "sqlite" else _insert_scores_postgresql
    inserted = insert_rows(conn, rows)
    return [(mid, item) for mid, item in unique.items() if mid in inserted], ends


def _insert_scores_postgresql(conn: Connection, rows: list[tuple[object, ...]]) -> set[str]:
    # COPY into a per-connection staging table, then one INSERT … ON CONFLICT DO NOTHING RETURNING: the
    # returned ids are exactly the rows this transaction inserted (replays and another collector's rows drop out).
    columns = ", ".join(_SCORE_COLUMNS)
    conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS scores_incoming (LIKE scores) ON COMMIT DELETE ROWS")
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY scores_incoming ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    result = conn.exec_driver_sql(
        f"INSERT INTO scores ({columns}) SELECT {columns} FROM scores_incoming "
        "ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
    )
    return {r[0] for r in result}


def _insert_scores_sqlite(conn: Connection, rows: list[tuple[object, ...]]) -> set[str]:
    # The write transaction holds SQLite's write lock (BEGIN IMMEDIATE), so what is absent now is inserted
    # by us alone; a plain multi-row INSERT is several times faster than a RETURNING statement per row.
    ids = [str(row[0]) for row in rows]
    existing: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        found = conn.exec_driver_sql(f"SELECT message_id FROM scores WHERE message_id IN ({marks})", tuple(chunk))
        existing.update(r[0] for r in found)
    fresh = [row for row in rows if row[0] not in existing]
    _sqlite_insert_rows(conn, "scores", _SCORE_COLUMNS, [value for row in fresh for value in row])
    return {str(row[0]) for row in fresh}


# SQLite 3.32+ binds up to 32766 parameters per statement; a few hundred rows per statement is the sweet spot.
_SQLITE_ROWS_PER_STATEMENT = 256


def _sqlite_insert_rows(conn: Connection, table: str, columns: tuple[str, ...], values: list[object]) -> None:
    """INSERT rows, given as one flat list of their values, as multi-row VALUES statements of up to 256 rows.

    `executemany` runs one statement step per row and gives up the GIL around each step; with the MQTT
    network thread busy, every re-take of the GIL waits on that thread, which halved the write rate. One
    step per 256 rows leaves about 1/256 of those hand-overs and also skips the per-row binding overhead.
    """
    width = len(columns)
    if not values:
        return
    one = "(" + ", ".join("?" * width) + ")"
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    step = _SQLITE_ROWS_PER_STATEMENT * width
    full_sql = head + ", ".join([one] * _SQLITE_ROWS_PER_STATEMENT)
    for start in range(0, len(values), step):
        chunk = values[start : start + step]
        sql = full_sql if len(chunk) == step else head + ", ".join([one] * (len(chunk) // width))
        conn.exec_driver_sql(sql, tuple(chunk))


_METRIC_COLUMNS = ("message_id", "site", "device_id", "kind", "at", "name", "value")


def _insert_metrics(conn: Connection, db: Database, new: list[tuple[str, Accepted]], ends: dict[str, object]) -> None:
    # The hot path (several rows per message): multi-row VALUES of plain values on SQLite, COPY on
    # PostgreSQL; no per-row SQLAlchemy parameter processing.
    if db.dialect == "sqlite":
        values: list[object] = []
        for mid, item in new:
            msg = item.message
            site, device_id, kind, at = msg.site, msg.device_id, msg.kind, ends[mid]
            for name, value in flatten(msg).items():
                values += (mid, site, device_id, kind, at, name, value)
        _sqlite_insert_rows(conn, "metric_values", _METRIC_COLUMNS, values)
        return
    rows: list[tuple[object, ...]] = []
    for mid, item in new:
        msg = item.message
        head = (mid, msg.site, msg.device_id, msg.kind, ends[mid])
        rows.extend((*head, name, value) for name, value in flatten(msg).items())
    if not rows:
        return
    columns = ", ".join(_METRIC_COLUMNS)
    # PostgreSQL: COPY inside the same transaction is an order of magnitude faster than executemany.
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY metric_values ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _update_devices(conn: Connection, db: Database, accepted: list[Accepted]) -> None:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for item in accepted:
        msg = item.message
        key = (msg.site, msg.device_id)
        row = latest.setdefault(
            key,
            {
                "site": msg.site,
                "device_id": msg.device_id,
                "first_seen": item.received_at,
                "last_seen": item.received_at,
            },
        )
        row["last_seen"] = max(row["last_seen"], item.received_at)
        if isinstance(msg, Status):
            at = to_naive_utc(msg.at)
            if "state_at" not in row or at >= row["state_at"]:
                row.update(state=msg.state, state_at=at)
                if msg.role:
                    row["role"] = msg.role
        elif isinstance(msg, Heartbeat):
            at = to_naive_utc(msg.at)
            if "last_heartbeat" not in row or at >= row["last_heartbeat"]:
                row.update(
                    last_heartbeat=at,
                    fps=min(msg.fps.values()) if msg.fps else None,
                    fps_stages=json.dumps(msg.fps, sort_keys=True),
                    outbox_depth=msg.outbox_depth,
                    outbox_dropped=msg.outbox_dropped,
                    frames_dropped=msg.frames_dropped,
                    camera_state=msg.camera_state,
                    backend=msg.backend,
                    models=json.dumps([m.model_dump() for m in msg.models]),
                )
        else:
            row.setdefault("role", msg.kind)
    table = schema.devices
    excluded_cols: tuple[str, ...] = ("role", "state", "state_at", "last_heartbeat", "fps", "fps_stages")
    excluded_cols += ("outbox_depth", "outbox_dropped", "frames_dropped", "camera_state", "backend", "models")
    # Rows in one executemany must share keys; group by key set.
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in latest.values():
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for keys, rows in groups.items():
        stmt = db.insert(table)
        updates: dict[str, Any] = {}
        # last_seen only moves forward (two collectors may commit out of order).
        updates["last_seen"] = _greatest(db, table.c.last_seen, stmt.excluded.last_seen)
        for col in excluded_cols:
            if col not in keys:
                continue
            if col in {"state", "state_at"}:
                newer = (table.c.state_at.is_(None)) | (stmt.excluded.state_at >= table.c.state_at)
                updates[col] = _case(newer, stmt.excluded[col], table.c[col])
            elif col == "role":
                updates[col] = stmt.excluded.role
            else:
                newer = (table.c.last_heartbeat.is_(None)) | (stmt.excluded.last_heartbeat >= table.c.last_heartbeat)
                updates[col] = _case(newer, stmt.excluded[col], table.c[col])
        conn.execute(stmt.on_conflict_do_update(index_elements=["site", "device_id"], set_=updates), rows)


def _greatest(db: Database, a: Any, b: Any) -> Any:
    return func.max(a, b) if db.dialect == "sqlite" else func.greatest(a, b)


def _case(cond: Any, then: Any, otherwise: Any) -> Any:
    return case((cond, then), else_=otherwise)


def _store_rejects(conn: Connection, db: Database, rejected: list[Rejected], limit: int) -> None:
    rows = [
        {
            "received_at": r.received_at,
            "topic": r.topic[:256],
            "reason": r.reason[:32],
            "detail": r.detail[:500],
            "payload_size": len(r.payload),
            "payload": r.payload[:DEAD_LETTER_PAYLOAD_CHARS].decode("utf-8", errors="replace"),
        }
        for r in rejected
    ]
    conn.execute(schema.dead_letters.insert(), rows)
    # Bounded: keep the newest `limit` dead letters.
    newest = conn.execute(select(func.max(schema.dead_letters.c.id))).scalar() or 0
    conn.execute(delete(schema.dead_letters).where(schema.dead_letters.c.id <= newest - limit))
    counts = Counter(r.reason[:32] for r in rejected)
    last = max(r.received_at for r in rejected)
    stmt = db.insert(schema.reject_counts)
    stmt = stmt.on_conflict_do_update(
        index_elements=["reason"], set_={"count": schema.reject_counts.c.count + stmt.excluded.count, "last_at": last}
    )
    conn.execute(stmt, [{"reason": k, "count": v, "last_at": last} for k, v in counts.items()])
