"""A disk that really fills under the outbox (a small tmpfs): scores that could not be stored are counted, logged
with their count and reported in the heartbeat, and their sequence numbers are never handed out again, not even
by a process started after a run that could not write its outbox at all."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.frame_loop import EdgeRuntime, RunLimits
from edge.heartbeat import StageMeter, build_heartbeat
from edge.outbox import Outbox, OutboxFull
from edge.perception.types import FrameResult
from edge.roles.base import EmitContext
from tests.edge.test_runtime import EveryTenFrames, ListResults, _profile
from tests.support.tmpfs import mounted_tmpfs


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only); skipped where mounting is not allowed."""
    with mounted_tmpfs(tmp_path / "tiny", "2m") as mount:
        yield mount


def fill(disk: Path) -> Path:
    """Fill `disk` to the last byte with one file; removing the file gives the space back."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                continue
    return filler


def test_scores_lost_on_a_full_disk_are_counted_and_their_seqs_never_reused(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tiny_disk / "outbox.sqlite"
    box = Outbox(path)
    for _ in range(5):
        seq = box.next_seq()
        box.put("t/ok", b"stored %d" % seq, seq)
    filler = fill(tiny_disk)
    lost: list[int] = []
    with caplog.at_level(logging.CRITICAL, logger="edge.outbox"):
        for _ in range(40):
            seq = box.next_seq()
            with pytest.raises(OutboxFull):
                box.put("t/lost", os.urandom(8192), seq)
            lost.append(seq)
        box.record_lost(len(lost), "the disk is full")
    assert box.lost == len(lost) == 40
    assert "40 score(s) lost (the disk is full)" in caplog.text
    # the process ends while the disk is still full: nothing more can be written
    box.close()

    filler.unlink()
    with Outbox(path) as again:
        assert [m.payload for m in again.pending()] == [b"stored %d" % i for i in range(5)]
        first = again.next_seq()
        assert first > max(lost), f"seq {first} handed out again after {max(lost)} was lost"


def test_losses_are_kept_on_disk_once_there_is_room(tiny_disk: Path) -> None:
    path = tiny_disk / "outbox.sqlite"
    with Outbox(path) as box:
        box.put("t/ok", b"x", box.next_seq())
        filler = fill(tiny_disk)
        box.record_lost(3, "the disk is full")
        assert box.lost == 3
        filler.unlink()  # room again: the next write records the count with it
        box.put("t/ok", b"y", box.next_seq())
        box.record_lost(2, "the disk is full")
        assert box.lost == 5
    with Outbox(path) as box:
        assert box.lost == 5


def test_sequence_numbers_survive_a_kill_without_reuse(tmp_path: Path) -> None:
    """Numbers handed out but never stored (the process died first) are not handed out again; a clean close
    continues exactly where it stopped."""
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    handed = [box.next_seq() for _ in range(7)]
    box.put("t", b"0", handed[0])
    # no close: as after SIGKILL, only what was committed is on disk
    with Outbox(path) as again:
        assert again.next_seq() > max(handed)
        after = [again.next_seq() for _ in range(3)]
    with Outbox(path) as third:
        assert third.next_seq() == after[-1] + 1
    box.close()


class FillsDiskAfter(ListResults):
    """Camera results that fill the disk under the outbox after `at` frames."""

    def __init__(self, n: int, at: int, disk: Path) -> None:
        super().__init__(n, 0.0)
        self.at, self.disk = at, disk
        self.filler: Path | None = None

    def poll(self, timeout: float, meter: StageMeter) -> FrameResult | None:
        if self.i == self.at:
            self.filler = fill(self.disk)
        return super().poll(timeout, meter)


def test_a_run_on_a_disk_that_fills_reports_its_losses(
    tmp_path: Path, tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    profile = _profile(tmp_path, "mqtt://127.0.0.1:1")
    outbox = Outbox(tiny_disk / "outbox.sqlite")
    seqs: list[int] = []

    def next_seq() -> int:
        seqs.append(outbox.next_seq())
        return seqs[-1]

    results = FillsDiskAfter(95, 30, tiny_disk)
    ctx = EmitContext(site="site-1", device_id="dev-1", next_seq=next_seq)
    runtime = EdgeRuntime(profile, results, EveryTenFrames(ctx), outbox, None, limits=RunLimits())
    with caplog.at_level(logging.CRITICAL):
        summary = runtime.run()
    assert summary.frames == 95 and len(seqs) == 10
    stored = len(outbox.pending())
    assert stored == 3, "the windows closed before the disk filled are stored"
    assert "7 score(s) lost" in caplog.text, "the scores held in memory at exit were dropped without a word"
    health = runtime.health()
    assert health.scores_lost == 7
    beat = build_heartbeat(site="site-1", device_id="dev-1", seq=outbox.current_seq(), uptime_s=1.0, fps={},
                           health=health)  # fmt: skip
    assert beat.scores_lost == 7
    outbox.close()

    assert results.filler is not None
    results.filler.unlink()
    with Outbox(tiny_disk / "outbox.sqlite") as again:
        assert again.next_seq() > max(seqs), "a later run would reuse the lost scores' sequence numbers"
