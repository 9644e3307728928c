"""The durable outbox: every score is committed here before it is sent and deleted only once delivered.

Delivered means, by default, that the collector's receipt names the score's `message_id` (`confirm`): a
broker acknowledges a score before its periodic save, so a broker crash could lose it after a PUBACK. Until
then a score the broker acknowledged is "sent, awaiting receipt" (`sent_at` set, `attempts` counted) and
`due` hands it back for a re-send once its wait (doubling with each attempt) is over. With a collector that
sends no receipts the publisher deletes on PUBACK instead (`ack_many`; profile `delivery.confirm: puback`).

SQLite in WAL mode with synchronous=FULL: a commit is on disk (WAL fsynced) when `put` returns, so a
power cut after `put` cannot lose the score. Scores are rare (one per window or walk-through), so the
fsync per commit costs nothing that matters; NORMAL would risk losing the last commits on power loss.

The outbox is bounded: when `max_messages` are waiting, `put` drops the oldest in the same transaction
and adds them to a persistent drop counter that the heartbeat reports. A full disk (or the file's page
cap) raises `OutboxFull`; the transaction is rolled back, so what was already queued stays. Scores that
could therefore never be stored are reported with `record_lost`: counted (`lost`, in the heartbeat as
`scores_lost`), logged with their count, and written to the file as soon as it takes a write again.

It also hands out the device's message sequence numbers. Their high-water mark is reserved on disk
`SEQ_RESERVE` numbers ahead of use, so numbers handed out while the disk is full (their scores lost) are
covered already and never handed out again, even after a run that could not write at all; a clean close
writes the exact mark, a crash leaves a gap of at most `SEQ_RESERVE`.

A file damaged on disk is refused when opened (`OutboxDamaged`); docs/runtime.md says how to recover.
Thread-safe: the frame loop puts, the publisher thread reads and acknowledges.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from contract.errors import EdgeScreenError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now')),
    message_id TEXT,
    sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class OutboxError(EdgeScreenError, RuntimeError):
    """The outbox could not store or read messages."""


class OutboxFull(OutboxError):
    """The disk (or the outbox file's page cap) is full; the message was not stored."""


class OutboxDamaged(OutboxError):
    """The outbox file fails SQLite's integrity check."""


# Sequence numbers reserved on disk ahead of use; the reservation is renewed when less than half is left. A disk
# that stays full for this many scores (hours at one score a minute) is where reuse could start again.
SEQ_RESERVE = 1000


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    payload: bytes


class Outbox:
    """A bounded, ordered, durable queue of (topic, payload) messages."""

    def __init__(self, path: Path | str, max_messages: int = 100_000, max_db_pages: int | None = None) -> None:
        """Open (or create) the outbox at `path`.

        `max_db_pages` caps the file size in SQLite pages (PRAGMA max_page_count); reaching it behaves like a
        full disk. `max_messages` is the normal bound, enforced by dropping the oldest.
        """
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self.path = Path(path)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            if max_db_pages is not None:
                db.execute(f"PRAGMA max_page_count={int(max_db_pages)}")
            db.executescript(_SCHEMA)
            self._check_integrity()
            self._migrate()
            self._seq = self._meta("seq")  # the first number this process may hand out
            self._lost_on_disk = self._meta("lost")
        except (OSError, sqlite3.Error, OutboxError) as exc:
            if db is not None:
                db.close()
            if isinstance(exc, OutboxError):
                raise
            if isinstance(exc, sqlite3.DatabaseError) and _is_damage(exc):
                raise _damaged(self.path, str(exc)) from exc
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        self._reserved = self._seq  # numbers below this are covered on disk
        self._lost_pending = 0  # losses not yet written to the file
        self._full = False  # in a run of failed writes (logged once, critically)

    def _migrate(self) -> None:
        """Add the delivery columns to a file made before receipts (its queued scores keep their order)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "message_id" not in columns:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ALTER TABLE outbox ADD COLUMN message_id TEXT")
            self._db.execute("ALTER TABLE outbox ADD COLUMN sent_at REAL")
            self._db.execute("ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
            rows = self._db.execute("SELECT id, payload FROM outbox").fetchall()
            self._db.executemany(
                "UPDATE outbox SET message_id = ? WHERE id = ?", [(_payload_id(bytes(p)), i) for i, p in rows]
            )
            self._db.execute("COMMIT")
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_message_id ON outbox (message_id)")

    def _check_integrity(self) -> None:
        # quick_check reads every page (0.08 s for a 100 MB file on a 2-core x86-64): a file damaged mid-way would
        # otherwise open fine and fail later, in the publisher or at shutdown.
        rows = self._db.execute("PRAGMA quick_check(5)").fetchall()
        problems = [str(r[0]) for r in rows]
        if problems != ["ok"]:
            raise _damaged(self.path, "; ".join(problems))

    # -- writing ---------------------------------------------------------------------------------------

    def put(self, topic: str, payload: bytes, seq: int | None = None) -> int:
        """Commit one message (durable on return) and return its id. Drops the oldest when full.

        `seq`, when given, is the message's sequence number; its high-water mark is committed with the
        message so a restarted device continues after it.
        """
        return self.put_many([(topic, payload, seq)])[0]

    def put_many(self, messages: Iterable[tuple[str, bytes, int | None]]) -> list[int]:
        """Commit several messages in one transaction (all or none)."""
        items = list(messages)
        ids: list[int] = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                high = None
                for topic, payload, seq in items:
                    cur = self._db.execute(
                        "INSERT INTO outbox (topic, payload, message_id) VALUES (?, ?, ?)",
                        (topic, payload, _payload_id(payload)),
                    )
                    assert cur.lastrowid is not None
                    ids.append(cur.lastrowid)
                    if seq is not None:
                        high = max(high or 0, seq + 1)
                if high is not None:
                    self._set_meta_max("seq", high)
                self._enforce_bound()
                lost = self._write_lost()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise self._failed("store", exc) from exc
            self._stored(lost)
            if high is not None:  # numbers given by the caller, not handed out here, are never handed out again
                self._seq = max(self._seq, high)
                self._reserved = max(self._reserved, high)
        return ids

    def _enforce_bound(self) -> None:
        (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        excess = count - self.max_messages
        if excess > 0:
            self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                (excess,),
            )
            self._db.execute(
                "INSERT INTO meta (name, value) VALUES ('dropped', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (excess,),
            )
            log.warning("outbox full (%d messages): dropped the %d oldest", self.max_messages, excess)

    def ack(self, message_id: int) -> None:
        """Delete a message the broker acknowledged (PUBACK; `delivery.confirm: puback`)."""
        self.ack_many([message_id])

    def ack_many(self, message_ids: Iterable[int]) -> None:
        ids = [(i,) for i in message_ids]
        if not ids:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM outbox WHERE id = ?", ids)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise self._failed("acknowledge", exc) from exc

    def mark_sent(self, ids: Iterable[int], at: float) -> None:
        """The broker acknowledged these messages at `at` (time.time()): sent, awaiting the collector's receipt."""
        rows = [(at, i) for i in ids]
        if rows:
            self._write("mark sent", "UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?", rows)

    def confirm(self, message_ids: Iterable[str]) -> int:
        """Delete the messages a receipt names (by `message_id`); returns how many were still queued."""
        rows = [(m,) for m in message_ids]
        return self._write("confirm", "DELETE FROM outbox WHERE message_id = ?", rows) if rows else 0

    def unsend_all(self) -> None:
        """Forget every "awaiting receipt" mark: they are sent again like new (on a switch to PUBACK delivery)."""
        self._write("reset", "UPDATE outbox SET sent_at = NULL WHERE sent_at IS NOT NULL", [()])

    def _write(self, action: str, sql: str, rows: Sequence[tuple[object, ...]]) -> int:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                before = self._db.total_changes
                self._db.executemany(sql, rows)
                changed = self._db.total_changes - before
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise self._failed(action, exc) from exc
        return changed

    # -- reading ---------------------------------------------------------------------------------------

    def due(self, now: float, wait_s: float, max_wait_s: float, limit: int) -> list[OutboxMessage]:
        """Sent messages whose receipt is overdue, oldest first: sent `wait_s` ago after the first attempt, twice
        that after the second, and so on up to `max_wait_s`."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT id, topic, payload FROM outbox WHERE sent_at IS NOT NULL "
                    "AND sent_at + MIN(?, ? * (1 << MIN(attempts - 1, 30))) <= ? ORDER BY id LIMIT ?",
                    (max_wait_s, wait_s, now, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise self._failed("read", exc) from exc
        return [OutboxMessage(int(i), str(t), bytes(p)) for i, t, p in rows]

    def awaiting(self) -> int:
        """Messages sent and acknowledged by the broker, not yet confirmed by a receipt."""
        with self._lock:
            try:
                (count,) = self._db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL").fetchone()
            except sqlite3.Error as exc:
                raise self._failed("count", exc) from exc
        return int(count)

    def pending(self, limit: int | None = None, after_id: int = 0) -> list[OutboxMessage]:
        """Messages waiting to be sent (not those awaiting a receipt), oldest first (ids greater than `after_id`)."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT id, topic, payload FROM outbox WHERE id > ? AND sent_at IS NULL ORDER BY id LIMIT ?",
                    (after_id, -1 if limit is None else limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise self._failed("read", exc) from exc
        return [OutboxMessage(int(i), str(t), bytes(p)) for i, t, p in rows]

    def get(self, message_id: int) -> OutboxMessage | None:
        with self._lock:
            try:
                row = self._db.execute("SELECT id, topic, payload FROM outbox WHERE id = ?", (message_id,)).fetchone()
            except sqlite3.Error as exc:
                raise self._failed("read", exc) from exc
        return None if row is None else OutboxMessage(int(row[0]), str(row[1]), bytes(row[2]))

    def depth(self) -> int:
        with self._lock:
            try:
                (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
            except sqlite3.Error as exc:
                raise self._failed("count", exc) from exc
        return int(count)

    @property
    def dropped(self) -> int:
        """Messages dropped because the outbox was full, since the outbox file was created."""
        with self._lock:
            try:
                return self._meta("dropped")
            except sqlite3.Error as exc:
                raise self._failed("count", exc) from exc

    # -- losses ----------------------------------------------------------------------------------------

    def record_lost(self, count: int, why: str) -> int:
        """Count `count` scores that were made but could never be stored (`why`: e.g. the disk is full); returns
        the total. Logged critically with the count; written to the file with its next write (at once if it can)."""
        if count <= 0:
            return self.lost
        with self._lock:
            self._lost_pending += count
            total = self._lost_on_disk + self._lost_pending
            log.critical("outbox %s: %d score(s) lost (%s); %d lost in all", self.path, count, why, total)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                lost = self._write_lost()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                log.debug("outbox %s: the loss count waits for room on disk: %s", self.path, exc)
            else:
                self._stored(lost)
        return total

    @property
    def lost(self) -> int:
        """Scores made but never stored (`record_lost`), since the outbox file was created; what this process
        could not yet write to the file included."""
        with self._lock:
            return self._lost_on_disk + self._lost_pending

    # -- sequence numbers ------------------------------------------------------------------------------

    def next_seq(self) -> int:
        """The next message sequence number, never one handed out before by this outbox file.

        Numbers are covered by a reservation on disk before they are handed out, so a score that is lost (the
        disk full, the process killed) keeps its number: a later run continues after it, and the gap shows.
        """
        with self._lock:
            seq = self._seq
            self._seq += 1
            if self._reserved - self._seq < SEQ_RESERVE // 2:
                self._reserve(self._seq + SEQ_RESERVE)
            if seq >= self._reserved:
                log.critical(
                    "outbox %s: sequence number %d is not covered on disk (the disk is full); a restart before "
                    "there is room again may hand it out again",
                    self.path,
                    seq,
                )
        return seq

    def _reserve(self, mark: int) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._set_meta_max("seq", mark)
            lost = self._write_lost()
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            log.warning("outbox %s: cannot reserve sequence numbers up to %d: %s", self.path, mark, exc)
            return
        self._stored(lost)
        self._reserved = max(self._reserved, mark)

    def current_seq(self) -> int:
        """The seq the next score will get, without taking it. Status and heartbeat messages carry this value, so
        they take no number from the scores: within a run, score seqs have a gap only where scores were lost."""
        with self._lock:
            return self._seq

    # -- internals -------------------------------------------------------------------------------------

    def _meta(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta_max(self, name: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)",
            (name, value),
        )

    def _write_lost(self) -> int:
        """Inside a write transaction: add the pending loss count to the file's; returns what it added."""
        pending = self._lost_pending
        if pending:
            self._db.execute(
                "INSERT INTO meta (name, value) VALUES ('lost', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (pending,),
            )
        return pending

    def _stored(self, lost: int) -> None:
        """After a committed write: the losses it wrote are on disk, and the disk takes writes again."""
        self._lost_pending -= lost
        self._lost_on_disk += lost
        if self._full:
            self._full = False
            log.warning("outbox %s: storing again", self.path)

    def _failed(self, action: str, exc: sqlite3.Error) -> OutboxError:
        """The error for a failed operation; a full disk is logged critically once per run of failures."""
        error = _storage_error(self.path, action, exc)
        if isinstance(error, OutboxFull):
            if not self._full:
                log.critical("%s", error)
            self._full = True
        elif isinstance(exc, sqlite3.DatabaseError) and _is_damage(exc):
            error = _damaged(self.path, str(exc))
            log.critical("%s", error)
        return error

    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("outbox rollback failed")

    def close(self) -> None:
        """Write the exact sequence mark (a restart continues without a gap) and any loss count still pending."""
        with self._lock:
            try:
                if self._seq != self._meta("seq") or self._lost_pending:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute(
                        "INSERT INTO meta (name, value) VALUES ('seq', ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                        (self._seq,),
                    )
                    lost = self._write_lost()
                    self._db.execute("COMMIT")
                    self._stored(lost)
            except sqlite3.Error as exc:
                self._rollback()
                if self._lost_pending:
                    log.critical(
                        "outbox %s: %d lost score(s) could not be recorded in the file (%s); this count ends here",
                        self.path,
                        self._lost_pending,
                        exc,
                    )
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _storage_error(path: Path, action: str, exc: sqlite3.Error) -> OutboxError:
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and ("full" in text or "disk i/o" in text):
        return OutboxFull(
            f"outbox {path} is full: cannot {action} a message ({exc}); nothing queued was lost, what is not "
            "stored is held or counted as lost"
        )
    return OutboxError(f"outbox {path}: cannot {action} a message: {exc}")


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def _damaged(path: Path, detail: str) -> OutboxDamaged:
    return OutboxDamaged(
        f"outbox {path} is damaged ({' '.join(detail.split())[:300]}); with the device stopped, "
        f"`edgescreen edge outbox-salvage {path}` keeps what can be read (docs/runtime.md, 'A damaged outbox')"
    )


# -- salvaging a damaged file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SalvageReport:
    damaged: Path  # where the damaged file (and its -wal, -shm) now lies
    kept: int  # queued messages read back and stored in the fresh outbox, in their order
    unreadable: int  # ids that could not be read: their messages are lost
    seq: int  # the sequence mark the fresh outbox continues from


_CARRIED = ("seq", "dropped", "lost")  # the meta rows a salvaged outbox keeps


def salvage(path: Path | str) -> SalvageReport:
    """Replace a damaged outbox at `path` with a fresh one holding every queued message that can still be read.

    The damaged file and its WAL move aside to `<path>.damaged-<time>` (kept for inspection). Each message is read
    by its id on its own, so a damaged page costs only the messages on it; the sequence mark and the drop and loss
    counters are carried over (the mark, when unreadable, is put past every salvaged message by `SEQ_RESERVE`).
    Run it with the device stopped.
    """
    path = Path(path)
    if not path.is_file():
        raise OutboxError(f"no outbox at {path}")
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):  # the WAL holds committed messages too: it moves with the file
        if Path(f"{path}{suffix}").exists():
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    try:
        old = sqlite3.connect(aside, isolation_level=None)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open the damaged outbox {aside}: {exc}") from exc
    try:
        rows, unreadable = _readable_rows(old)
        meta = {
            name: _try_int(old, "SELECT value FROM meta WHERE name = ?", name) for name in ("seq", "dropped", "lost")
        }
    finally:
        old.close()
    seq = meta["seq"]
    if seq is None:
        seq = max((_payload_seq(p) + 1 for _t, p in rows), default=0) + SEQ_RESERVE
        log.warning("outbox %s: sequence mark unreadable; continuing from %d", aside, seq)
    with Outbox(path) as fresh, fresh._lock:
        fresh._db.execute("BEGIN IMMEDIATE")
        fresh._db.executemany(
            "INSERT INTO outbox (topic, payload, message_id) VALUES (?, ?, ?)",
            [(t, p, _payload_id(p)) for t, p in rows],
        )
        for name, value in (("seq", seq), ("dropped", meta["dropped"]), ("lost", meta["lost"])):
            if value:
                fresh._set_meta_max(name, value)
        fresh._db.execute("COMMIT")
        fresh._seq = fresh._reserved = seq
        fresh._lost_on_disk = meta["lost"] or 0
    log.warning("outbox %s salvaged: %d message(s) kept, %d unreadable; the damaged file is %s", path, len(rows),
                unreadable, aside)  # fmt: skip
    return SalvageReport(aside, len(rows), unreadable, seq)


def _readable_rows(db: sqlite3.Connection) -> tuple[list[tuple[str, bytes]], int]:
    """Every (topic, payload) readable by id, in id order, and how many ids in the range could not be read."""
    low = _try_int(db, "SELECT MIN(id) FROM outbox")
    high = max(
        _try_int(db, "SELECT MAX(id) FROM outbox") or 0,
        _try_int(db, "SELECT seq FROM sqlite_sequence WHERE name = ?", "outbox") or 0,
    )
    rows: list[tuple[str, bytes]] = []
    unreadable = 0
    for message_id in range(low or 1, high + 1):
        try:
            row = db.execute("SELECT topic, payload FROM outbox WHERE id = ?", (message_id,)).fetchone()
        except sqlite3.DatabaseError:
            unreadable += 1
            continue
        if row is not None and isinstance(row[0], str) and isinstance(row[1], bytes):
            rows.append((row[0], row[1]))
    return rows, unreadable


def _try_int(db: sqlite3.Connection, sql: str, *args: object) -> int | None:
    try:
        row = db.execute(sql, args).fetchone()
    except sqlite3.DatabaseError:
        return None
    return int(row[0]) if row is not None and isinstance(row[0], int) else None


def _payload_seq(payload: bytes) -> int:
    try:
        value = json.loads(payload).get("seq")
    except (ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) else 0


def _payload_id(payload: bytes) -> str | None:
    """The `message_id` a payload carries (what receipts name), or None."""
    try:
        value = json.loads(payload).get("message_id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return value if isinstance(value, str) else None
