"""BACK-to-MOVE on avatars: the flexion scene plans trials by the capsule task's rules, its clips run through the
device's perception make a keypoint set the flexion task reads, and flexion_net learns MCI vs MI from it on
held-out subjects."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from contract.labels import class_names
from training.models.flexion_net import angle_series
from training.synth.avatar import scenes as S


def test_a_subject_does_two_trials_of_one_pattern_with_its_label() -> None:
    a, b = (S.flexion_plan(0, 3, trial=k, n_frames=4) for k in range(S.FLEXION_TRIALS))
    assert a.phenotype == b.phenotype and a.label == b.label and a.label in class_names("flexion")
    assert a.extra["flexion"].pattern == b.extra["flexion"].pattern
    assert a.extra["flexion"] != b.extra["flexion"]  # each trial its own movement
    assert 18 <= a.phenotype.age_years <= 70 and a.view == "side"
    clip = S.plan_subject("flexion", 0, 3, clip=True)  # a subject's clip is its first trial, whole
    assert clip.times[:4] == a.times and len(clip.times) == len(clip.extra["motion"].states)
    with pytest.raises(ValueError, match=r"trial must be 0\.\.1"):
        S.flexion_plan(0, 3, trial=2)


def test_labels_follow_the_pattern_with_the_rules_noise_and_the_body_bends_as_asked() -> None:
    plans = [S.flexion_plan(5, i, n_frames=1) for i in range(300)]
    mi = np.array([p.extra["flexion"].pattern == "mi" for p in plans])
    observed = np.array([p.label == "mi" for p in plans])
    assert 0.45 < mi.mean() < 0.65  # FLEXION_MI_SHARE
    assert 0.01 < (mi != observed).mean() < 0.12  # labels.FLEXION_FLIP_RATE: 6 % flipped
    plan = S.flexion_plan(5, 0)
    bend = [sum(a[k] for k in S.SPINE_ASKED) for a in plan.asked]
    assert max(bend) > 0.9 * plan.extra["flexion"].total_flexion - 3  # the hips and spine share the whole bend
    assert abs(bend[0]) < 3 and abs(bend[-1]) < 3  # upright before and after


@pytest.fixture(scope="module")
def small_set(
    tmp_path_factory: pytest.TempPathFactory, anny_model: Any, model_dir: Path
) -> tuple[Path, dict[str, Any]]:
    pytest.importorskip("moderngl")
    from training.datasets.avatar_flexion import write_flexion_set

    root = tmp_path_factory.mktemp("flexion")
    made = write_flexion_set(root, 3, seed=1, width=320, height=240, model_dir=model_dir)
    return root, made


def test_written_set_round_trips_through_the_flexion_loader(small_set: tuple[Path, dict[str, Any]]) -> None:
    from training.data import load_task_data
    from training.datasets.avatar_flexion import load_set

    root, made = small_set
    assert made["trials"] + made["left_out"] == 3 and made["trials"] >= 2
    data = load_task_data("flexion", str(root))
    rows = list(csv.DictReader((root / "labels.csv").open()))
    assert len(data) == len(rows) == made["trials"]
    names = class_names("flexion")
    for row, seq, target, subject, fps in zip(rows, data.inputs, data.targets, data.subjects, data.meta["fps"],
                                              strict=True):  # fmt: skip
        plan = S.flexion_plan(1, int(subject[1:]), trial=int(row["trial"]))
        assert names[int(target)] == plan.label == row["label"]
        assert row["sex"] == plan.phenotype.sex and fps == S.CLIP_FPS["flexion"]
        assert seq.shape == (len(plan.times), 33, 3) and np.isfinite(seq).all()
        trunk = np.degrees(angle_series(torch.from_numpy(seq)[None])[0, :, 1].numpy())
        peak = plan.extra["flexion"].total_flexion
        assert trunk.max() - trunk[:3].mean() > 0.4 * peak  # perception follows the bend
    _, groups = load_set(root)
    assert set(groups) == {"sex", "age_group"} and len(groups["sex"]) == len(data)


def test_bad_trial_count_gives_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgescreen.cli import main as cli_main
    from training.datasets.avatar_flexion import write_flexion_set

    code = cli_main(["models", "avatar-data", "--kind", "flexion", "--n", "0", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--n must be at least 1, got 0" in err[0]
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="number of trials must be >= 1"):
        write_flexion_set(tmp_path / "y", 0)


@pytest.mark.slow
def test_flexion_net_learns_the_class_of_held_out_subjects(tmp_path: Path, anny_model: Any, model_dir: Path) -> None:
    pytest.importorskip("moderngl")
    from training.datasets.avatar_flexion import evaluate_set, write_flexion_set

    made = write_flexion_set(tmp_path / "set", 60, seed=2, width=320, height=240, model_dir=model_dir)
    assert made["trials"] >= 50
    figures = evaluate_set(tmp_path / "set", tmp_path / "cv", folds=4, epochs=30, seed=0, rounds=200)
    pooled = figures["pooled"]
    assert pooled["auc"] > 0.7 and pooled["ci95"]["auc"][0] > 0.5, pooled
    assert set(figures["by_sex"]) <= {"female", "male"}
