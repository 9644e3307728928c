"""The durable outbox: every score is committed here before it is sent and deleted only on PUBACK.

SQLite in WAL mode with synchronous=FULL: a commit is on disk (WAL fsynced) when `put` returns, so a
power cut after `put` cannot lose the score. Scores are rare (one per window or walk-through), so the
fsync per commit costs nothing that matters; NORMAL would risk losing the last commits on power loss.

The outbox is bounded: when `max_messages` are waiting, `put` drops the oldest in the same transaction
and adds them to a persistent drop counter that the heartbeat reports. A full disk (or the file's page
cap) raises `OutboxFull`; the transaction is rolled back, so what was already queued stays.

It also holds the device's message sequence number, so `seq` keeps increasing across restarts.
Thread-safe: the frame loop puts, the publisher thread reads and acknowledges.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from contract.errors import EdgeScreenError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now'))
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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            if max_db_pages is not None:
                self._db.execute(f"PRAGMA max_page_count={int(max_db_pages)}")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        self._seq = self._meta("seq")

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
                    cur = self._db.execute("INSERT INTO outbox (topic, payload) VALUES (?, ?)", (topic, payload))
                    assert cur.lastrowid is not None
                    ids.append(cur.lastrowid)
                    if seq is not None:
                        high = max(high or 0, seq + 1)
                if high is not None:
                    self._set_meta_max("seq", high)
                self._enforce_bound()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise _storage_error(self.path, "store", exc) from exc
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
        """Delete a message the broker acknowledged (PUBACK)."""
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
                raise _storage_error(self.path, "acknowledge", exc) from exc

    # -- reading ---------------------------------------------------------------------------------------

    def pending(self, limit: int | None = None, after_id: int = 0) -> list[OutboxMessage]:
        """Messages waiting, oldest first (ids greater than `after_id`)."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                    (after_id, -1 if limit is None else limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise _storage_error(self.path, "read", exc) from exc
        return [OutboxMessage(int(i), str(t), bytes(p)) for i, t, p in rows]

    def get(self, message_id: int) -> OutboxMessage | None:
        with self._lock:
            row = self._db.execute("SELECT id, topic, payload FROM outbox WHERE id = ?", (message_id,)).fetchone()
        return None if row is None else OutboxMessage(int(row[0]), str(row[1]), bytes(row[2]))

    def depth(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)

    @property
    def dropped(self) -> int:
        """Messages dropped because the outbox was full, since the outbox file was created."""
        with self._lock:
            return self._meta("dropped")

    # -- sequence numbers ------------------------------------------------------------------------------

    def next_seq(self, persist: bool = False) -> int:
        """The next message sequence number.

        Scores pass their seq to `put`, which commits the high-water mark with the message (a seq handed out
        but never stored may be reused after a crash: it was never sent). Messages that bypass the outbox
        (status, heartbeat) use persist=True so their seq is committed at once.
        """
        with self._lock:
            seq = self._seq
            self._seq += 1
            if persist:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._set_meta_max("seq", self._seq)
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._rollback()
                    raise _storage_error(self.path, "store the sequence number in", exc) from exc
        return seq

    def current_seq(self) -> int:
        """The seq the next score will get, without taking it. Status and heartbeat messages carry this value,
        so score seqs stay gap-free and a heartbeat tells the collector how many scores came before it."""
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

    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("outbox rollback failed")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _storage_error(path: Path, action: str, exc: sqlite3.Error) -> OutboxError:
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and ("full" in text or "disk i/o" in text):
        log.critical("outbox %s: cannot %s a message: %s (nothing queued was lost)", path, action, exc)
        return OutboxFull(f"outbox {path} is full: cannot {action} a message ({exc}); queued messages are kept")
    return OutboxError(f"outbox {path}: cannot {action} a message: {exc}")
