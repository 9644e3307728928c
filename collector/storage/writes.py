"""One transaction per ingest batch: scores and their metrics once, device registry, rejects.

Rows are built by `BatchBuilder` as each message is validated and written by `write_prepared`, which may
run in another process (see collector/ingest_writer.py).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any, NamedTuple

from sqlalchemy import Connection, case, delete, func, select

from collector.flatten import flatten
from collector.storage import schema
from collector.storage.engine import Database
from collector.timeutil import to_naive_utc
from contract.wire import DeviceMessage, Heartbeat, Status, Window, WireError, decode, topic_for

log = logging.getLogger(__name__)

DEAD_LETTER_PAYLOAD_CHARS = 2048


@dataclass(frozen=True)
class Rejected:
    topic: str
    reason: str
    detail: str
    payload: bytes
    received_at: datetime  # naive UTC


_SCORE_COLUMNS = tuple(c.name for c in schema.scores.columns)
# The row tuples below are built in this order.
assert _SCORE_COLUMNS == (
    "message_id", "site", "device_id", "kind", "seq", "window_start", "window_end", "received_at", "label",
    "outcome", "payload",
)  # fmt: skip
_METRIC_COLUMNS = ("message_id", "site", "device_id", "kind", "at", "name", "value")


class Facts(NamedTuple):
    """What the alert rules read of one stored message, rebuilt from its rows: the message need not be kept."""

    message_id: str
    site: str
    device_id: str
    kind: str
    start: datetime  # naive UTC; status and heartbeat are instants (start == end)
    end: datetime
    metrics: dict[str, float]  # the message flattened (collector.flatten): the names the rules read
    predicted: str | None  # gait screening only
    outcome: str | None


@dataclass(slots=True)
class PreparedBatch:
    """The rows of one ingest batch as plain values: built where payloads are validated, written elsewhere.

    Everything in it pickles cheaply (tuples of str, int, float, naive datetime), so the ingest process can
    hand it to its writer process.
    """

    scores: list[tuple[Any, ...]]  # one row per distinct message_id, in _SCORE_COLUMNS order
    metrics: list[Any]  # name, value, name, value, ... of every score row in turn
    metric_counts: list[int]  # (name, value) pairs of each score row
    devices: list[dict[str, Any]]  # device registry upserts, one per device
    rejected: list[Rejected]

    def facts(self, indexes: list[int]) -> list[Facts]:
        """What the alert rules read of the given score rows, rebuilt from the rows themselves (so nothing
        extra crosses the pipe to the writer)."""
        offsets = list(accumulate(self.metric_counts, initial=0))
        out = []
        for i in indexes:
            mid, site, device_id, kind, _seq, start, end, _received, label, outcome, _payload = self.scores[i]
            pairs = self.metrics[2 * offsets[i] : 2 * offsets[i + 1]]
            metrics = dict(zip(pairs[::2], pairs[1::2], strict=True))
            out.append(Facts(mid, site, device_id, kind, _datetime(start), _datetime(end), metrics, label, outcome))
        return out

    def subset(self, indexes: list[int]) -> PreparedBatch:
        """The given score rows alone, with their metrics (to split a batch that fails to store)."""
        offsets = list(accumulate(self.metric_counts, initial=0))
        metrics: list[Any] = []
        for i in indexes:
            metrics += self.metrics[2 * offsets[i] : 2 * offsets[i + 1]]
        counts = [self.metric_counts[i] for i in indexes]
        return PreparedBatch([self.scores[i] for i in indexes], metrics, counts, [], [])


def _datetime(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _sqlite_time(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime reads back (always with microseconds)."""
    return value.isoformat(sep=" ", timespec="microseconds")


def _same(value: datetime) -> datetime:
    return value


_UTC_ZERO = timedelta(0)


