"""The gait booth's device models, trained on avatar walks seen through the device's own perception.

`train_booth_models(out_dir, budget_s=..., seed=...)` renders booth walks (training/synth/booth_dataset.py) along
the corridor, towards and away from a camera at its end, runs them through the booth's perception (BlazePose
keypoints → COCO-17), cross-validates the skeleton gait model by subject (training/skeleton.py), fits the final
model on every subject but a few held out for the ONNX parity check and INT8 calibration, and returns it as a
`TrainedModel` for the chain to export, quantise, card, bundle and install. A walk set already rendered
(`edgescreen synth booth-walks`) can be given as `data`.

ScoNet-MT on the same walks' silhouettes is not trained here: at the widths this CPU trains in minutes it has not
been shown to learn on avatar walks, and the booth never ships an untrained model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from contract.labels import GAIT_LABELS
from training.device_models import TrainedModel
from training.device_models.cards import base_card
from training.device_models.evaluation import CvResult, summary

log = logging.getLogger(__name__)

TASK = "gait"
ARCH = "skeleton_gait"
GEOMETRY: Final = "along"  # the booth's default walk geometry (docs/metrics.md, "Walk geometry")
MIN_FRAMES = 8  # a walk seen in fewer frames gives the model nothing to learn from
SECONDS_PER_WALK = 10.0  # a 6 m walk rendered and perceived: about 7 s on the 2-core x86-64 machine, no GPU
AGE_GROUPS = (("10-12", 10.0, 13.0), ("13-16", 13.0, 17.0))


@dataclass(frozen=True)
class BoothPlan:
    """How much to render and train: `walks` along the corridor, CV `folds`, epochs per fit, held-out share."""

    walks: int
    folds: int
    epochs: int
    held_out_fraction: float = 0.12
    bootstrap_rounds: int = 1000
    width: int = 48
    draws: int = 4  # augmented views of each walk per epoch

    @classmethod
    def for_budget(cls, budget_s: float) -> BoothPlan:
        """Rendering dominates (SECONDS_PER_WALK each); (folds + 1) fits of the small model take a few minutes.
        Width 48, 80 epochs and 4 views per walk: on 63 walks along the corridor CV AUC 0.89, on 60 across a
        side-wall camera 0.57 (docs/metrics.md, "Walk geometry")."""
        if budget_s < 120:
            return cls(walks=8, folds=2, epochs=8, held_out_fraction=0.25, bootstrap_rounds=100)
        walks = int(min(120, max(16, budget_s * 0.8 / SECONDS_PER_WALK)))
        return cls(walks=walks, folds=5, epochs=80)


@dataclass
class WalkSet:
    """Perceived walks as the booth feeds them to the model, with each walk's label, subject, sex and age group."""

    sequences: list[npt.NDArray[np.float32]]
    labels: npt.NDArray[np.int64]
    subjects: npt.NDArray[np.str_]
    sex: npt.NDArray[np.str_]
    age_group: npt.NDArray[np.str_]
    source: str

    def sha256(self) -> str:
        h = hashlib.sha256()
        for s, y, seq in zip(self.subjects, self.labels, self.sequences, strict=True):
            h.update(f"{s}:{int(y)}:".encode())
            h.update(np.ascontiguousarray(seq, np.float32).tobytes())
        return h.hexdigest()

    def subset(self, index: npt.ArrayLike) -> WalkSet:
        idx = np.asarray(index, np.int64)
        return WalkSet([self.sequences[i] for i in idx], self.labels[idx], self.subjects[idx], self.sex[idx],
                       self.age_group[idx], self.source)  # fmt: skip

    def __len__(self) -> int:
        return len(self.labels)


def age_group(age_years: float) -> str:
    for name, lo, hi in AGE_GROUPS:
        if lo <= age_years < hi:
            return name
    raise ValueError(f"student age {age_years} lies outside the booth's age groups (10-16)")


def load_walk_set(path: Path, geometry: str | None = GEOMETRY) -> WalkSet:
    """The perceived walks under `path` (booth_dataset.render_walks' layout) of `geometry` (None: all): each walk's
    COCO-17 sequence over the frames with the person, as the booth builds it."""
    from edge.roles.gait.skeleton import coco_sequence
    from training.synth.booth_dataset import load_walks

    seqs, labels, subjects, sex, ages = [], [], [], [], []
    skipped = 0
    for rec in load_walks(Path(path)):
        info = rec.info
        if geometry is not None and info.get("geometry") != geometry:
            continue
        present = np.flatnonzero(rec.people > 0)
        if len(present) < MIN_FRAMES:
            skipped += 1
            continue
        seqs.append(coco_sequence([rec.keypoints[i] for i in present]))
        labels.append(GAIT_LABELS[str(info["label"])])
        subjects.append(rec.subject)
        sex.append(str(info["sex"]))
        ages.append(age_group(float(info["age_years"])))
    if skipped:
        log.info("booth walks %s: %d walk(s) seen in fewer than %d frames left out", path, skipped, MIN_FRAMES)
    if not seqs:
        raise ValueError(f"booth walks {path}: no {geometry or 'any'} walk with at least {MIN_FRAMES} perceived frames")
    return WalkSet(seqs, np.asarray(labels, np.int64), np.asarray(subjects, np.str_), np.asarray(sex, np.str_),
                   np.asarray(ages, np.str_), str(path))  # fmt: skip


