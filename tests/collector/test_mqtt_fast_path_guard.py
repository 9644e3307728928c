"""The collector's fast MQTT path reads paho internals: it runs only on the paho release it was written for."""

from __future__ import annotations

import logging
import re
import time
import tomllib
from pathlib import Path

import paho.mqtt as paho
import pytest
from sqlalchemy import func, select

from collector import mqtt_client
from collector.ingest import Ingestor, IngestSettings
from collector.mqtt_client import FAST_PATH_PAHO, fast_path_supported
from collector.simulate import Publisher, mixed_stream
from collector.storage import open_database, schema
from tests.support.broker import MosquittoBroker

REPO = Path(__file__).resolve().parents[2]


def test_fast_path_only_on_the_release_it_was_written_for_which_the_collector_extra_pins() -> None:
    major, minor = FAST_PATH_PAHO
    assert fast_path_supported(f"{major}.{minor}.0") and fast_path_supported(f"{major}.{minor}.7")
    assert not fast_path_supported(f"{major}.{minor + 1}.0")
    assert not fast_path_supported(f"{major}.{minor - 1}.3")
    assert not fast_path_supported(f"{major + 1}.0.0")
    assert not fast_path_supported("not-a-version")
    # The pin and the guard name the same release, and it is the one installed.
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (pin,) = [r for r in extras["collector"] if r.startswith("paho-mqtt")]
    assert re.fullmatch(rf"paho-mqtt>={major}\.{minor},<{major}\.{minor + 1}", pin), pin
    assert fast_path_supported(paho.__version__)


def test_on_another_paho_release_ingest_stores_and_acknowledges_through_the_public_api(
    tmp_path: Path, broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(mqtt_client, "fast_path_supported", lambda: False)

    def no_fast_path(*_args: object) -> None:
        raise AssertionError("the fast path handed over a message")

    monkeypatch.setattr(Ingestor, "_on_raw_message", no_fast_path)
    db = open_database(f"sqlite:///{tmp_path}/c.db")
    stream = mixed_stream("school-a", "booth-1", 120, seed=4)

    def run_once(publish: bool) -> int:
        ing = Ingestor(IngestSettings(broker.url, "collector-stock", batch_max=50), db)
        assert not ing.client.fast
        ing.start()
        try:
            assert ing.wait_connected(), "collector did not connect"
            if publish:
                pub = Publisher(broker.url, "pub")
                try:
                    pub.publish_all(stream)
                finally:
                    pub.close()
            deadline = time.monotonic() + (30 if publish else 1.5)
            while time.monotonic() < deadline and not (publish and ing.stats.stored >= len(stream)):
                time.sleep(0.05)
            return ing.stats.received
        finally:
            ing.stop()

    with caplog.at_level(logging.WARNING, logger="collector.mqtt_client"):
        assert run_once(publish=True) == len(stream)
    assert any("public API" in r.getMessage() for r in caplog.records)
    with db.reader.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.scores)).scalar_one() == len(stream)
    # The same persistent session again: whatever the broker still redelivers is a duplicate, and the store stays
    # exact. On this fallback path the PUBACKs of the last batches are sometimes not at the broker when the
    # collector stops at once (seen intermittently; a second later they always are), so the redelivered count is
    # not asserted to be zero here.
    again = run_once(publish=False)
    with db.reader.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.scores)).scalar_one() == len(stream)
    assert again <= len(stream)
    db.dispose()
