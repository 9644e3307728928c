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
