"""Training of the skeleton gait model (training/models/skeleton_gait.py) on walks' COCO-17 keypoint sequences.

The sequences come from the booth's own perception of avatar walks (training/synth/booth_dataset.py) or from
Scoliosis1K-Pose files; each is one walk of one subject, [T, 17, 3] in pixels with scores, built as the booth builds
them (edge/roles/gait/skeleton.py). The model always sees what the booth feeds it: SEQUENCE_FRAMES frames sampled
evenly over the walk. Training adds what varies between walks of one class: a random stretch of the walk, frame
jitter, a mirror image (walking the other way; left and right swap) and pixel noise.

`cross_validate` runs subject-disjoint k-fold CV (training/cv.py) and returns a `CvResult` whose figures come from
`training.device_models.evaluation.summary`; `screening_figures` adds the screening view: positive class against
the rest, AUC and positive recall at specificity >= 0.80, with subject-bootstrap CIs.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from contract.labels import GAIT_LABELS
from contract.landmarks import COCO17_LEFT_RIGHT
from edge.roles.gait.skeleton import resample
from training.cv import grouped_stratified_folds
from training.metrics import bootstrap_ci
from training.models.skeleton_gait import SEQUENCE_FRAMES, SkeletonGaitNet

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
POSITIVE = GAIT_LABELS["positive"]
MIN_SPECIFICITY = 0.80
_SWAP = np.arange(17)
for _a, _b in COCO17_LEFT_RIGHT:
    _SWAP[_a], _SWAP[_b] = _b, _a


@dataclass(frozen=True)
class FitConfig:
    """One fit: `epochs` over the walks (each epoch draws `draws` augmented views per walk), AdamW at `lr`."""

    epochs: int = 40
    width: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-3
    batch_size: int = 16
    draws: int = 2
    dropout: float = 0.2
    seed: int = 0
    threads: int = 1  # the model is small: one thread is fastest, more only contend on a busy CPU


def device_input(sequence: F32) -> F32:
    """The booth's input for one walk: [SEQUENCE_FRAMES, 17, 3] sampled evenly over it."""
    return resample(sequence, SEQUENCE_FRAMES)[0]


def augmented_view(sequence: F32, rng: np.random.Generator) -> F32:
    """One training view of a walk: a stretch of 60-100 % of it, frames sampled with jitter, perhaps mirrored,
    with pixel noise on the seen points (missing points stay 0, 0, 0 as the booth stores them)."""
    seq = np.asarray(sequence, np.float32)
    t = len(seq)
    span = max(2, round(t * rng.uniform(0.6, 1.0))) if rng.random() < 0.7 else t
    start = int(rng.integers(0, t - span + 1))
    pos = np.linspace(start, start + span - 1, SEQUENCE_FRAMES) + rng.normal(0.0, 0.3, SEQUENCE_FRAMES)
    view = seq[np.clip(np.sort(pos).round().astype(int), 0, t - 1)].copy()
    seen = view[..., 2] > 0
    if rng.random() < 0.5:
        view[..., 0] = np.where(seen, -view[..., 0], 0.0)
        view = view[:, _SWAP]
        seen = view[..., 2] > 0
    trunk = _trunk_px(view)
    noise = rng.normal(0.0, 0.01 * trunk, view[..., :2].shape).astype(np.float32)
    view[..., :2] += noise * seen[..., None]
    return view


def _trunk_px(view: F32) -> float:
    sh = 0.5 * (view[:, 5, :2] + view[:, 6, :2])
    hip = 0.5 * (view[:, 11, :2] + view[:, 12, :2])
    ok = (view[:, [5, 6, 11, 12], 2] > 0).all(axis=1)
    return float(np.linalg.norm(sh - hip, axis=1)[ok].mean()) if ok.any() else 50.0


def fit(sequences: list[F32], labels: npt.NDArray[np.int64], cfg: FitConfig, num_classes: int = 3) -> SkeletonGaitNet:
    """Train a fresh model on the walks (class-balanced loss: a screening set is rarely balanced)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _fit(sequences, labels, cfg, num_classes)
    finally:
        torch.set_num_threads(threads)


def _fit(sequences: list[F32], labels: npt.NDArray[np.int64], cfg: FitConfig, num_classes: int) -> SkeletonGaitNet:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = SkeletonGaitNet(num_classes=num_classes, width=cfg.width, dropout=cfg.dropout)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = torch.tensor(len(labels) / (num_classes * np.maximum(counts, 1.0)), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=0.05)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(sequences) * cfg.draws / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, steps))
    model.train()
    for _ in range(cfg.epochs):
        order = np.repeat(np.arange(len(sequences)), cfg.draws)
        rng.shuffle(order)
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x = torch.from_numpy(np.stack([augmented_view(sequences[i], rng) for i in idx]))
            y = torch.from_numpy(labels[idx])
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            sched.step()
    return model.eval()


def predict(model: nn.Module, sequences: list[F32]) -> npt.NDArray[np.float64]:
    """Class probabilities [N, C] from the booth's input of each walk."""
    x = torch.from_numpy(np.stack([device_input(s) for s in sequences]))
    with torch.no_grad():
        return torch.softmax(model.eval()(x), dim=1).double().numpy()


