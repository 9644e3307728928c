"""An honest replay through the real collector: a file processed much faster than real time (15 minutes of
media in seconds) with the shipped office-posture profile stamps no window after the moment it was made, so the
collector, which refuses times ahead of its clock (reason `clock`), stores every window."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

from sqlalchemy import select

from collector.service import CollectorService, ServiceSettings
from collector.storage import schema
from tests.support.broker import MosquittoBroker
from tests.support.posture_replay import POSTURE_PROFILE, write_posture_replay

MINUTES = 15


def test_a_fast_file_replay_is_stored_whole_by_the_collector(tmp_path: Path, broker: MosquittoBroker) -> None:
    replay = tmp_path / "desk.npz"
    write_posture_replay(replay, minutes=MINUTES)
    service = CollectorService(
        ServiceSettings(broker_url=broker.url, db_url=f"sqlite:///{tmp_path}/c.db", client_id="c1")
    )
    service.start()
    try:
        assert service.ingestor.wait_connected()
        cmd = [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(POSTURE_PROFILE), "--replay",
               str(replay), "--broker", broker.url, "--outbox", str(tmp_path / "outbox.sqlite")]  # fmt: skip
        started = time.monotonic()
        run = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                             timeout=180, check=False)  # fmt: skip
        took = time.monotonic() - started
        assert run.returncode == 0, run.stderr[-3000:]
        assert took < MINUTES * 60 / 4, "the replay must run well ahead of real time for this test to mean anything"
        db = service.db
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with db.reader.connect() as conn:
                windows = conn.execute(
                    select(schema.scores.c.window_start, schema.scores.c.window_end, schema.scores.c.received_at)
                    .where(schema.scores.c.kind == "posture")
                    .order_by(schema.scores.c.window_end)
                ).all()
                dead = conn.execute(select(schema.dead_letters.c.reason, schema.dead_letters.c.detail)).all()
            if len(windows) + len(dead) >= MINUTES:
                break
            time.sleep(0.2)
    finally:
        service.stop()
    assert dead == [], dead
    assert len(windows) == MINUTES, run.stderr[-2000:]
    for start, end, received in windows:
        assert start <= end <= received, (start, end, received)
    # One after the other, never overlapping.
    assert all(a[1] <= b[0] for a, b in pairwise(windows))