class BatchBuilder:
    """Rows of a batch, one validated message at a time, so that the message objects need not be kept."""

    def __init__(self, dialect: str) -> None:
        # SQLite gets SQLAlchemy's DateTime text form directly; PostgreSQL (COPY) takes naive datetimes.
        self._as_db: Callable[[datetime], object] = _sqlite_time if dialect == "sqlite" else _same
        self._seen: dict[tuple[str, str, str], str] = {}  # (site, device_id, message_id) -> payload
        self._received: dict[datetime, object] = {}
        self._registry = _Registry()
        self.scores: list[tuple[Any, ...]] = []
        self._metrics: list[Any] = []
        self._counts: list[int] = []
        self._rejected: list[Rejected] = []

    def __len__(self) -> int:
        return len(self.scores) + len(self._rejected)

    def add(self, msg: DeviceMessage, payload: str, received_at: datetime) -> bool:
        """Add a message's rows; False if it is already in this batch. Raises (and adds nothing) when the message
        cannot be turned into rows: WireError('conflict') when its device sent its message_id with other content."""
        mid = str(msg.message_id)
        key = (msg.site, msg.device_id, mid)
        seen = self._seen.get(key)
        if seen is not None:
            if seen != payload:
                raise WireError("conflict", _conflict_detail(*key))
            return False  # a duplicate changes nothing, not even the registry's last_seen
        as_db = self._as_db
        if isinstance(msg, Window):
            end, start = _naive(msg.window_end), _naive(msg.window_start)
        else:
            end = start = _naive(msg.at)  # type: ignore[attr-defined]  # status and heartbeat carry `at`
        end_db, start_db = as_db(end), as_db(start)
        got = self._received.get(received_at)
        if got is None:
            got = self._received[received_at] = as_db(received_at)
        # A screening role's message (gait) carries a predicted class and an outcome; windows carry neither.
        label, outcome = getattr(msg, "predicted", None), getattr(msg, "outcome", None)
        flat = flatten(msg)
        self._registry.add(msg, received_at)
        self._seen[key] = payload
        self.scores.append(
            (mid, msg.site, msg.device_id, msg.kind, msg.seq, start_db, end_db, got, label, outcome, payload)
        )
        metrics = self._metrics
        for name, value in flat.items():
            metrics += (name, value)
        self._counts.append(len(flat))
        return True

    def reject(self, item: Rejected) -> None:
        self._rejected.append(item)

    def build(self) -> PreparedBatch:
        return PreparedBatch(self.scores, self._metrics, self._counts, self._registry.rows(), self._rejected)


class _Registry:
    """The device registry rows of a batch's messages, one per device: the latest state and heartbeat win."""

    def __init__(self) -> None:
        self._devices: dict[tuple[str, str], dict[str, Any]] = {}

    def rows(self) -> list[dict[str, Any]]:
        return list(self._devices.values())

    def add(self, msg: DeviceMessage, received_at: datetime) -> None:
        key = (msg.site, msg.device_id)
        row = self._devices.get(key)
        if row is None:
            row = self._devices[key] = {
                "site": msg.site,
                "device_id": msg.device_id,
                "first_seen": received_at,
                "last_seen": received_at,
            }
        elif received_at > row["last_seen"]:
            row["last_seen"] = received_at
        if isinstance(msg, Status):
            # Never later than its arrival: a device clock running ahead would otherwise hold the registry until
            # the device's own later messages catch up with it.
            at = min(to_naive_utc(msg.at), received_at)
            if "state_at" not in row or at >= row["state_at"]:
                row.update(state=msg.state, state_at=at)
                if msg.role:
                    row["role"] = msg.role
        elif isinstance(msg, Heartbeat):
            at = min(to_naive_utc(msg.at), received_at)
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
        elif "role" not in row:
            row["role"] = msg.kind


def _registry_of(scores: list[tuple[Any, ...]], rows: list[int]) -> list[dict[str, Any]]:
    """The registry rows of the given score rows alone, rebuilt from their stored payloads."""
    registry = _Registry()
    for i in rows:
        row = scores[i]
        try:
            msg = decode(row[-1].encode())
        except WireError as exc:  # it was valid when it was received; nothing else can be done with it here
            log.error("message %s: its payload no longer validates, the registry skips it: %s", row[0], exc)
            continue
        registry.add(msg, _datetime(row[7]))
    return registry.rows()


def _naive(value: datetime) -> datetime:
    # Wire times are aware; UTC ones (all that devices send) need no conversion, only the zone dropped.
    if value.utcoffset() == _UTC_ZERO:
        return value.replace(tzinfo=None)
    return to_naive_utc(value)