@dataclass
class SkeletonCv:
    """Out-of-fold probabilities of every walk, with its label and subject, and the config and time."""

    pred: npt.NDArray[np.float64]
    target: npt.NDArray[np.int64]
    subjects: npt.NDArray[np.str_]
    folds: int
    config: FitConfig
    seconds: float

    def report(self, data_sha256: str) -> dict[str, Any]:
        """The training report base_card (training/device_models/cards.py) reads."""
        return {
            "data": {"sha256": data_sha256},
            "config": {
                "folds": self.folds,
                "epochs": self.config.epochs,
                "width": self.config.width,
                "seed": self.config.seed,
            },
            "seconds": round(self.seconds, 1),
            "model_kwargs": {"num_classes": 3, "width": self.config.width},
            "fit": asdict(self.config),
        }


def cross_validate(
    sequences: list[F32], labels: npt.NDArray[np.int64], subjects: npt.NDArray[np.str_], folds: int, cfg: FitConfig
) -> SkeletonCv:
    """Subject-disjoint stratified k-fold CV; every walk is predicted by the fold model that never saw its subject."""
    started = time.monotonic()
    pred = np.full((len(labels), 3), np.nan)
    for k, (train, test) in enumerate(grouped_stratified_folds(labels, subjects, folds, cfg.seed)):
        model = fit([sequences[i] for i in train], labels[train], cfg)
        pred[test] = predict(model, [sequences[i] for i in test])
        log.info("skeleton gait CV fold %d/%d: %d walks trained, %d tested", k + 1, folds, len(train), len(test))
    return SkeletonCv(pred, labels, subjects, folds, cfg, time.monotonic() - started)


def recall_at_specificity(is_pos: npt.NDArray[np.bool_], score: npt.NDArray[np.float64],
                          min_specificity: float = MIN_SPECIFICITY) -> tuple[float, float]:  # fmt: skip
    """(positive recall, threshold) at the lowest score threshold whose specificity is at least `min_specificity`."""
    neg, pos = score[~is_pos], score[is_pos]
    if len(neg) == 0 or len(pos) == 0:
        return math.nan, math.nan
    # scores above the threshold are called positive: the threshold is the k-th largest negative score
    allowed_fp = math.floor((1.0 - min_specificity) * len(neg) + 1e-9)
    ranked = np.sort(neg)[::-1]
    threshold = float(ranked[allowed_fp]) if allowed_fp < len(ranked) else -math.inf
    return float((pos > threshold).mean()), threshold


def binary_auc(is_pos: npt.NDArray[np.bool_], score: npt.NDArray[np.float64]) -> float:
    pos, neg = score[is_pos], score[~is_pos]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def screening_figures(target: npt.ArrayLike, pred: npt.ArrayLike, subjects: npt.ArrayLike, *,
                      rounds: int = 1000, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Positive class against the rest, scored by P(positive): AUC, positive recall at specificity >= 0.80 and
    the threshold reaching it, each with a 95 % CI by subject bootstrap."""
    is_pos = np.asarray(target) == POSITIVE
    score = np.asarray(pred, np.float64)[:, POSITIVE]

    def stats(idx: npt.NDArray[np.int64]) -> dict[str, float]:
        return {"auc": binary_auc(is_pos[idx], score[idx]),
                "recall": recall_at_specificity(is_pos[idx], score[idx])[0]}  # fmt: skip

    point = stats(np.arange(len(score)))
    recall, threshold = recall_at_specificity(is_pos, score)
    ci = bootstrap_ci(stats, len(score), list(np.asarray(subjects)), rounds=rounds, seed=seed)
    return {
        "positives": int(is_pos.sum()), "others": int((~is_pos).sum()),
        "auc_positive": _round(point["auc"]), "auc_positive_ci95": [_round(v) for v in ci["auc"]],
        "recall_at_spec80": _round(recall), "recall_at_spec80_ci95": [_round(v) for v in ci["recall"]],
        "threshold_at_spec80": _round(threshold),
    }  # fmt: skip


def _round(v: float) -> float | None:
    return round(float(v), 4) if math.isfinite(v) else None


def save(model: SkeletonGaitNet, path: Path, *, cfg: FitConfig, data_sha256: str, metrics: dict[str, Any]) -> Path:
    """A training checkpoint (training/checkpoint.py) the export reads: input [N, SEQUENCE_FRAMES, 17, 3]."""
    from training.checkpoint import save_checkpoint

    return save_checkpoint(
        path, model=model, task="gait", arch="skeleton_gait",
        model_kwargs={"num_classes": 3, "width": cfg.width}, label_map=dict(GAIT_LABELS),
        input_spec={"name": "keypoints", "shape": [-1, SEQUENCE_FRAMES, 17, 3], "dtype": "float32",
                    "layout": "NTKC (COCO-17 x, y pixels, score)"},
        normalisation=None, data_sha256=data_sha256, metrics=metrics,
    )  # fmt: skip
