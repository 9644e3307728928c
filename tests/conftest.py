from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import MosquittoBroker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh Mosquitto on a free port, stopped after the test."""
    b = MosquittoBroker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The converted perception models (fetched and converted once; offline when the wheel is cached)."""
    from edge.model_store import default_model_dir
    from export.mediapipe_models import ensure_models

    directory = default_model_dir()
    ensure_models(directory)
    return directory


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database on 127.0.0.1:5432 created for this test and dropped after it."""
    import uuid

    import psycopg

    name = f"edgescreen_test_{uuid.uuid4().hex[:12]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