def train_booth_models(
    out_dir: Path, *, budget_s: float = 600.0, seed: int = 0, data: Path | None = None, plan: BoothPlan | None = None,
) -> list[TrainedModel]:  # fmt: skip
    """Train the booth's models within about `budget_s` seconds of CPU time; everything goes under `out_dir`."""
    from training import skeleton
    from training.cv import grouped_split

    plan = plan or BoothPlan.for_budget(budget_s)
    out_dir = Path(out_dir)
    started = time.monotonic()
    if data is None:
        from training.synth.booth_dataset import render_walks

        data = out_dir / "data" / "booth-walks"
        render_walks(data, plan.walks, seed, GEOMETRY)
        log.info("booth: %d walks rendered and perceived in %.0f s", plan.walks, time.monotonic() - started)
    walks = load_walk_set(Path(data))
    if len(set(walks.subjects.tolist())) < 2 * plan.folds:
        raise ValueError(f"booth walks {data}: {len(walks)} usable walks cannot fill {plan.folds} CV folds")
    cfg = skeleton.FitConfig(epochs=plan.epochs, width=plan.width, draws=plan.draws, seed=seed)
    cv = skeleton.cross_validate(walks.sequences, walks.labels, walks.subjects, plan.folds, cfg)
    groups = {"sex": walks.sex, "age_group": walks.age_group}
    result = CvResult(cv.report(walks.sha256()), cv.pred, cv.target, cv.subjects, groups, out_dir)
    figures = summary(result, TASK, rounds=plan.bootstrap_rounds, seed=seed)
    figures["screening"] = skeleton.screening_figures(cv.target, cv.pred, cv.subjects, rounds=plan.bootstrap_rounds,
                                                      seed=seed)  # fmt: skip
    for column, values in groups.items():
        for level in sorted(set(values.tolist())):
            idx = np.flatnonzero(values == level)
            if level in figures.get(f"by_{column}", {}):
                figures[f"by_{column}"][level]["screening"] = skeleton.screening_figures(
                    cv.target[idx], cv.pred[idx], cv.subjects[idx], rounds=plan.bootstrap_rounds, seed=seed
                )
    # The final model learns from every subject but the held-out ones (parity check and INT8 calibration).
    keep, held = grouped_split(walks.labels, walks.subjects, plan.held_out_fraction, seed)
    final = skeleton.fit([walks.sequences[i] for i in keep], walks.labels[keep], replace(cfg, seed=seed + 1))
    held_set = walks.subset(held)
    held_x = np.stack([skeleton.device_input(s) for s in held_set.sequences]).astype(np.float32)
    checkpoint = skeleton.save(final, out_dir / "train" / ARCH / "model.pt", cfg=cfg, data_sha256=walks.sha256(),
                               metrics={"cv": figures})  # fmt: skip
    (out_dir / "train" / ARCH / "cv.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    counts = {name: int((walks.labels == k).sum()) for name, k in GAIT_LABELS.items()}
    card = base_card(
        name="gait-skeleton", task=TASK, arch=ARCH, report=result.report, figures=figures,
        data={
            "source": f"avatar booth walks towards and away from a camera at the corridor's end (Scoliosis1K's view "
                      f"000_180; training/synth/booth_dataset.py, seed "
                      f"{seed}), keypoints from the booth's own BlazePose mapped to COCO-17",
            "path": str(data), "samples": len(walks), "subjects": figures["subjects"],
            "labels": f"Scoliosis1K classes by the generator's Cobb rule with measurement error: {counts}",
            "held_out": f"{len(held_set)} walks of {len(set(held_set.subjects.tolist()))} subjects the shipped "
                        "weights did not train on",
        },
        intended_use="Adds class probabilities (negative / neutral / positive) to a gait booth's screened "
        "walk-through towards or away from its camera at the corridor's end, beside the booth's asymmetry measures; "
        "a positive walk asks for a clinical examination, never replaces one.",
        limits=[
            "Trained and evaluated on rendered avatars only: synthetic, not clinical; never validated on students.",
            "Walks along the corridor (gait.direction along / towards / away) seen by a camera at its end with the "
            "far-end detection region; walks across a side-wall camera are another input and were not part of "
            "training.",
            "Sees only what BlazePose finds; loose clothing, carried bags and crowded corridors were not rendered.",
            f"Positive means positive against the rest, scored by P(positive); the threshold for specificity 0.80 "
            f"in CV was {figures['screening']['threshold_at_spec80']}.",
        ],
    )  # fmt: skip
    card["training"]["final_fit"] = f"all subjects but the {len(set(held_set.subjects.tolist()))} held out"
    log.info("booth: skeleton gait model trained in %.0f s (CV AUC %s, positive recall at spec 0.80 %s)",
             time.monotonic() - started, figures["pooled"].get("auc"),
             figures["screening"]["recall_at_spec80"])  # fmt: skip
    return [
        TrainedModel(
            name="gait-skeleton", task=TASK, arch=ARCH, checkpoint=checkpoint, held_out=held_x,
            held_out_labels=held_set.labels.astype(np.int64), card=card, profile_key="gait.model",
            notes=["ScoNet-MT is not trained by this command: not shown to learn at a CPU width (module docstring)"],
        )
    ]  # fmt: skip


def describe(models: list[TrainedModel]) -> dict[str, Any]:
    """A short JSON-ready summary of the trained booth models (for logs and the chain's report)."""
    return {m.name: {"checkpoint": str(m.checkpoint), "cv": m.card["cv"].get("screening")} for m in models}
