"""The posture role's keypoint model: the keypoint MLP (training/models/keypoint_mlp.py) on the 33 landmarks the
device's own perception finds in avatar office-desk images, labelled with the cervicogenic-headache risk rule.

`train_posture_models(out_dir, budget_s=..., seed=...)` renders the set (or reads a keypoint folder given as
`data`), cross-validates by subject, fits the final model on every subject and returns one `TrainedModel`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.device_models import TrainedModel
from training.device_models.cards import base_card
from training.device_models.evaluation import cross_validate, summary

log = logging.getLogger(__name__)

TASK = "posture-keypoints"
ARCH = "keypoint_mlp"
HELD_OUT_SEED_OFFSET = 7002


IMAGES_PER_S = 16.0  # office-desk images rendered and read by perception per second (2-core x86-64 machine)


@dataclass(frozen=True)
class PosturePlan:
    images: int
    folds: int
    epochs: int
    held_out: int
    bootstrap_rounds: int = 500

    @classmethod
    def for_budget(cls, budget_s: float) -> PosturePlan:
        """About 16 office-desk images/s rendered and run through perception on the 2-core machine (1446 in about
        80 s); training the MLP takes seconds."""
        if budget_s < 120:
            return cls(images=40, folds=2, epochs=3, held_out=12, bootstrap_rounds=50)
        return cls(images=int(min(3000, max(200, budget_s * 0.8 * IMAGES_PER_S))), folds=4, epochs=60, held_out=64)


def load_set(path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    from training.data import load_task_data
    from training.datasets.image_folder import read_labels_csv

    data = load_task_data(TASK, str(path))
    rows = read_labels_csv(path / "labels.csv", ("subject_id", "file"))
    groups: dict[str, np.ndarray] = {
        c: np.asarray([r[c] for r in rows], np.str_) for c in ("sex", "age_group", "view") if c in rows[0]
    }
    return data, groups


def train_posture_models(
    out_dir: Path, *, budget_s: float = 300.0, seed: int = 0, data: Path | None = None,
    plan: PosturePlan | None = None,
) -> list[TrainedModel]:  # fmt: skip
    """Train the posture role's keypoint model within about `budget_s` seconds; everything under `out_dir`."""
    from training.datasets.avatar_posture import write_posture_sets
    from training.models.inputs import prepare
    from training.train import TrainConfig

    plan = plan or PosturePlan.for_budget(budget_s)
    out_dir = Path(out_dir)
    if data is None:
        made = write_posture_sets(out_dir / "data" / "posture", plan.images, seed, images=False)
        data = out_dir / "data" / "posture" / "keypoints"
        log.info("posture: %d office-desk images, perception found nobody in %d", made["images"], made["no_person"])
    held_root = out_dir / "data" / "posture-held-out"
    write_posture_sets(held_root, plan.held_out, seed + HELD_OUT_SEED_OFFSET, images=False)
    task_data, groups = load_set(Path(data))
    cfg = TrainConfig(
        task=TASK, data=str(data), arch=ARCH, folds=plan.folds, epochs=plan.epochs, seed=seed, batch_size=32,
        patience=10, bootstrap_rounds=plan.bootstrap_rounds, progress=False, cam_examples=0,
    )  # fmt: skip
    train_dir = out_dir / "train" / TASK
    cv = cross_validate(cfg, task_data, train_dir, groups)
    figures = summary(cv, TASK, rounds=plan.bootstrap_rounds, seed=seed)
    held, _ = load_set(held_root / "keypoints")
    ready = prepare(held)
    card = base_card(
        name="posture-keypoints", task=TASK, arch=ARCH, report=cv.report, figures=figures,
        data={
            "source": f"avatar office-desk scene through the device's perception (training/datasets/"
                      f"avatar_posture.py), seed {seed}",
            "path": str(data), "samples": len(task_data), "subjects": figures["subjects"],
            "held_out": f"{len(held)} images of other subjects (seed {seed + HELD_OUT_SEED_OFFSET})",
            "labels": "control / ch by labels.ch_label (forward-head score, 10 % of labels flipped)",
        },
        intended_use="Gives the posture role's window a mean probability of the cervicogenic-headache risk "
        "posture (posture.model, input: keypoints) beside the rule-based metric bands.",
        limits=[
            "Trained on rendered avatars only: synthetic, not clinical; the label is the generator's rule, not a "
            "diagnosis.",
            "Forward head posture shows best from the side; from a monitor camera (front view) the model sees "
            "little of it (docs/results.md gives the figures by view).",
        ],
    )  # fmt: skip
    return [
        TrainedModel(
            name="posture-keypoints", task=TASK, arch=ARCH, checkpoint=train_dir / "model.pt",
            held_out=np.asarray(ready.x, np.float32), held_out_labels=np.asarray(ready.y, np.int64), card=card,
            profile_key="posture.model",
        )
    ]  # fmt: skip
