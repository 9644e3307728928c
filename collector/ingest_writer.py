"""The ingest writer: a process of its own that stores prepared batches, one transaction each.

The ingest process receives, validates and builds rows (collector/ingest.py); this process writes
them. Split this way, the Python work of receiving and the database work of storing run on two cores
instead of taking turns under one interpreter lock. The protocol over the pipe, in order:

    parent → writer   ("batch", batch_id, PreparedBatch) | ("stop",)
    writer → parent   per batch in the order sent ("done", batch_id, new row indexes,
                      seconds spent), each followed, when alert rules are configured and the batch opened or
                      resolved any, by ("alerts", [Alert, ...]) for the parent to deliver; and ("db_error", text)
                      for every failed attempt while the database is down

The writer reports a batch only after its transaction committed; the parent acknowledges the batch's
messages to the broker only on that report. The alert rules are evaluated here, in the transaction that
stores the batch, on its new messages (`PreparedBatch.facts`): scores, rule states and alerts commit
together; the ingest process keeps no validated messages for the rules, and the rule work runs beside the
validation instead of under its interpreter lock.

A batch the writer has not reported when either process dies is acknowledged by no one and redelivered by the
broker; `message_id` makes the replay harmless.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import signal
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from collector.alerts.rules import RulesFile
from collector.storage.engine import Database, open_database
from collector.storage.writes import PreparedBatch, Rejected, write_prepared
from collector.timeutil import utcnow_naive
from contract.wire import TOPIC_ROOT, Alert

if TYPE_CHECKING:
    from collector.alerts.engine import AlertEngine

log = logging.getLogger(__name__)

_RETRYABLE = (OperationalError, InterfaceError, DisconnectionError)


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
        self._conn.send(("batch", batch_id, batch))

    def recv(self) -> tuple[Any, ...]:
        """The next event; raises EOFError when the writer is gone."""
        event: tuple[Any, ...] = self._conn.recv()
        return event

    def request_stop(self) -> None:
        try:
            self._conn.send(("stop",))
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
        self.waiting: deque[tuple[Any, ...]] = deque()  # received while retrying an earlier batch
        self.alerts: list[Alert] = []
        self.engine: AlertEngine | None = None
        if settings.rules is not None:
            from collector.alerts.engine import AlertEngine

            self.engine = AlertEngine(db, settings.rules, deliver=self.alerts.append)

    def _next(self) -> tuple[Any, ...] | None:
        if self.waiting:
            return self.waiting.popleft()
        try:
            event: tuple[Any, ...] = self.conn.recv()
        except EOFError:
            return None
        return event

    def run(self) -> None:
        while (event := self._next()) is not None and event[0] == "batch":
            _, batch_id, batch = event
            t0 = time.perf_counter()
            new = self._commit(batch)
            if new is None:
                return  # told to stop, or the parent is gone, while the database was down: nothing committed
            try:
                self.conn.send(("done", batch_id, new, time.perf_counter() - t0))
                if self.alerts:
                    alerts, self.alerts[:] = list(self.alerts), []
                    self.conn.send(("alerts", alerts))
            except OSError:
                return  # the parent is gone; the broker redelivers what it never acknowledged

    def _commit(self, batch: PreparedBatch) -> list[int] | None:
        """Write until it commits; None when asked to stop (or orphaned) before it could."""
        delay = 0.1
        while True:
            try:
                return self._commit_once(batch)
            except _RETRYABLE as exc:
                try:
                    self.conn.send(("db_error", str(exc).splitlines()[0][:300]))
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
                if event[0] != "batch":
                    return None
                self.waiting.append(event)
            delay = min(delay * 2, self.settings.backoff_max_s)

    def _commit_once(self, batch: PreparedBatch, rules: bool = True) -> list[int]:
        """One transaction: the batch's rows and, with alert rules, their evaluation on its new messages, so
        that scores, rule states and alerts commit together (a batch replayed after a crash is evaluated in the
        transaction that stores it, or was evaluated already)."""
        limit = self.settings.dead_letter_limit
        self.alerts.clear()  # of an attempt that rolled back
        try:
            with self.db.engine.begin() as conn:
                new = write_prepared(conn, self.db, batch, limit)
                if rules and self.engine is not None and new:
                    try:
                        self.engine.evaluate(conn, batch.facts(new))
                    except _RETRYABLE:
                        raise
                    except Exception as exc:
                        raise _RulesFailed from exc
                return new
        except _RETRYABLE:
            raise
        except _RulesFailed as exc:
            # A fault of the rules, not of the scores: store the batch without them rather than not at all.
            log.error(
                "alert rules failed on a batch of %d messages; storing it without them", len(batch.scores), exc_info=exc
            )
            return self._commit_once(batch, rules=False)
        except Exception as exc:
            # Not an outage but something in this batch (a constraint, say): store message by message and
            # dead-letter what fails, so that one message cannot stop ingest.
            log.error("batch of %d failed to store (%s); storing one by one", len(batch.scores), exc)
            self.alerts.clear()
            return self._commit_one_by_one(batch)

    def _commit_one_by_one(self, batch: PreparedBatch) -> list[int]:
        new: list[int] = []
        failed = list(batch.rejected)
        limit = self.settings.dead_letter_limit
        for i, row in enumerate(batch.scores):
            try:
                with self.db.engine.begin() as conn:
                    if write_prepared(conn, self.db, batch.one(i), limit):
                        new.append(i)
            except _RETRYABLE:
                raise
            except Exception as exc:
                message_id, site, device_id, kind = row[:4]
                log.error("message %s could not be stored: %s", message_id, exc)
                topic = f"{TOPIC_ROOT}/{site}/{device_id}/{kind}"
                failed.append(Rejected(topic, "store_error", str(exc)[:500], row[-1].encode(), utcnow_naive()))
        with self.db.engine.begin() as conn:
            write_prepared(conn, self.db, PreparedBatch([], [], [], [], failed), limit)
        if batch.devices:
            try:
                with self.db.engine.begin() as conn:
                    write_prepared(conn, self.db, PreparedBatch([], [], [], batch.devices, []), limit)
            except _RETRYABLE:
                raise
            except Exception as exc:
                log.error("device registry update of %d devices failed: %s", len(batch.devices), exc)
        if self.engine is not None and new:
            # The messages are stored by now: a failure here (an outage included) costs their evaluation only.
            try:
                self.engine.on_stored(batch.facts(new))
            except Exception:
                log.exception("alert rules failed on %d messages stored one by one", len(new))
                self.alerts.clear()
        return new
