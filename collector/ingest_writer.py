"""The ingest writer: a process of its own that stores prepared batches, one transaction each.

The ingest process receives, validates and builds rows (collector/ingest.py); this process writes
them. Split this way, the Python work of receiving and the database work of storing run on two cores
instead of taking turns under one interpreter lock. The pipe carries the dataclasses below, in order:

    parent → writer   `WriteBatch` | `StopWriting`
    writer → parent   per batch in the order sent, `Committed` (the new score rows, the rows dead-lettered as
                      conflicts, the seconds spent, and the alerts the rules opened or resolved, for the parent's
                      notifier); and `DatabaseDown` for every failed attempt while the database is down

The writer reports a batch only after its transaction committed; the parent acknowledges the batch's
messages to the broker only on that report. The alert rules are evaluated here, in the transaction that
stores the batch, on its new messages (`PreparedBatch.facts`): scores, rule states and alerts commit
together; the ingest process keeps no validated messages for the rules, and the rule work runs beside the
validation instead of under its interpreter lock.

A batch the writer has not reported when either process dies is acknowledged by no one and redelivered by the
broker; `message_id` makes the replay harmless.

One message never stops the stream. A batch whose transaction fails for a reason of its own (a row the database
refuses) rather than an outage is halved, and each half stored or halved again, until the messages that fail
alone are found; those become dead letters (reason `store_error`, with the database's error) and the rest is
stored. An outage is retried with backoff instead (`_RETRYABLE`), the same batch, until it commits.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from collector.alerts.config import RulesFile
from collector.storage.engine import Database, open_database
from collector.storage.writes import PreparedBatch, Rejected, write_prepared
from collector.timeutil import utcnow_naive
from contract.wire import Alert, topic_for

if TYPE_CHECKING:
    from collector.alerts.engine import AlertEngine

log = logging.getLogger(__name__)

_RETRYABLE = (OperationalError, InterfaceError, DisconnectionError)
_T = TypeVar("_T")


@dataclass(frozen=True)
class WriteBatch:
    """Store this batch (parent → writer)."""

    batch_id: int
    batch: PreparedBatch


@dataclass(frozen=True)
class StopWriting:
    """Store what was sent, then end (parent → writer)."""


@dataclass(frozen=True)
class Committed:
    """A batch's transaction committed (writer → parent); only now may its messages be acknowledged."""

    batch_id: int
    new: list[int]  # indexes of the batch's score rows that were new
    conflicts: int  # score rows dead-lettered as conflicts
    seconds: float  # spent writing, retries included
    alerts: list[Alert]  # opened or resolved by the rules in that transaction, to deliver
    refused: list[int] = field(default_factory=list)  # score rows not stored (conflicts, store errors): no receipt


@dataclass(frozen=True)
class DatabaseDown:
    """An attempt failed because the database is unavailable; the writer retries the same batch (writer → parent)."""

    error: str


ToWriter = WriteBatch | StopWriting
FromWriter = Committed | DatabaseDown


@dataclass(frozen=True)
class WriterSettings:
    db_url: str
    dead_letter_limit: int = 10_000
    backoff_max_s: float = 5.0
    rules: RulesFile | None = None  # alert rules to evaluate on each committed batch


class WriterProcess:
    """The parent's handle on one writer process."""

    def __init__(self, settings: WriterSettings) -> None:
        self.settings = settings
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe(duplex=True)
        # Daemon: a parent that exits without stop() takes its writer along.
        self.process = context.Process(
            target=_writer_main, args=(child, settings), name="collector-writer", daemon=True
        )
        self.process.start()
        child.close()  # the writer sees end-of-file once the parent's end is gone

    def send(self, batch_id: int, batch: PreparedBatch) -> None:
        self._conn.send(WriteBatch(batch_id, batch))

    def recv(self) -> FromWriter:
        """The next event; raises EOFError when the writer is gone."""
        event: FromWriter = self._conn.recv()
        return event

    def request_stop(self) -> None:
        try:
            self._conn.send(StopWriting())
        except OSError:
            pass  # already gone

    def join(self, timeout: float) -> None:
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("collector writer did not stop within %.0f s; terminating it", timeout)
            self.process.terminate()
            self.process.join(5)

    def close(self) -> None:
        self._conn.close()


