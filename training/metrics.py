"""Evaluation metrics: AUC (one-vs-rest for several classes) with bootstrap CI, accuracy, sensitivity,
specificity, F1, confusion matrix; for regression Pearson r (Fisher-z CI), MAE and Bland–Altman.

Confidence intervals resample subjects (cluster bootstrap) when subject ids are given, since several
samples of one subject are not independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Array = np.ndarray


def auc_binary(y: Array, score: Array) -> float:
    """Area under the ROC curve (Mann–Whitney, ties counted half). NaN if only one class is present."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # average ranks (ties share the mean of their positions), vectorised
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    ranks = (upper - (counts - 1) / 2.0)[inverse]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc(y: Array, proba: Array) -> float:
    """AUC of class-probabilities `proba` [N, K]: binary AUC of class 1 for K=2, macro one-vs-rest for K>2."""
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    if proba.shape[1] == 2:
        return auc_binary(y == 1, proba[:, 1])
    values = [auc_binary(y == k, proba[:, k]) for k in range(proba.shape[1])]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def confusion_matrix(y: Array, pred: Array, classes: int) -> Array:
    cm = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return cm


def _safe_div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def class_rates(cm: Array) -> dict[str, list[float]]:
    """Per class (one-vs-rest): sensitivity (recall), specificity, precision, F1."""
    total = cm.sum()
    sens, spec, prec, f1 = [], [], [], []
    for k in range(cm.shape[0]):
        tp = cm[k, k]
        fn = cm[k].sum() - tp
        fp = cm[:, k].sum() - tp
        tn = total - tp - fn - fp
        s, p = _safe_div(tp, tp + fn), _safe_div(tp, tp + fp)
        sens.append(s)
        spec.append(_safe_div(tn, tn + fp))
        prec.append(p)
        f1.append(_safe_div(2 * tp, 2 * tp + fp + fn))
    return {"sensitivity": sens, "specificity": spec, "precision": prec, "f1": f1}


def classification_point(y: Array, proba: Array) -> dict[str, float]:
    """Point estimates. Binary: sensitivity/specificity/F1 of class 1. Several classes: macro averages."""
    proba = np.asarray(proba, dtype=np.float64)
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    cm = confusion_matrix(y, pred, k)
    rates = class_rates(cm)
    out = {"auc": auc(y, proba), "accuracy": float((pred == np.asarray(y)).mean()) if len(y) else float("nan")}
    if k == 2:
        out.update(sensitivity=rates["sensitivity"][1], specificity=rates["specificity"][1], f1=rates["f1"][1])
    else:
        out.update(
            sensitivity=float(np.nanmean(rates["sensitivity"])),
            specificity=float(np.nanmean(rates["specificity"])),
            f1=float(np.nanmean(rates["f1"])),
        )
    return {key: float(v) for key, v in out.items()}


def bootstrap_ci(
    statistic: Callable[[Array], dict[str, float]],
    n: int,
    subjects: Sequence[Any] | None = None,
    *,
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CI of each value of `statistic(indices)`, resampling subjects when given."""
    rng = np.random.default_rng(seed)
    if subjects is not None:
        subj = np.asarray([str(s) for s in subjects])
        groups = [np.flatnonzero(subj == s) for s in np.unique(subj)]
    else:
        groups = [np.array([i]) for i in range(n)]
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        pick = rng.integers(0, len(groups), len(groups))
        idx = np.concatenate([groups[i] for i in pick])
        for key, value in statistic(idx).items():
            samples.setdefault(key, []).append(value)
    alpha = (1.0 - level) / 2.0
    out: dict[str, tuple[float, float]] = {}
    for key, values in samples.items():
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[~np.isnan(arr)]
        out[key] = (
            (float(np.quantile(arr, alpha)), float(np.quantile(arr, 1 - alpha))) if len(arr) else (math.nan, math.nan)
        )
    return out


def classification_metrics(
    y: Array, proba: Array, subjects: Sequence[Any] | None = None, *, rounds: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Point estimates with 95 % CIs, per-class rates and the confusion matrix."""
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    point = classification_point(y, proba)
    ci = bootstrap_ci(lambda idx: classification_point(y[idx], proba[idx]), len(y), subjects, rounds=rounds, seed=seed)
    cm = confusion_matrix(y, proba.argmax(axis=1), proba.shape[1])
    return {
        "n": len(y),
        **point,
        "ci95": {k: list(v) for k, v in ci.items()},
        "per_class": class_rates(cm),
        "confusion_matrix": cm.tolist(),
    }


def pearson_r(a: Array, b: Array) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def pearson_ci(r: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Fisher-z confidence interval of a correlation."""
    if n <= 3 or math.isnan(r):
        return (math.nan, math.nan)
    z = math.atanh(max(min(r, 0.999999), -0.999999))
    half = 1.959963984540054 / math.sqrt(n - 3) if level == 0.95 else _z(level) / math.sqrt(n - 3)
    return (math.tanh(z - half), math.tanh(z + half))


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2.0)


def bland_altman(truth: Array, pred: Array) -> dict[str, float]:
    """Bias (mean of pred − truth) and 95 % limits of agreement (bias ± 1.96 SD)."""
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    bias = float(diff.mean()) if len(diff) else math.nan
    sd = float(diff.std(ddof=1)) if len(diff) > 1 else math.nan
    return {"bias": bias, "sd": sd, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}


def regression_metrics(
    truth: Array, pred: Array, names: Sequence[str], subjects: Sequence[Any] | None = None, *, seed: int = 0
) -> dict[str, Any]:
    """Per output: Pearson r with Fisher-z CI, MAE with bootstrap CI, Bland–Altman."""
    truth = np.asarray(truth, dtype=np.float64).reshape(len(truth), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    out: dict[str, Any] = {"n": len(truth)}
    for j, name in enumerate(names):
        t, p = truth[:, j], pred[:, j]
        r = pearson_r(t, p)

        def mae_of(idx: Array, t: Array = t, p: Array = p) -> dict[str, float]:
            return {"mae": float(np.abs(t[idx] - p[idx]).mean())}

        out[name] = {
            "pearson_r": r,
            "mae": float(np.abs(t - p).mean()) if len(t) else math.nan,
            "ci95": {"pearson_r": list(pearson_ci(r, len(t))), **{k: list(v) for k, v in bootstrap_ci(
                mae_of, len(t), subjects, rounds=500, seed=seed).items()}},
            "bland_altman": bland_altman(t, p),
        }  # fmt: skip
    return out
