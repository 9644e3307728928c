"""`edgescreen edge run` on a disk that fills during the run: the scores it could not store are lost, and the run
says so in one line and exits non-zero instead of 0 (the shipped office-posture profile, a replay, a 2 MiB tmpfs)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.edge.test_outbox_disk_full import fill, tiny_disk  # noqa: F401 - the fixture
from tests.support.posture_replay import POSTURE_PROFILE, write_posture_replay


def test_a_run_that_lost_scores_exits_non_zero_and_says_how_many(tmp_path: Path, tiny_disk: Path) -> None:  # noqa: F811
    replay = tmp_path / "desk.npz"
    write_posture_replay(replay, minutes=60)  # 60 windows, made in a few seconds
    outbox = tiny_disk / "outbox.sqlite"
    cmd = [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(POSTURE_PROFILE), "--replay",
           str(replay), "--broker", "mqtt://127.0.0.1:1", "--outbox", str(outbox)]  # fmt: skip
    run = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not outbox.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    fill(tiny_disk)  # the disk fills once the run has its outbox open
    _out, err = run.communicate(timeout=120)
    assert run.returncode == 1, err[-3000:]
    found = re.findall(r"ERROR edge\.commands\.runtime: (exiting with status 1: (\d+) score\(s\) .* lost .*)", err)
    assert len(found) == 1, err[-3000:]
    assert 0 < int(found[0][1]) <= 60
