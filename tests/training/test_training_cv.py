"""Subject-grouped stratified folds and the evaluation metrics, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.cv import grouped_split, grouped_stratified_folds
from training.metrics import (
    auc,
    auc_binary,
    bland_altman,
    classification_metrics,
    confusion_matrix,
    pearson_ci,
    pearson_r,
    regression_metrics,
)


@settings(max_examples=40, deadline=None)
@given(
    per_subject=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4)), min_size=8, max_size=40),
    k=st.integers(2, 5),
    seed=st.integers(0, 1000),
)
def test_no_subject_in_both_train_and_test(per_subject: list[tuple[int, int]], k: int, seed: int) -> None:
    labels, subjects = [], []
    for s, (label, count) in enumerate(per_subject):
        labels += [label] * count
        subjects += [f"s{s}"] * count
    k = min(k, len(per_subject))
    folds = grouped_stratified_folds(labels, subjects, k, seed)
    seen_test = np.concatenate([test for _, test in folds])
    assert sorted(seen_test.tolist()) == list(range(len(labels)))  # every sample tested exactly once
    subj = np.asarray(subjects)
    for train, test in folds:
        assert not set(subj[train]) & set(subj[test])
        assert len(train) + len(test) == len(labels)


def test_folds_keep_the_class_balance() -> None:
    rng = np.random.default_rng(0)
    labels, subjects = [], []
    for s in range(120):
        label = 0 if s < 80 else (1 if s < 104 else 2)  # 80/24/16 subjects
        n = int(rng.integers(1, 4))
        labels += [label] * n
        subjects += [s] * n
    folds = grouped_stratified_folds(labels, subjects, 4, seed=3)
    y = np.asarray(labels)
    for _, test in folds:
        subj_labels = {subjects[i]: labels[i] for i in test}
        counts = np.bincount(list(subj_labels.values()), minlength=3)
        assert counts.tolist() == [20, 6, 4]  # each fold gets a quarter of each class's subjects
        assert 0 < (y[test] == 2).mean() < 0.3


def test_folds_are_seeded_and_errors_are_clear() -> None:
    labels = [0, 1] * 10
    subjects = list(range(20))
    a = grouped_stratified_folds(labels, subjects, 4, seed=1)
    b = grouped_stratified_folds(labels, subjects, 4, seed=1)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="3 subjects cannot fill 4 folds"):
        grouped_stratified_folds([0, 1, 0], ["a", "b", "c"], 4)
    with pytest.raises(ValueError, match="2 labels but 3 subject ids"):
        grouped_stratified_folds([0, 1], ["a", "b", "c"], 2)


def test_grouped_split_holds_out_about_the_fraction() -> None:
    labels = [0, 1] * 50
    subjects = [i // 2 for i in range(100)]
    big, small = grouped_split(labels, subjects, 0.2, seed=0)
    assert 15 <= len(small) <= 25 and len(big) + len(small) == 100
    assert not {subjects[i] for i in big} & {subjects[i] for i in small}


def test_auc_hand_computed() -> None:
    # positives 0.8, 0.4; negatives 0.6, 0.2, 0.4 → pairs won: (0.8 beats all 3) + (0.4 beats 0.2, ties 0.4) = 4.5 / 6
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.8, 0.4, 0.6, 0.2, 0.4])
    assert auc_binary(y, s) == pytest.approx(4.5 / 6)
    assert auc_binary(np.array([1, 1]), np.array([0.1, 0.2])) != auc_binary(np.array([1, 1]), np.array([0.1, 0.2]))


def test_multiclass_auc_is_the_mean_one_vs_rest() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    expected = np.mean([auc_binary(y == k, p[:, k]) for k in range(3)])
    assert auc(y, p) == pytest.approx(expected)
    # class 2 is ranked perfectly, so its one-vs-rest AUC is 1
    assert auc_binary(y == 2, p[:, 2]) == 1.0


def test_binary_rates_hand_computed() -> None:
    # truth 1,1,1,0,0 ; predicted 1,1,0,0,1 → TP 2, FN 1, TN 1, FP 1
    y = np.array([1, 1, 1, 0, 0])
    p1 = np.array([0.9, 0.8, 0.3, 0.2, 0.6])
    proba = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y, proba, rounds=200)
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(1 / 2)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert m["auc"] == pytest.approx(5 / 6)


def test_confusion_matrix_counts() -> None:
    cm = confusion_matrix(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]


def test_bootstrap_ci_contains_the_point_estimate_and_narrows_with_n() -> None:
    rng = np.random.default_rng(0)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        s = np.clip(y * 0.3 + rng.normal(0.35, 0.2, n), 0, 1)
        return y, np.stack([1 - s, s], axis=1)

    widths = []
    for n in (60, 600):
        y, p = sample(n)
        m = classification_metrics(y, p, subjects=[i // 2 for i in range(n)], rounds=300, seed=1)
        for key in ("auc", "accuracy", "sensitivity", "specificity", "f1"):
            lo, hi = m["ci95"][key]
            assert lo <= m[key] <= hi, key
        widths.append(m["ci95"]["auc"][1] - m["ci95"]["auc"][0])
    assert widths[1] < widths[0]


def test_regression_metrics_hand_computed() -> None:
    t = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.5, 3.5, 4.5])
    assert pearson_r(t, p) == pytest.approx(1.0)
    ba = bland_altman(t, p)
    assert ba["bias"] == pytest.approx(0.5) and ba["sd"] == pytest.approx(0.0)
    r = pearson_r(np.array([1.0, 2, 3, 4, 5]), np.array([2.0, 1, 4, 3, 5]))
    assert r == pytest.approx(0.8)
    lo, hi = pearson_ci(0.8, 50)
    z = math.atanh(0.8)
    assert lo == pytest.approx(math.tanh(z - 1.959964 / math.sqrt(47)), abs=1e-5) and hi > 0.8
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(80, 2))
    pred = truth + rng.normal(scale=0.5, size=(80, 2))
    m = regression_metrics(truth, pred, ["lateral_shift", "sagittal_shift"])
    for name in ("lateral_shift", "sagittal_shift"):
        assert m[name]["ci95"]["pearson_r"][0] <= m[name]["pearson_r"] <= m[name]["ci95"]["pearson_r"][1]
        assert m[name]["ci95"]["mae"][0] <= m[name]["mae"] <= m[name]["ci95"]["mae"][1]
        assert m[name]["mae"] == pytest.approx(np.abs(truth - pred)[:, 0 if name == "lateral_shift" else 1].mean())
