"""Device models trained on avatar data for the one-command chain (train → ONNX → INT8 → card → bundle → install).

Each role's module (`gait`, ...) exposes `train_<role>_models(out_dir, *, budget_s, seed) -> list[TrainedModel]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass
class TrainedModel:
    """One trained model, ready for export.

    `checkpoint`: a training checkpoint (training/checkpoint.py format) that `export.onnx_export` reads;
    `held_out`: a batch of real inputs from subjects the model did not train on (ONNX parity check and INT8
    calibration); `held_out_labels`: their classes (the INT8 parity gate may compare accuracy);
    `card`: the model card (contract/model_card.py) with the subject-disjoint CV figures and their CIs, the data
    it learned from, intended use and limits; `profile_key`: where a device profile names the model
    (e.g. "gait.model").
    """

    name: str
    task: str
    arch: str
    checkpoint: Path
    held_out: npt.NDArray[np.float32]
    held_out_labels: npt.NDArray[np.int64]
    card: dict[str, Any]
    profile_key: str
    notes: list[str] = field(default_factory=list)
