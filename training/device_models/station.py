"""The head-pose station's shift regressor, trained on avatar head-station images (study 002's recipe).

`train_station_models(out_dir, budget_s=..., seed=...)` renders a head-shift avatar set (or reads one given as
`data`, e.g. the 16,000-image set of docs/results.md), cross-validates the regressor by subject, fits the final
model on every subject, renders a held-out set of other subjects for the ONNX parity check and INT8 calibration,
and returns one `TrainedModel` for the chain."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.device_models import TrainedModel
from training.device_models.cards import base_card
from training.device_models.evaluation import cross_validate, summary

log = logging.getLogger(__name__)

TASK = "head-shift"
ARCH = "head_shift_cnn"
HELD_OUT_SEED_OFFSET = 7001  # held-out subjects come from another seed: no subject of training is among them


RENDER_IMAGES_PER_S = 20.0  # head-station crops rendered per second (2-core x86-64 machine)
EPOCH_S_PER_IMAGE = 0.0025  # one epoch of the quarter-width model per training image, same machine


@dataclass(frozen=True)
class StationPlan:
    """How much to render and train: `images` of the set, CV `folds`, `epochs` at most, held-out images."""

    images: int
    folds: int
    epochs: int
    held_out: int
    width: str = "small"
    bootstrap_rounds: int = 500

    @classmethod
    def for_budget(cls, budget_s: float) -> StationPlan:
        """Measured on the 2-core x86-64 machine with nothing else running: about 20 images/s rendered, and one
        epoch of the small model takes about 0.0025 s per training image (1950 images, 3 folds and the final fit
        at 12 epochs: 175 s); the plan keeps rendering plus the folds' and the final fit inside `budget_s`, with a
        third to spare for a busier machine."""
        if budget_s < 120:
            return cls(images=48, folds=2, epochs=2, held_out=16, bootstrap_rounds=50)
        epochs, folds = 12, 3
        per_image_s = 1 / RENDER_IMAGES_PER_S + EPOCH_S_PER_IMAGE * epochs * folds  # (folds-1)/folds each + final
        images = int(min(8000, max(400, 0.67 * budget_s / per_image_s)))
        return cls(images=images, folds=folds, epochs=epochs, held_out=96)


def load_set(path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    """A head-shift image folder as TaskData, plus its breakdown columns (sex, age group) by sample."""
    from training.data import load_task_data
    from training.datasets.image_folder import read_labels_csv

    data = load_task_data(TASK, str(path))
    rows = read_labels_csv(path / "labels.csv", ("subject_id", "image"))
    groups = {}
    for column in ("sex", "age_group"):
        if all(column in r for r in rows):
            groups[column] = np.asarray([r[column] for r in rows], np.str_)
    return data, groups


def train_station_models(
    out_dir: Path, *, budget_s: float = 600.0, seed: int = 0, data: Path | None = None,
    plan: StationPlan | None = None,
) -> list[TrainedModel]:  # fmt: skip
    """Train the station's shift regressor within about `budget_s` seconds; everything goes under `out_dir`."""
    from training.datasets.avatar_head_shift import write_head_shift_set
    from training.models.inputs import prepare
    from training.train import TrainConfig

    plan = plan or StationPlan.for_budget(budget_s)
    out_dir = Path(out_dir)
    started = time.monotonic()
    if data is None:
        data = out_dir / "data" / "head-shift"
        made = write_head_shift_set(data, plan.images, seed)
        log.info("station: rendered %d head-shift images of %d subjects in %.0f s", made["images"],
                 made["subjects"], made["seconds"])  # fmt: skip
    held_dir = out_dir / "data" / "head-shift-held-out"
    write_head_shift_set(held_dir, plan.held_out, seed + HELD_OUT_SEED_OFFSET)
    task_data, groups = load_set(Path(data))
    cfg = TrainConfig(
        task=TASK, data=str(data), arch=ARCH, folds=plan.folds, epochs=plan.epochs, width=plan.width, seed=seed,
        batch_size=32, lr=3e-3, patience=10, bootstrap_rounds=plan.bootstrap_rounds, progress=False, cam_examples=0,
    )  # fmt: skip
    train_dir = out_dir / "train" / TASK
    cv = cross_validate(cfg, task_data, train_dir, groups)
    figures = summary(cv, TASK, rounds=plan.bootstrap_rounds, seed=seed)
    held, _ = load_set(held_dir)
    ready = prepare(held, width=plan.width)
    card = base_card(
        name="head-shift", task=TASK, arch=ARCH, report=cv.report, figures=figures,
        data={
            "source": f"avatar head-station scene (training/datasets/avatar_head_shift.py), seed {seed}",
            "path": str(data), "images": len(task_data), "subjects": figures["subjects"],
            "held_out": f"{len(held)} images of other subjects (seed {seed + HELD_OUT_SEED_OFFSET})",
            "targets": "lateral, sagittal head shift in head widths (labels.head_shift_target's rule, rater sd "
                       "0.03)",
        },
        intended_use="Adds a second estimate of the head's lateral and sagittal shift over the trunk, in cm, to "
        "the head-pose station's session windows (headpose.shift_source: both), beside the keypoint measure.",
        limits=[
            "Trained on rendered avatars only: synthetic, not clinical; never validated on patients.",
            "Reads the square the station cuts from the shoulder keypoints of a subject facing the camera; a turned "
            "trunk, hidden shoulders or a camera far off level give no value or a biased one.",
            "Head widths become cm by one fixed head width (headpose.shift_model.head_width_cm).",
        ],
    )  # fmt: skip
    log.info("station: shift regressor trained in %.0f s", time.monotonic() - started)
    return [
        TrainedModel(
            name="head-shift", task=TASK, arch=ARCH, checkpoint=train_dir / "model.pt",
            held_out=np.asarray(ready.x, np.float32), held_out_labels=np.asarray(ready.y),
            card=card, profile_key="headpose.shift_model",
        )
    ]  # fmt: skip
