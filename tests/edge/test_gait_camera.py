"""Gait booth on the real camera path with real perception: `edgescreen edge run --profile gait-booth.yaml
--source CLIP` (as a side-wall booth, tests/support/booth.py; a child process) → a real broker.

A real photo of a person (skimage's astronaut) slides in from the left, across the frame and out at the
right: exactly one walk-through, reported with its quality outcome (a photo shows no legs, so it cannot be a
screening). A clip with nobody in view yields no walk-through at all. Two photos crossing side by side are one
walk-through reported as `multiple_people`: the booth profile tracks two people and its perception census
takes up the second within `census_every` frames.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np

from edge.roles.gait.message import GaitScreening
from edgescreen.clips import BACKGROUND, astronaut_bgr, make_empty_clip
from tests.edge.test_delivery import Subscriber
from tests.support.booth import only_screening, run_booth, side_wall_profile
from tests.support.broker import MosquittoBroker

SIZE = (640, 480)
FPS = 10.0


def make_crossing_clip(
    path: Path,
    *,
    seconds: float = 4.0,
    margin_s: float = 1.0,
    people: int = 1,
    height_fraction: float = 0.8,
    fps: float = FPS,
) -> int:
    """The photo (`people` copies side by side, 10 % of a photo apart) enters at the image left, crosses at
    constant speed and leaves at the right; `margin_s` of empty corridor before and after. Returns the number
    of frames."""
    width, height = SIZE
    single = astronaut_bgr(int(height * height_fraction))
    gap = np.full((single.shape[0], single.shape[1] // 10, 3), BACKGROUND, np.uint8)
    photo = np.concatenate([single] + [part for _ in range(people - 1) for part in (gap, single)], axis=1)
    ph, pw = photo.shape[:2]
    y0 = (height - ph) // 2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, SIZE)
    assert writer.isOpened()
    n_margin, n_cross = round(margin_s * fps), round(seconds * fps)
    frames = 0
    for i in range(2 * n_margin + n_cross):
        canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
        k = i - n_margin
        if 0 <= k < n_cross:
            x = round(-pw + (width + pw) * (k + 0.5) / n_cross)  # left edge of the photo
            a, b = max(0, x), min(width, x + pw)
            if b > a:
                canvas[y0 : y0 + ph, a:b] = photo[:, a - x : b - x]
        writer.write(canvas)
        frames += 1
    writer.release()
    return frames


def _run(clip: Path, url: str, tmp: Path, model_dir: Path, name: str) -> subprocess.CompletedProcess[str]:
    return run_booth(side_wall_profile(tmp), clip, url, tmp, model_dir, name=name)


def test_photo_crossing_the_frame_is_one_walkthrough_and_an_empty_clip_none(
    tmp_path: Path, broker: MosquittoBroker, model_dir: Path
) -> None:
    crossing, empty = tmp_path / "crossing.avi", tmp_path / "empty.avi"
    n_frames = make_crossing_clip(crossing)
    make_empty_clip(empty, seconds=2.0, fps=FPS, size=SIZE)
    sub = Subscriber(broker)
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "site-secret").write_bytes(b"camera-test-site-secret\n")
    side_wall_profile(tmp_path)  # written before the count of what the runs write
    before = {p for p in tmp_path.rglob("*") if p.is_file()}

    run = _run(crossing, broker.url, tmp_path, model_dir, "crossing")
    assert run.returncode == 0, run.stderr[-3000:]
    assert sub.wait_for(lambda: any(m.kind == "gait" for m, _ in sub.messages), 10), run.stderr[-3000:]
    run_empty = _run(empty, broker.url, tmp_path, model_dir, "empty")
    assert run_empty.returncode == 0, run_empty.stderr[-3000:]
    assert sub.wait_for(lambda: sum(1 for m, _ in sub.messages if m.kind == "status") >= 4, 10)
    sub.close()
    with sub.lock:
        walks = [m for m, _ in sub.messages if isinstance(m, GaitScreening)]
    assert len(walks) == 1, [(w.outcome, w.quality) for w in walks]
    walk = walks[0]
    print("photo crossing:", walk.outcome, walk.quality)
    # the photo has no legs: never screened, but a quality outcome with its counts
    assert walk.outcome in ("poor_view", "too_few_cycles")
    assert walk.measures == {} and walk.probabilities is None and walk.subject is None
    assert walk.quality["net_travel"] > 0.4 and walk.quality["silhouettes"] > 0
    assert 0 < walk.frames <= n_frames
    assert any(m.name.startswith("pose") for m in walk.models)
    # no silhouette, mask, crop or track reached the disk: the runs wrote their outboxes (and ONNX Runtime its
    # one-line session id in $TMPDIR), the broker its own files, nothing else
    new = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    written = {p for p in new if not p.is_relative_to(tmp_path / "broker")}
    allowed = {tmp_path / f"{n}-outbox.sqlite{s}" for n in ("crossing", "empty") for s in ("", "-wal", "-shm")}
    allowed |= {tmp_path / ".ses"}
    assert written <= allowed, sorted(written - allowed)


def test_two_people_crossing_together_are_one_walkthrough_not_screened(
    tmp_path: Path, broker: MosquittoBroker, model_dir: Path
) -> None:
    """Two photos side by side cross at 30 fps: the leading one is tracked first, the census takes up the other
    (the booth profile: max_persons 2, census_every 10), and the walk-through is `multiple_people`."""
    pair = tmp_path / "pair.avi"
    n_frames = make_crossing_clip(pair, people=2, height_fraction=0.5, fps=30.0, margin_s=0.5)
    sub = Subscriber(broker)
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "site-secret").write_bytes(b"camera-test-site-secret\n")
    walk = only_screening(sub, _run(pair, broker.url, tmp_path, model_dir, "pair"))
    print("two people crossing:", walk.outcome, walk.quality)
    assert walk.outcome == "multiple_people"
    assert walk.measures == {} and walk.probabilities is None
    q = walk.quality
    assert q["multi_person_frames"] > 0.15 * q["frames_with_person"]
    assert q["net_travel"] > 0.4 and 0 < walk.frames <= n_frames
