"""Replay files (perception results on disk) and the synthetic booth walk-throughs written with them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract.landmarks import Landmark
from edge.perception.types import FrameResult, HeadPose, Person
from edge.replay import ReplayError, read_replay, write_replay
from training.synth.walkthrough import booth_camera, render_walkthrough, scenario_walkers, write_walkthroughs


def _person(rng: np.random.Generator, width: int, height: int, with_mask: bool) -> Person:
    mask = None
    if with_mask:
        mask = np.zeros((height, width), np.float32)
        mask[10:37, 5:22] = rng.uniform(0.6, 1.0, (27, 17))
        mask[12, 7] = 0.2  # below the 0.5 threshold: stored as background
    return Person(
        score=0.87,
        bbox=(5.0, 10.0, 22.0, 37.0),
        keypoints=rng.uniform(0, 40, (33, 3)).astype(np.float32),
        world=rng.normal(0, 0.5, (33, 3)).astype(np.float32),
        mask=mask,
        head_pose=HeadPose(10.0, -5.0, 2.5) if with_mask else None,
    )


def test_replay_round_trips_frames_persons_and_masks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w, h = 48, 40
    frames = [
        FrameResult(0.0, w, h, []),
        FrameResult(0.04, w, h, [_person(rng, w, h, True)]),
        FrameResult(0.08, w, h, [_person(rng, w, h, True), _person(rng, w, h, False)]),
    ]
    assert write_replay(tmp_path / "r.npz", frames) == 3
    back = list(read_replay(tmp_path / "r.npz"))
    assert [f.timestamp for f in back] == [0.0, 0.04, 0.08]
    assert [len(f.persons) for f in back] == [0, 1, 2]
    assert all((f.width, f.height) == (w, h) for f in back)
    for orig, got in zip(frames[2].persons, back[2].persons, strict=True):
        assert np.array_equal(orig.keypoints, got.keypoints) and np.array_equal(orig.world, got.world)
        assert got.bbox == orig.bbox and got.score == pytest.approx(orig.score)
    first = back[1].persons[0]
    assert first.mask is not None and first.mask.shape == (h, w) and first.mask.dtype == np.float32
    original = frames[1].persons[0].mask
    assert original is not None
    assert np.array_equal(first.mask, (original >= 0.5).astype(np.float32))
    assert first.head_pose == HeadPose(10.0, -5.0, 2.5)
    assert back[2].persons[1].mask is None and back[2].persons[1].head_pose is None


def test_replay_masks_are_stored_compactly(tmp_path: Path) -> None:
    w, h = 640, 480
    mask = np.zeros((h, w), np.float32)
    mask[100:400, 300:360] = 1.0
    person = Person(0.9, (300, 100, 360, 400), np.zeros((33, 3), np.float32), np.zeros((33, 3), np.float32), mask)
    write_replay(tmp_path / "m.npz", [FrameResult(i / 25, w, h, [person]) for i in range(50)])
    assert (tmp_path / "m.npz").stat().st_size < 50 * w * h / 8 / 20  # far below one raw bitmap per frame


def test_replay_rejects_bad_input_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "none.npz"
    with pytest.raises(ReplayError, match="not found") as info:
        list(read_replay(missing))
    assert info.value.path == missing
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"no zip here")
    with pytest.raises(ReplayError, match="not a readable") as info:
        list(read_replay(junk))
    assert info.value.path == junk
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ReplayError, match="format"):
        list(read_replay(other))
    good = tmp_path / "good.npz"
    person = Person(0.9, (0, 0, 1, 1), np.zeros((33, 3), np.float32), np.zeros((33, 3), np.float32))
    write_replay(good, [FrameResult(0.0, 8, 8, [person])])
    with np.load(good) as npz:
        arrays = dict(npz)
    arrays["keypoints"] = np.zeros((1, 17, 3), np.float32)
    broken = tmp_path / "broken.npz"
    np.savez(broken, **arrays)
    with pytest.raises(ReplayError, match="'keypoints' has shape") as info:
        list(read_replay(broken))
    assert info.value.path == broken
    with pytest.raises(ValueError, match="frame 1 is 9x8"):
        write_replay(tmp_path / "sizes.npz", [FrameResult(0.0, 8, 8), FrameResult(0.1, 9, 8)])


def _centres(frames: list[FrameResult]) -> list[float]:
    return [0.5 * (f.persons[0].bbox[0] + f.persons[0].bbox[2]) for f in frames if f.persons]


def test_screening_walkthrough_enters_crosses_left_to_right_and_leaves() -> None:
    frames, label = render_walkthrough("positive", seed=0, index=1)
    assert label["expected"] == "screened" and label["class"] == "positive" and abs(label["cobb"]) >= 20
    assert not frames[0].persons and not frames[-1].persons  # empty corridor before and after
    assert max(len(f.persons) for f in frames) == 1
    xs = _centres(frames)
    assert xs[-1] - xs[0] > 0.7 * 640
    cycles = (label["frames_with_person"] / label["fps"]) / label["cycle_s"]
    assert cycles >= 3  # several gait cycles in view
    p = next(f.persons[0] for f in frames[len(frames) // 2 :] if f.persons)
    assert p.mask is not None
    kp = p.keypoints
    near = cv2.dilate(p.mask, np.ones((7, 7), np.uint8))  # allow the estimator's few-pixel noise
    inside = [near[int(y), int(x)] for x, y, v in kp if v > 0.8 and 0 <= x < 640 and 0 <= y < 480]
    assert len(inside) > 20 and np.mean(inside) > 0.9  # confident keypoints lie on the person's mask
    assert kp[Landmark.NOSE, 1] < kp[Landmark.LEFT_HIP, 1] < kp[Landmark.LEFT_ANKLE, 1]
    assert abs(float(p.world[Landmark.LEFT_HIP, 0] + p.world[Landmark.RIGHT_HIP, 0])) < 1e-3  # hip-centred world


@pytest.mark.parametrize(
    ("scenario", "check"),
    [
        ("two_people", lambda frames, xs: max(len(f.persons) for f in frames) == 2),
        ("wrong_direction", lambda frames, xs: xs[-1] - xs[0] < -0.7 * 640),
        ("standing", lambda frames, xs: np.ptp(xs) < 20 and len(xs) > 50),
        ("partial", lambda frames, xs: max(xs) - xs[0] > 150 and abs(xs[-1] - xs[0]) < 120),
    ],
)
def test_bad_walkthroughs_have_their_defect(scenario: str, check: object) -> None:
    frames, label = render_walkthrough(scenario, seed=0, index=3)
    assert label["scenario"] == scenario and label["expected"] != "screened"
    assert callable(check) and check(frames, _centres(frames))


def test_walkthroughs_write_replays_with_labels_deterministically(tmp_path: Path) -> None:
    first = write_walkthroughs(tmp_path / "a", 2, seed=4, scenarios=("negative", "standing"))
    write_walkthroughs(tmp_path / "b", 2, seed=4, scenarios=("negative", "standing"))
    write_walkthroughs(tmp_path / "c", 1, seed=5, scenarios=("negative",))
    doc = json.loads(first.read_text())
    assert set(doc["files"]) == {"walk_0000.npz", "walk_0001.npz"}
    assert doc["files"]["walk_0001.npz"]["expected"] == "standing_still"
    for name in doc["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "walk_0000.npz").read_bytes() != (tmp_path / "c" / "walk_0000.npz").read_bytes()
    frames = list(read_replay(tmp_path / "a" / "walk_0000.npz"))
    assert len(frames) == doc["files"]["walk_0000.npz"]["n_frames"]
    assert frames[1].timestamp == pytest.approx(1 / 25)


def test_positive_walkthroughs_show_more_shoulder_asymmetry_than_negative_ones() -> None:
    def shoulder_tilt(scenario: str, index: int) -> float:
        rng = np.random.default_rng([2, index])
        walkers, _ = scenario_walkers(scenario, rng, booth_camera(rng))
        joints = walkers[0].joints  # world frame, Y up (the camera's downward pitch would add a side-view bias)
        diff = joints[:, Landmark.RIGHT_SHOULDER, 1] - joints[:, Landmark.LEFT_SHOULDER, 1]
        return abs(float(diff.mean()))

    positive = [shoulder_tilt("positive", i) for i in range(4)]
    negative = [shoulder_tilt("negative", i) for i in range(4, 8)]
    # A >= 20 deg Cobb curve tilts the shoulders by about a centimetre or more on average; posture noise can hide
    # it in an individual student, as it does in a real screening.
    assert np.mean(positive) > 0.008
    assert np.mean(positive) > 2 * np.mean(negative), (positive, negative)


def test_replay_bytes_do_not_depend_on_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    points = np.ones((33, 3), np.float32)
    person = Person(0.9, (0, 0, 4, 4), points, points * 0, np.ones((8, 8), np.float32))
    frames = [FrameResult(0.0, 8, 8, [person])]
    write_replay(tmp_path / "a.npz", frames)
    later = time.time() + 7200
    monkeypatch.setattr(time, "time", lambda: later)
    write_replay(tmp_path / "b.npz", frames)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
