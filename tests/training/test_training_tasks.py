"""Each task trains a tiny configuration on a small synthetic set and must beat chance on held-out folds.

The fast tests (keypoint tasks, the CLI, determinism) run in `make test`; the X-ray model needs minutes of CPU
and is marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from contract.labels import FLEXION_LABELS, POSTURE_LABELS
from training.train import TrainConfig, run_training

torch.set_num_threads(1)


def train(task: str, n: int, tmp: Path, **overrides: Any) -> dict[str, Any]:
    from training.data import load_task_data

    settings: dict[str, Any] = {
        "task": task, "data": f"synthetic:{n}", "folds": 3, "epochs": 20, "width": "small", "batch_size": 16,
        "bootstrap_rounds": 100, "final_fit": False, "progress": False, "threads": 1,
    }  # fmt: skip
    settings.update(overrides)
    cfg = TrainConfig(**settings)
    return run_training(cfg, tmp, data=load_task_data(task, cfg.data, cfg.seed))


def held_out_auc(report: dict[str, Any]) -> float:
    # pooled over the held-out folds: every sample predicted by a model that never saw its subject
    return float(report["pooled"]["auc"])


def test_posture_keypoints_learns(tmp_path: Path) -> None:
    report = train("posture-keypoints", 300, tmp_path, epochs=30)
    assert held_out_auc(report) >= 0.7
    assert report["label_map"] == POSTURE_LABELS
    lo, hi = report["pooled"]["ci95"]["auc"]
    assert lo <= report["pooled"]["auc"] <= hi


def test_flexion_learns(tmp_path: Path) -> None:
    report = train("flexion", 100, tmp_path, epochs=30)
    assert held_out_auc(report) >= 0.7
    assert report["label_map"] == FLEXION_LABELS


def test_training_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = train("posture-keypoints", 120, tmp_path / "a", epochs=4, seed=3)
    b = train("posture-keypoints", 120, tmp_path / "b", epochs=4, seed=3)
    assert a["pooled"]["auc"] == b["pooled"]["auc"]
    assert a["pooled"]["confusion_matrix"] == b["pooled"]["confusion_matrix"]
    assert (tmp_path / "a" / "model.pt").read_bytes() != b""  # written even without the final fit


def test_cli_writes_reports_and_a_loadable_checkpoint(tmp_path: Path) -> None:
    from edgescreen.cli import main
    from training.checkpoint import load_checkpoint

    out = tmp_path / "run"
    code = main([
        "train", "--task", "posture-keypoints", "--data", "synthetic:160", "--folds", "2", "--epochs", "10",
        "--out", str(out), "--width", "small", "--threads", "1", "--no-progress",
    ])  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert len(report["folds"]) == 2 and report["data"]["samples"] == 160
    assert sum(f["n_test"] for f in report["folds"]) == 160  # every sample held out exactly once
    md = (out / "report.md").read_text()
    assert "not clinical results" in md and f"{report['pooled']['auc']:.3f}" in md
    for plot in ("roc.png", "confusion.png", "calibration.png"):
        assert (out / plot).stat().st_size > 1000
    model, meta = load_checkpoint(out / "model.pt")
    assert meta["task"] == "posture-keypoints" and meta["label_map"] == POSTURE_LABELS
    assert meta["input_spec"]["shape"][1:] == [33, 3]
    assert len(meta["data_sha256"]) == 64
    assert model(torch.rand(2, 33, 3)).shape == (2, 2)


def test_cli_reports_bad_input_clearly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from edgescreen.cli import main

    code = main(["train", "--task", "gait", "--data", "synthetic:20", "--arch", "resnet50", "--out", str(tmp_path)])
    assert code == 2
    assert "unknown architecture 'resnet50' for task 'gait'" in caplog.text


@pytest.mark.slow
def test_sresnet34_learns_cervical_curvature(tmp_path: Path) -> None:
    """The configuration of docs/results.md (about 8 minutes on a shared 2-core CPU)."""
    report = train("xray", 240, tmp_path, folds=4, epochs=15, lr=3e-3, threads=2)
    assert held_out_auc(report) >= 0.8
    assert report["pooled"]["accuracy"] >= 0.6  # chance is about 0.44 (the majority class)