def write_prepared(
    conn: Connection, db: Database, batch: PreparedBatch, dead_letter_limit: int, conflicts: list[int] | None = None
) -> list[int]:
    """Store a prepared batch inside the caller's transaction; returns the indexes of the new score rows.

    A score row whose key (site, device_id, message_id) is stored already is a duplicate when its payload is the
    same, and a conflict when it is not: dead-lettered (reason `conflict`) in this transaction, its index added
    to `conflicts` when given.
    """
    new: list[int] = []
    rejected = batch.rejected
    devices = batch.devices
    if batch.scores:
        scores = batch.scores
        insert = _insert_scores_sqlite if db.dialect == "sqlite" else _insert_scores_postgresql
        inserted, clashing = insert(conn, scores)
        if len(inserted) == len(scores):
            new = list(range(len(scores)))
        else:
            new = [i for i, row in enumerate(scores) if (row[1], row[2], row[0]) in inserted]
        if clashing:
            found = [i for i, row in enumerate(scores) if (row[1], row[2], row[0]) in clashing]
            rejected = [*rejected, *(_conflict(scores[i]) for i in found)]
            if conflicts is not None:
                conflicts += found
        if new:
            _insert_metrics(conn, db, batch, new)
        if len(new) < len(scores):
            # Duplicates or conflicts: the registry hears only of the messages stored now (a message stored before
            # changes nothing, and one with other content under a stored key is no news of its device).
            devices = _registry_of(scores, new)
    if devices:
        _update_devices(conn, db, devices)
    if rejected:
        _store_rejects(conn, db, rejected, dead_letter_limit)
    return new


_Key = tuple[str, str, str]  # site, device_id, message_id: the key of a score row


def _conflict_detail(site: str, device_id: str, message_id: str) -> str:
    return f"message_id {message_id} of {site}/{device_id} came before with other content"


def _conflict(row: tuple[Any, ...]) -> Rejected:
    message_id, site, device_id, kind = row[:4]
    detail = _conflict_detail(site, device_id, message_id)
    return Rejected(topic_for(site, device_id, kind), "conflict", detail, row[-1].encode(), _datetime(row[7]))


def _insert_scores_postgresql(conn: Connection, rows: list[tuple[Any, ...]]) -> tuple[set[_Key], set[_Key]]:
    """The keys of the rows inserted, and of those stored already with another payload."""
    # COPY into a per-connection staging table, then one INSERT … ON CONFLICT DO NOTHING RETURNING: the
    # returned keys are exactly the rows this transaction inserted (replays and another collector's rows drop out).
    columns = ", ".join(_SCORE_COLUMNS)
    conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS scores_incoming (LIKE scores) ON COMMIT DELETE ROWS")
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY scores_incoming ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    result = conn.exec_driver_sql(
        f"INSERT INTO scores ({columns}) SELECT {columns} FROM scores_incoming "
        "ON CONFLICT (site, device_id, message_id) DO NOTHING RETURNING site, device_id, message_id"
    )
    inserted: set[_Key] = {(r[0], r[1], r[2]) for r in result}
    if len(inserted) == len(rows):
        return inserted, set()
    # Rows inserted just now meet themselves here with the same payload: only earlier rows can differ.
    clashing = conn.exec_driver_sql(
        "SELECT i.site, i.device_id, i.message_id FROM scores_incoming i JOIN scores s "
        "USING (site, device_id, message_id) WHERE s.payload <> i.payload"
    )
    return inserted, {(r[0], r[1], r[2]) for r in clashing}


def _insert_scores_sqlite(conn: Connection, rows: list[tuple[Any, ...]]) -> tuple[set[_Key], set[_Key]]:
    """The keys of the rows inserted, and of those stored already with another payload."""
    # The write transaction holds SQLite's write lock (BEGIN IMMEDIATE), so what is absent now is inserted
    # by us alone; a plain multi-row INSERT is several times faster than a RETURNING statement per row.
    by_device: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        by_device.setdefault((row[1], row[2]), []).append(row[0])
    existing: dict[_Key, str] = {}
    for (site, device_id), ids in by_device.items():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found = conn.exec_driver_sql(
                f"SELECT message_id, payload FROM scores WHERE site = ? AND device_id = ? AND message_id IN ({marks})",
                (site, device_id, *chunk),
            )
            existing.update(((site, device_id, r[0]), r[1]) for r in found)
    fresh = rows
    clashing: set[_Key] = set()
    if existing:
        fresh = []
        for row in rows:
            key = (row[1], row[2], row[0])
            stored = existing.get(key)
            if stored is None:
                fresh.append(row)
            elif stored != row[-1]:
                clashing.add(key)
    _sqlite_insert_rows(conn, "scores", _SCORE_COLUMNS, [value for row in fresh for value in row])
    return {(row[1], row[2], row[0]) for row in fresh}, clashing


