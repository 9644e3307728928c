"""A booth gait model trained on a tiny budget, for the tests of what comes after training (export, the bundle,
the booth running it).

The walks are tests/training/skeleton_walks.py's stick figures written in the perceived-walk layout
(training/synth/booth_dataset.py) instead of rendered and perceived avatar walks, which take about 30 s each on
the 2-core test machine. Needs the train extra.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.training.skeleton_walks import walk_set
from training.device_models import TrainedModel
from training.device_models.gait import BoothPlan, train_booth_models
from training.synth.booth_dataset import WalkRecord

TINY_PLAN = BoothPlan(walks=0, folds=2, epochs=3, held_out_fraction=0.25, bootstrap_rounds=50)


def write_walks(out: Path, n: int, seed: int, *, last_across: bool = False) -> None:
    """`n` perceived-looking walks along the corridor (the booth's geometry); the last one across it if asked."""
    walks, _, infos = walk_set(n, seed, frames=40)
    for info in infos:
        info["geometry"] = "along"
    if last_across:
        infos[-1]["geometry"] = "across"
    (out / "walks").mkdir(parents=True)
    for i, (kp, info) in enumerate(zip(walks, infos, strict=True)):
        t = len(kp)
        people = np.ones(t, np.int64)
        people[:3] = 0  # the walk starts before the person is found
        kp[:3] = np.nan
        rec = WalkRecord(
            f"S{i:05d}", np.arange(t) / 15.0, people, np.zeros((t, 4), np.float32), kp,
            np.zeros_like(kp), np.zeros((t, 64, 44), np.uint8), np.zeros(t, bool), 640, 480,
            dict(info, subject=f"S{i:05d}", frames=t),
        )  # fmt: skip
        rec.save(out / "walks" / f"{rec.subject}.npz")


def tiny_booth_model(out: Path, *, walks: int = 16, seed: int = 2) -> TrainedModel:
    """train_booth_models with TINY_PLAN on `walks` stick-figure walks (written to out/walks-set, trained under
    out/out): a trained, carded model in a few seconds, though one that has not learned much."""
    data = out / "walks-set"
    write_walks(data, walks, seed=seed)
    (model,) = train_booth_models(out / "out", data=data, plan=TINY_PLAN, seed=0)
    return model
