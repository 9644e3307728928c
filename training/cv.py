"""Subject-grouped stratified k-fold: every sample of a subject lands in the same fold, and folds keep the
class balance as well as whole subjects allow."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np


def grouped_stratified_folds(
    labels: Sequence[Any] | np.ndarray, subjects: Sequence[Any] | np.ndarray, k: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indices, test indices) for each of `k` folds.

    A subject's label for stratification is its most common label (regression targets: pass a binned label).
    Subjects are grouped by label (rarest label first) and dealt round-robin over the folds, largest subjects
    first and in a seeded random order within a size, so no subject is ever split.
    """
    labels = list(labels)
    subjects = [str(s) for s in subjects]
    if len(labels) != len(subjects):
        raise ValueError(f"{len(labels)} labels but {len(subjects)} subject ids")
    by_subject: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(subjects):
        by_subject[s].append(i)
    if k < 2:
        raise ValueError(f"folds must be at least 2, got {k}")
    if len(by_subject) < k:
        raise ValueError(f"{len(by_subject)} subjects cannot fill {k} folds (need at least one subject per fold)")
    rng = np.random.default_rng(seed)
    names = sorted(by_subject)
    rng.shuffle(names)
    subject_label = {s: Counter(labels[i] for i in by_subject[s]).most_common(1)[0][0] for s in names}
    # Deal per label, rarest label first, so each fold gets its share of every class.
    label_counts = Counter(subject_label.values())
    fold_members: list[list[str]] = [[] for _ in range(k)]
    offset = 0
    for label, _ in sorted(label_counts.items(), key=lambda item: (item[1], str(item[0]))):
        group = [s for s in names if subject_label[s] == label]
        group.sort(key=lambda s: -len(by_subject[s]))  # stable: seeded order within a size
        for j, s in enumerate(group):
            fold = (offset + j) % k
            fold_members[fold].append(s)
        offset += len(group)
    folds = []
    all_idx = np.arange(len(labels))
    for members in fold_members:
        test = np.sort(np.concatenate([np.asarray(by_subject[s]) for s in members])) if members else np.array([], int)
        train = np.setdiff1d(all_idx, test)
        folds.append((train, test))
    return folds


def grouped_split(
    labels: Sequence[Any] | np.ndarray, subjects: Sequence[Any] | np.ndarray, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """One subject-grouped stratified split: (larger part, part of about `fraction`), e.g. for early stopping."""
    k = max(2, round(1.0 / fraction))
    n_subjects = len(set(map(str, subjects)))
    k = min(k, n_subjects)
    return grouped_stratified_folds(labels, subjects, k, seed)[0]