# SQLite 3.32+ binds up to 32766 parameters per statement; a few hundred rows per statement is the sweet spot.
_SQLITE_ROWS_PER_STATEMENT = 256


def _sqlite_insert_rows(conn: Connection, table: str, columns: tuple[str, ...], values: list[object]) -> None:
    """INSERT rows, given as one flat list of their values, as multi-row VALUES statements of up to 256 rows.

    `executemany` runs one statement step per row and gives up the GIL around each step; one step per
    256 rows also skips the per-row binding overhead.
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


def _insert_metrics(conn: Connection, db: Database, batch: PreparedBatch, new: list[int]) -> None:
    # The hot path (several rows per message): multi-row VALUES of plain values on SQLite, COPY on
    # PostgreSQL; no per-row SQLAlchemy parameter processing.
    offsets = [0]
    for n in batch.metric_counts:
        offsets.append(offsets[-1] + 2 * n)
    metrics, scores = batch.metrics, batch.scores
    values: list[object] = []
    for i in new:
        mid, site, device_id, kind, _seq, _start, at = scores[i][:7]
        for k in range(offsets[i], offsets[i + 1], 2):
            values += (mid, site, device_id, kind, at, metrics[k], metrics[k + 1])
    if db.dialect == "sqlite":
        _sqlite_insert_rows(conn, "metric_values", _METRIC_COLUMNS, values)
        return
    if not values:
        return
    columns = ", ".join(_METRIC_COLUMNS)
    # PostgreSQL: COPY inside the same transaction is an order of magnitude faster than executemany.
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY metric_values ({columns}) FROM STDIN") as copy:
        for start in range(0, len(values), 7):
            copy.write_row(values[start : start + 7])


def _update_devices(conn: Connection, db: Database, latest: list[dict[str, Any]]) -> None:
    table = schema.devices
    excluded_cols: tuple[str, ...] = ("role", "state", "state_at", "last_heartbeat", "fps", "fps_stages")
    excluded_cols += ("outbox_depth", "outbox_dropped", "frames_dropped", "camera_state", "backend", "models")
    # Rows in one executemany must share keys; group by key set.
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in latest:
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


def storable_text(text: str, limit: int) -> str:
    """`text` as both databases can store it, at most `limit` characters: NUL (which PostgreSQL text refuses) and
    lone surrogates (which no database encoding holds) are written as backslash escapes."""
    text = text[:limit]
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:limit]


def dead_letter_payload(payload: bytes, limit: int = DEAD_LETTER_PAYLOAD_CHARS) -> str:
    """A refused payload as dead-letter text: its first `limit` bytes, valid UTF-8 as it is, NUL and every byte that
    is not UTF-8 written `\\xNN`; at most `limit` characters, never ending in a cut escape."""
    head = payload[:limit]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if "\x00" not in text:
            return text  # the common case: nothing to escape, and no longer than `limit`
    # Bytes that are not UTF-8 decode to the surrogates U+DC80..U+DCFF, one each.
    out: list[str] = []
    size = 0
    for char in head.decode("utf-8", "surrogateescape"):
        piece = f"\\x{ord(char) & 0xFF:02x}" if char == "\x00" or "\udc80" <= char <= "\udcff" else char
        size += len(piece)
        if size > limit:
            break
        out.append(piece)
    return "".join(out)


def _store_rejects(conn: Connection, db: Database, rejected: list[Rejected], limit: int) -> None:
    rows = [
        {
            "received_at": r.received_at,
            "topic": storable_text(r.topic, 256),
            "reason": storable_text(r.reason, 32),
            "detail": storable_text(r.detail, 500),
            "payload_size": len(r.payload),
            "payload": dead_letter_payload(r.payload),
        }
        for r in rejected
    ]
    conn.execute(schema.dead_letters.insert(), rows)
    # Bounded: keep the newest `limit` dead letters.
    newest = conn.execute(select(func.max(schema.dead_letters.c.id))).scalar() or 0
    conn.execute(delete(schema.dead_letters).where(schema.dead_letters.c.id <= newest - limit))
    counts = Counter(storable_text(r.reason, 32) for r in rejected)
    last = max(r.received_at for r in rejected)
    stmt = db.insert(schema.reject_counts)
    stmt = stmt.on_conflict_do_update(
        index_elements=["reason"], set_={"count": schema.reject_counts.c.count + stmt.excluded.count, "last_at": last}
    )
    conn.execute(stmt, [{"reason": k, "count": v, "last_at": last} for k, v in counts.items()])