def _writer_main(conn: Connection, settings: WriterSettings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    # Ctrl-C reaches the whole process group: the parent decides when the writer stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    db = open_database(settings.db_url, migrate_schema=False)
    gc.freeze()  # the modules loaded so far are never garbage; later collections skip them
    try:
        _Writer(conn, db, settings).run()
    finally:
        db.dispose()


class _RulesFailed(Exception):
    """The alert rules raised while evaluating a batch (the cause is chained)."""


class _Writer:
    def __init__(self, conn: Connection, db: Database, settings: WriterSettings) -> None:
        self.conn = conn
        self.db = db
        self.settings = settings
        self.waiting: deque[ToWriter] = deque()  # received while retrying an earlier batch
        self.alerts: list[Alert] = []  # raised by the transactions of the batch being stored that committed
        self.new: set[int] = set()  # score rows of that batch committed so far (before an outage too)
        self.conflicts: set[int] = set()  # its score rows dead-lettered as conflicts so far
        self.failed: set[int] = set()  # its score rows dead-lettered as store errors so far
        self.engine: AlertEngine | None = None
        if settings.rules is not None:
            from collector.alerts.engine import AlertEngine

            self.engine = AlertEngine(db, settings.rules, deliver=self.alerts.append)

    def _next(self) -> ToWriter | None:
        if self.waiting:
            return self.waiting.popleft()
        try:
            event: ToWriter = self.conn.recv()
        except EOFError:
            return None
        return event

    def run(self) -> None:
        while isinstance(event := self._next(), WriteBatch):
            t0 = time.perf_counter()
            new = self._commit(event.batch)
            if new is None:
                return  # told to stop, or the parent is gone, while the database was down: nothing committed
            alerts, self.alerts[:] = list(self.alerts), []
            try:
                refused = sorted(self.conflicts | self.failed)
                seconds = time.perf_counter() - t0
                self.conn.send(Committed(event.batch_id, new, len(self.conflicts), seconds, alerts, refused))
            except OSError:
                return  # the parent is gone; the broker redelivers what it never acknowledged

    def _commit(self, batch: PreparedBatch) -> list[int] | None:
        """Write until it commits; None when asked to stop (or orphaned) before it could."""
        self.alerts.clear()
        self.new.clear()
        self.conflicts.clear()
        self.failed.clear()
        delay = 0.1
        while True:
            try:
                self._commit_once(batch)
                return sorted(self.new)
            except _RETRYABLE as exc:
                try:
                    self.conn.send(DatabaseDown(str(exc).splitlines()[0][:300]))
                except OSError:
                    return None  # the parent is gone
            deadline = time.monotonic() + delay
            while (left := deadline - time.monotonic()) > 0:
                # Wait on the pipe, not a sleep: a stop request or a dead parent ends the retrying at once.
                if not self.conn.poll(left):
                    break
                try:
                    event = self.conn.recv()
                except EOFError:
                    return None
                if not isinstance(event, WriteBatch):
                    return None
                self.waiting.append(event)
            delay = min(delay * 2, self.settings.backoff_max_s)

    def _commit_once(self, batch: PreparedBatch) -> None:
        """The batch in one transaction; when that fails for a reason of its own, not an outage, it is split."""
        try:
            self._transaction(batch, list(range(len(batch.scores))))
        except _RETRYABLE:
            raise
        except Exception as exc:
            log.error("batch of %d failed to store (%s); halving it to find what fails", len(batch.scores), _text(exc))
            self._commit_split(batch)

    def _transaction(self, batch: PreparedBatch, rows: list[int], rules: bool = True) -> None:
        """One transaction: `batch` (whose score rows are rows `rows` of the batch being stored) and, with alert
        rules, their evaluation on its new messages, so that scores, rule states and alerts commit together (a batch
        replayed after a crash is evaluated in the transaction that stores it, or was evaluated already). The alerts
        of a transaction that rolls back are dropped; the rows it committed join `self.new`."""
        mark = len(self.alerts)
        conflicts: list[int] = []
        try:
            with self.db.engine.begin() as conn:
                new = write_prepared(conn, self.db, batch, self.settings.dead_letter_limit, conflicts)
                if rules and self.engine is not None and new:
                    try:
                        self.engine.evaluate(conn, batch.facts(new))
                    except _RETRYABLE:
                        raise
                    except Exception as exc:
                        raise _RulesFailed from exc
        except _RulesFailed as exc:
            # A fault of the rules, not of the scores: store the rows without them rather than not at all.
            del self.alerts[mark:]
            log.error("alert rules failed on %d messages; storing them without them", len(batch.scores), exc_info=exc)
            self._transaction(batch, rows, rules=False)
            return
        except BaseException:
            del self.alerts[mark:]
            raise
        self.new.update(rows[i] for i in new)
        self.conflicts.update(rows[i] for i in conflicts)

    def _commit_split(self, batch: PreparedBatch) -> None:
        """Store a batch that failed as a whole: its messages by halves, down to each one that fails alone, which
        becomes a dead letter with its error; then its device registry rows and dead letters, halved the same way
        if they fail. One bad message in n costs about 2·log2(n) transactions, and the stream goes on."""
        failed: list[Rejected] = []

        def store_rows(rows: list[int]) -> None:
            self._transaction(batch.subset(rows), rows)

        def row_failed(row: int, exc: Exception) -> None:
            self.failed.add(row)
            failed.append(_dead_letter(batch.scores[row], exc))

        rows = list(range(len(batch.scores)))
        half = len(rows) // 2
        for part in (rows[:half], rows[half:]):  # the whole has failed already
            self._halve(part, store_rows, row_failed)
        self._halve(batch.devices, self._store_devices, _device_failed)
        self._halve([*batch.rejected, *failed], self._store_rejects, _reject_failed)

    def _halve(
        self, items: list[_T], store: Callable[[list[_T]], None], failed: Callable[[_T, Exception], None]
    ) -> None:
        """Store `items` in one go; when that fails (not for an outage), each half the same way, down to single
        items, each of which that still fails goes to `failed`."""
        if not items:
            return
        try:
            store(items)
        except _RETRYABLE:
            raise
        except Exception as exc:
            if len(items) == 1:
                failed(items[0], exc)
                return
            half = len(items) // 2
            self._halve(items[:half], store, failed)
            self._halve(items[half:], store, failed)

    def _store_devices(self, devices: list[dict[str, Any]]) -> None:
        with self.db.engine.begin() as conn:
            write_prepared(conn, self.db, PreparedBatch([], [], [], devices, []), self.settings.dead_letter_limit)

    def _store_rejects(self, rejected: list[Rejected]) -> None:
        with self.db.engine.begin() as conn:
            write_prepared(conn, self.db, PreparedBatch([], [], [], [], rejected), self.settings.dead_letter_limit)


def _text(exc: BaseException) -> str:
    """The error in one line: the driver's own message where the database raised it (SQLAlchemy's text adds the
    statement and its parameters)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"[:500]


def _dead_letter(row: tuple[Any, ...], exc: Exception) -> Rejected:
    message_id, site, device_id, kind, *_, payload = row  # a score row (collector.storage.writes._SCORE_COLUMNS)
    log.error("message %s could not be stored: %s", message_id, _text(exc))
    return Rejected(topic_for(site, device_id, kind), "store_error", _text(exc), payload.encode(), utcnow_naive())


def _device_failed(row: dict[str, Any], exc: Exception) -> None:
    # Its messages are stored; only the registry's summary of the device misses them.
    log.error("device registry row of %s/%s could not be stored: %s", row["site"], row["device_id"], _text(exc))


def _reject_failed(rejected: Rejected, exc: Exception) -> None:
    log.error("dead letter (%s) on %.200r could not be stored: %s", rejected.reason, rejected.topic, _text(exc))
