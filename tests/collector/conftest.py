"""The collector's database for a test, once per backend of tests.support.storage.BACKENDS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.storage import Database, open_database
from tests.support.storage import BACKENDS


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file in the test's folder, or a fresh PostgreSQL database (the pg_url fixture)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/c.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    yield database
    database.dispose()
