"""Training the head-shift regressor keeps the head where it is: the shift is the head's place in the square the
station cuts, so the training batches of `head-shift` are never translated (a 3-pixel roll at 64 x 64 equals the
whole range of the lateral target); other image tasks still are."""

from __future__ import annotations

import numpy as np
import torch

from training.data import TaskData, input_spec
from training.models.inputs import prepare
from training.train import TrainConfig, Trainer


def _data(task: str) -> TaskData:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 64, 64, 3), dtype=np.uint8)
    targets = rng.normal(size=(6, 2)).astype(np.float32) if task == "head-shift" else np.arange(6) % 2
    return TaskData(task, images, targets, np.asarray([f"S{i}" for i in range(6)]), None if task == "head-shift"
                    else ["control", "ch"], input_spec(task, 64), {})  # fmt: skip


def _moved_pixels(task: str) -> float:
    cfg = TrainConfig(task=task, data="synthetic", width="small", progress=False)
    prepared = prepare(_data(task), width="small")
    trainer = Trainer(cfg, "head_shift_cnn" if task == "head-shift" else "resnet34", prepared, {})
    idx = np.arange(6)
    batch = trainer._batch_x(idx, True, torch.Generator().manual_seed(1))
    ref = prepared.x[torch.as_tensor(idx)]
    # a contrast gain keeps each image proportional to itself; a translation does not
    gain = (batch * ref).sum(dim=(1, 2, 3)) / (ref * ref).sum(dim=(1, 2, 3))
    return float((batch - gain[:, None, None, None] * ref).abs().max())


def test_head_shift_batches_are_not_translated() -> None:
    assert _moved_pixels("head-shift") < 1e-4


def test_other_image_tasks_still_are() -> None:
    assert _moved_pixels("posture-image") > 0.1
