"""train_booth_models on a tiny budget: a TrainedModel whose ONNX export, with its model card, the booth runs.

The walks are tests/training/skeleton_walks.py's stick figures written in the perceived-walk layout
(training/synth/booth_dataset.py) instead of rendered and perceived avatar walks, which take about 30 s each on
the 2-core test machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from contract.model_card import card_metadata
from edge.roles.gait.analyzer import GaitModel
from edge.roles.gait.config import GaitModelConfig
from tests.training.skeleton_walks import walk_set
from training.device_models.gait import BoothPlan, load_walk_set, train_booth_models
from training.synth.booth_dataset import WalkRecord


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


def test_walk_set_keeps_only_perceived_frames_of_the_geometry(tmp_path: Path) -> None:
    write_walks(tmp_path, 7, seed=1, last_across=True)
    walks = load_walk_set(tmp_path)
    assert len(walks) == 6  # the walk across a side-wall camera is another input
    assert all(len(s) == 37 for s in walks.sequences)  # the 3 frames without the person are not fed
    assert set(walks.age_group.tolist()) <= {"10-12", "13-16"}
    assert len(load_walk_set(tmp_path, geometry=None)) == 7


def test_tiny_budget_gives_a_model_the_booth_accepts(tmp_path: Path) -> None:
    from export.onnx_export import export_module
    from training.checkpoint import load_checkpoint

    data = tmp_path / "walks-set"
    write_walks(data, 16, seed=2)
    plan = BoothPlan(walks=0, folds=2, epochs=3, held_out_fraction=0.25, bootstrap_rounds=50)
    (model,) = train_booth_models(tmp_path / "out", data=data, plan=plan, seed=0)
    assert model.profile_key == "gait.model" and model.arch == "skeleton_gait"
    assert model.held_out.shape[1:] == (32, 17, 3) and len(model.held_out) == len(model.held_out_labels) >= 2
    card = model.card
    assert card["trained"] is True and len(card["data_sha256"]) == 64
    pooled = card["cv"]["pooled"]
    assert pooled["n"] == 16 and len(pooled["recall_per_class"]) == 3
    screening = card["cv"]["screening"]
    assert {"auc_positive", "auc_positive_ci95", "recall_at_spec80", "recall_at_spec80_ci95"} <= set(screening)
    assert "all subjects but the" in card["training"]["final_fit"]
    cv_file = json.loads((tmp_path / "out/train/skeleton_gait/cv.json").read_text())
    assert cv_file["pooled"] == pooled

    module, meta = load_checkpoint(model.checkpoint)
    onnx_path = tmp_path / "gait-skeleton.onnx"
    export_module(module, meta, onnx_path, model.held_out)
    proto = onnx.load(str(onnx_path))
    for key, value in card_metadata(card).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(onnx_path))

    booth_model = GaitModel(GaitModelConfig(path=onnx_path))  # refuses untrained models: this one is accepted
    assert booth_model.kind == "keypoints"
    walks, _, _ = walk_set(1, seed=9, frames=40)
    probs = booth_model.probabilities([], list(walks[0]), 0.5)
    assert probs is not None and abs(sum(probs.values()) - 1.0) < 1e-5
