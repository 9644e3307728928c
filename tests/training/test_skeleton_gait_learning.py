"""The skeleton gait model learns: subject-disjoint CV on a small walk set beats chance on held-out subjects.

The set is tests/training/skeleton_walks.py's stick-figure walks (keypoints with pixel noise, dropped points and
the generator's label noise), not perceived avatar walks: rendering and perceiving one avatar walk takes about
30 s on the 2-core test machine. The perceived avatar figures are in docs/results.md ("Gait").
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.roles.gait.skeleton import coco_sequence
from tests.training.skeleton_walks import walk_set
from training import skeleton


def test_screening_figures_on_known_scores() -> None:
    target = np.array([2, 2, 2, 2, 0, 0, 0, 0, 1, 1])
    score = np.array([0.9, 0.8, 0.3, 0.7, 0.1, 0.2, 0.85, 0.3, 0.4, 0.0])
    pred = np.stack([1 - score, np.zeros_like(score), score], axis=1)
    figures = skeleton.screening_figures(target, pred, np.arange(10).astype(str), rounds=50)
    # 6 others: one false positive allowed at specificity >= 0.80, so the threshold is the 2nd highest (0.4)
    assert figures["threshold_at_spec80"] == pytest.approx(0.4)
    assert figures["recall_at_spec80"] == pytest.approx(0.75)
    assert figures["auc_positive"] == pytest.approx(19.5 / 24)  # 4 pairs ranked wrongly, one tie
    assert figures["positives"] == 4 and figures["others"] == 6


def test_augmented_views_keep_missing_points_missing_and_the_booth_shape() -> None:
    walks, _, _ = walk_set(1, seed=3, frames=40)
    seq = coco_sequence(list(walks[0]))
    seq[5, :, :] = 0.0  # a frame without the person
    rng = np.random.default_rng(0)
    for _ in range(20):
        view = skeleton.augmented_view(seq, rng)
        assert view.shape == (32, 17, 3)
        missing = view[..., 2] == 0
        assert np.all(view[missing][:, :2] == 0)
    assert skeleton.device_input(seq).shape == (32, 17, 3)


def test_skeleton_model_beats_chance_on_held_out_subjects() -> None:
    walks, labels, _ = walk_set(30, seed=11, frames=48)
    seqs = [coco_sequence(list(w)) for w in walks]
    subjects = np.array([f"S{i:03d}" for i in range(len(seqs))])
    cfg = skeleton.FitConfig(epochs=20, seed=0)
    cv = skeleton.cross_validate(seqs, labels, subjects, folds=3, cfg=cfg)
    assert not np.isnan(cv.pred).any()  # every walk predicted by a fold that never saw its subject
    figures = skeleton.screening_figures(cv.target, cv.pred, cv.subjects, rounds=200)
    low, _high = figures["auc_positive_ci95"]
    assert figures["auc_positive"] >= 0.8
    assert low > 0.5, figures  # the CI clears chance
    accuracy = float((cv.pred.argmax(axis=1) == labels).mean())
    assert accuracy > 0.5  # three classes: chance is about 1/3
