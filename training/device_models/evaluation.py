"""Subject-disjoint cross-validation with the pooled out-of-fold predictions kept, and the figures the model cards
and docs/results.md report from them: 95 % CIs by subject bootstrap, per-class recall, and a breakdown by sex and
age group."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.labels import HEAD_SHIFT_TARGETS, TASK_KINDS, check_task
from training.metrics import bootstrap_ci, classification_metrics, pearson_r, regression_metrics

log = logging.getLogger(__name__)


@dataclass
class CvResult:
    """A cross-validation: the training report, every sample's out-of-fold prediction, its target and subject,
    and the breakdown columns (sex, age group) of each sample."""

    report: dict[str, Any]
    pred: npt.NDArray[np.float64]
    target: npt.NDArray[Any]
    subjects: npt.NDArray[np.str_]
    groups: dict[str, npt.NDArray[np.str_]]
    out_dir: Path


def cross_validate(cfg: Any, data: Any, out_dir: Path, groups: dict[str, Any] | None = None) -> CvResult:
    """run_training of `cfg` on `data` (a TaskData), keeping each fold's test predictions."""
    from training.train import FitJob, FitOutcome, Progress, Trainer, run_serially, run_training

    seen: list[tuple[FitJob, FitOutcome]] = []

    def keep(trainer: Trainer, jobs: list[FitJob], progress: Progress) -> list[FitOutcome]:
        outcomes = run_serially(trainer, jobs, progress)
        seen.extend(zip(jobs, outcomes, strict=True))
        return outcomes

    report = run_training(cfg, out_dir, data=data, runner=keep)
    tests = [(job.test, out.pred) for job, out in seen if job.test is not None and out.pred is not None]
    width = tests[0][1].shape[1]
    pred = np.full((len(data.targets), width), np.nan)
    for idx, p in tests:
        pred[idx] = p
    target = np.asarray(data.targets)
    kind = TASK_KINDS[data.task]
    if kind == "regression":
        target = target.reshape(len(target), -1).astype(np.float64)
    cols = {k: np.asarray(v, np.str_) for k, v in (groups or {}).items()}
    return CvResult(report, pred, target, np.asarray(data.subjects, np.str_), cols, Path(out_dir))


def subject_bootstrap_r(truth: npt.ArrayLike, pred: npt.ArrayLike, subjects: npt.ArrayLike,
                        rounds: int = 1000, seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """95 % CI of Pearson r resampling whole subjects (images of one subject are not independent)."""
    t, p = np.asarray(truth, np.float64), np.asarray(pred, np.float64)
    ci = bootstrap_ci(lambda idx: {"r": pearson_r(t[idx], p[idx])}, len(t), list(np.asarray(subjects)),
                      rounds=rounds, seed=seed)  # fmt: skip
    return ci["r"]


def summary(cv: CvResult, task: str, *, rounds: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Pooled figures with CIs, then the same per sex and per age group (JSON-ready)."""
    out: dict[str, Any] = {"n": len(cv.target), "subjects": len(set(cv.subjects.tolist()))}
    out["pooled"] = _figures(task, cv.target, cv.pred, cv.subjects, rounds=rounds, seed=seed)
    for column, values in cv.groups.items():
        out[f"by_{column}"] = {}
        for level in sorted(set(values.tolist())):
            idx = np.flatnonzero(values == level)
            if len(set(cv.subjects[idx].tolist())) < 4:
                continue  # too few subjects for a figure worth printing
            out[f"by_{column}"][level] = _figures(
                task, cv.target[idx], cv.pred[idx], cv.subjects[idx], rounds=rounds, seed=seed
            )
    return out


def _figures(task: str, target: Any, pred: Any, subjects: Any, *, rounds: int, seed: int) -> dict[str, Any]:
    if TASK_KINDS[check_task(task)] == "regression":
        names = HEAD_SHIFT_TARGETS[: target.shape[1]]
        metrics = regression_metrics(target, pred, names, list(subjects), seed=seed)
        result: dict[str, Any] = {"n": len(target)}
        for j, name in enumerate(names):
            m = metrics[name]
            result[name] = {
                "r": _num(m["pearson_r"]),
                "r_ci95": [_num(v) for v in subject_bootstrap_r(target[:, j], pred[:, j], subjects, rounds, seed)],
                "mae": _num(m["mae"]),
                "mae_ci95": [_num(v) for v in m["ci95"]["mae"]],
                "bias": _num(m["bland_altman"]["bias"]),
                "loa": [_num(m["bland_altman"]["loa_low"]), _num(m["bland_altman"]["loa_high"])],
            }
        return result
    m = classification_metrics(np.asarray(target, np.int64), pred, list(subjects), rounds=rounds, seed=seed)
    keep = ("n", "auc", "accuracy", "sensitivity", "specificity", "f1")
    result = {k: _num(m[k]) if k != "n" else int(m[k]) for k in keep if k in m}
    result["ci95"] = {k: [_num(x) for x in v] for k, v in m["ci95"].items()}
    result["recall_per_class"] = [_num(x) for x in m["per_class"]["sensitivity"]]
    result["confusion_matrix"] = m["confusion_matrix"]
    return result


def _num(value: Any) -> float | None:
    v = float(value)
    return round(v, 4) if math.isfinite(v) else None
