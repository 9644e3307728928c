"""train_booth_models on a tiny budget: a TrainedModel whose ONNX export, with its model card, the booth runs.

The walks are stick figures in the perceived-walk layout (tests/support/booth_models.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from contract.model_card import card_metadata
from edge.roles.gait.analyzer import GaitModel
from edge.roles.gait.config import GaitModelConfig
from tests.support.booth_models import tiny_booth_model, write_walks
from tests.training.skeleton_walks import walk_set
from training.device_models.gait import load_walk_set


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

    model = tiny_booth_model(tmp_path)
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
