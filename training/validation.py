"""Agreement between a measurement and its truth: MAE, bias, Pearson r and Bland–Altman limits, with 95 % CIs,
overall and per group (view, age group, sex, occlusion).

Built on training/metrics.py (Pearson r with its Fisher-z CI, Bland–Altman, the subject-resampling bootstrap);
what is added here is one record per comparison and the group breakdown the accuracy benchmark reports.
CIs of MAE and bias resample subjects (several windows of one subject are not independent); the CI of each
limit of agreement is Bland & Altman's approximation, limit ± 1.96 · sqrt(3 s² / n) (Lancet 1986).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from training.metrics import bland_altman, bootstrap_ci, pearson_ci, pearson_r

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Agreement:
    """How well `measured` agrees with `truth` (differences are measured − truth)."""

    n: int
    mae: float
    mae_ci: tuple[float, float]
    bias: float
    bias_ci: tuple[float, float]
    r: float
    r_ci: tuple[float, float]
    loa_low: float
    loa_high: float
    loa_half_ci: float  # each limit's 95 % CI is the limit ± this
    subjects: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement(
    truth: Sequence[float] | np.ndarray,
    measured: Sequence[float] | np.ndarray,
    subjects: Sequence[Any] | None = None,
    *,
    rounds: int = 500,
    seed: int = 0,
) -> Agreement:
    """Agreement over the pairs where both values are finite."""
    t = np.asarray(truth, np.float64)
    m = np.asarray(measured, np.float64)
    if t.shape != m.shape or t.ndim != 1:
        raise ValueError(f"agreement: truth and measured must be 1-D of one length, got {t.shape} and {m.shape}")
    keep = np.isfinite(t) & np.isfinite(m)
    subj = np.asarray([str(s) for s in subjects])[keep] if subjects is not None else None
    t, m = t[keep], m[keep]
    n = len(t)
    nan2 = (math.nan, math.nan)
    if n == 0:
        return Agreement(0, math.nan, nan2, math.nan, nan2, math.nan, nan2, math.nan, math.nan, math.nan, 0)
    diff = m - t
    ba = bland_altman(t, m)
    r = pearson_r(t, m)
    if n > 1:
        ci = bootstrap_ci(
            lambda idx: {"mae": float(np.abs(diff[idx]).mean()), "bias": float(diff[idx].mean())},
            n,
            list(subj) if subj is not None else None,
            rounds=rounds,
            seed=seed,
        )
    else:
        ci = {"mae": nan2, "bias": nan2}
    return Agreement(
        n=n,
        mae=float(np.abs(diff).mean()),
        mae_ci=ci["mae"],
        bias=ba["bias"],
        bias_ci=ci["bias"],
        r=r,
        r_ci=pearson_ci(r, n),
        loa_low=ba["loa_low"],
        loa_high=ba["loa_high"],
        loa_half_ci=Z95 * math.sqrt(3 * ba["sd"] ** 2 / n) if n > 1 else math.nan,
        subjects=len(set(subj.tolist())) if subj is not None else n,
    )


def by_group(
    truth: Sequence[float] | np.ndarray,
    measured: Sequence[float] | np.ndarray,
    groups: Sequence[str],
    subjects: Sequence[Any] | None = None,
    *,
    rounds: int = 200,
) -> dict[str, Agreement]:
    """`agreement` within each group label (sorted by label)."""
    t, m = np.asarray(truth, np.float64), np.asarray(measured, np.float64)
    labels = np.asarray(groups, dtype=object)
    subj = np.asarray([str(s) for s in subjects]) if subjects is not None else None
    out = {}
    for g in sorted(set(labels.tolist())):
        k = labels == g
        out[str(g)] = agreement(t[k], m[k], list(subj[k]) if subj is not None else None, rounds=rounds)
    return out


def fmt(value: float, digits: int = 1) -> str:
    """A number for a table: '–' when it is not finite."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def agreement_row(a: Agreement, digits: int = 1) -> str:
    """`n | MAE [CI] | bias [CI] | r | LoA` cells of a markdown table row."""
    if a.n == 0:
        return "0 | – | – | – | –"
    return (
        f"{a.n} | {fmt(a.mae, digits)} [{fmt(a.mae_ci[0], digits)}, {fmt(a.mae_ci[1], digits)}] | "
        f"{fmt(a.bias, digits)} [{fmt(a.bias_ci[0], digits)}, {fmt(a.bias_ci[1], digits)}] | {fmt(a.r, 2)} | "
        f"{fmt(a.loa_low, digits)} to {fmt(a.loa_high, digits)}"
    )
