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
    from export.mediapipe_models import ensure_models

    from edge.model_store import default_model_dir

    directory = default_model_dir()
    ensure_models(directory)
    return directory
