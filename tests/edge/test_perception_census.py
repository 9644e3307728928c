"""The census: while some but fewer than `max_persons` people are tracked, the pose detector runs every
`census_every` frames and takes up newcomers, instead of on every frame (real models on ONNX Runtime).

The clip: the astronaut photo at the left from the first frame, the same photo pasted again at the right
from frame `ARRIVES` on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from contract.landmarks import Landmark as L  # noqa: N817
from edge.backends.base import BackendConfig
from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline
from tests.edge.test_perception_pipeline import astronaut

Image = npt.NDArray[np.uint8]
FRAMES = 20
ARRIVES = 7  # first frame with the second person
EVERY = 5
GAP = 200  # px between the two photos


def clip() -> list[Image]:
    photo = astronaut()
    h, w = photo.shape[:2]
    alone = np.zeros((h, 2 * w + GAP, 3), np.uint8)
    alone[:, :w] = photo
    pair = alone.copy()
    pair[:, w + GAP :] = photo
    return [alone if i < ARRIVES else pair for i in range(FRAMES)]


def run(model_dir: Path, **config: int) -> tuple[list[int], list[list[float]], int]:
    """Persons per frame, their nose x per frame, and how often the detector ran."""
    pipe = PerceptionPipeline(
        PerceptionConfig(backend=BackendConfig(threads=1), face=False, smoothing={"enabled": False}, **config),
        model_dir,
    )
    assert pipe.pose_detector is not None
    counts, noses = [], []
    for i, frame in enumerate(clip()):
        persons = pipe.process(frame, i / 30).persons
        counts.append(len(persons))
        noses.append(sorted(float(p.keypoints[L.NOSE, 0]) for p in persons))
    return counts, noses, pipe.pose_detector.calls


def test_census_takes_up_a_second_person_within_n_frames(model_dir: Path) -> None:
    counts, noses, calls = run(model_dir, max_persons=2, census_every=EVERY)
    first_pair = counts.index(2)
    assert counts[:first_pair] == [1] * first_pair
    assert ARRIVES <= first_pair < ARRIVES + EVERY, counts
    assert counts[first_pair:] == [2] * (FRAMES - first_pair), "both stay tracked"
    width = astronaut().shape[1]
    assert all(n[0] < width and n[1] > width + GAP for n in noses[first_pair:]), "one track on each photo"
    # detector on frame 0 (nobody tracked), then every EVERY frames until two are tracked, then never
    assert calls == 1 + first_pair // EVERY


def test_without_census_the_second_person_is_not_seen(model_dir: Path) -> None:
    counts, _, calls = run(model_dir, max_persons=1)
    assert counts == [1] * FRAMES and calls == 1
    counts, _, calls = run(model_dir, max_persons=2, census_every=0)
    assert counts == [1] * FRAMES and calls == 1, "census 0: the detector waits for a lost track"


def test_census_every_frame_is_the_cost_it_saves(model_dir: Path) -> None:
    """census_every 1 (a detector run on every frame while one person is tracked) finds the newcomer at once."""
    counts, _, calls = run(model_dir, max_persons=2, census_every=1)
    assert counts.index(2) == ARRIVES
    assert calls == ARRIVES + 1
