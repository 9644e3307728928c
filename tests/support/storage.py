"""Store messages the way the collector's ingest and writer processes do, for tests that need a populated database."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pytest
from sqlalchemy import Connection

from collector.storage.engine import Database
from collector.storage.writes import BatchBuilder, PreparedBatch, Rejected, write_prepared
from collector.timeutil import utcnow_naive
from contract.wire import DeviceMessage, encode

# The databases a collector test runs on: `params=BACKENDS`, PostgreSQL only where the `postgres` mark is selected.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def store_batch(
    conn: Connection,
    db: Database,
    messages: Iterable[DeviceMessage],
    rejected: Iterable[Rejected] = (),
    *,
    received_at: datetime | None = None,
    dead_letter_limit: int = 100,
) -> tuple[PreparedBatch, list[int]]:
    """One batch inside the caller's transaction: the prepared batch and its new row indexes."""
    builder = BatchBuilder(db.dialect)
    received = received_at or utcnow_naive()
    for message in messages:
        builder.add(message, encode(message).decode(), received)
    for bad in rejected:
        builder.reject(bad)
    batch = builder.build()
    return batch, write_prepared(conn, db, batch, dead_letter_limit)
