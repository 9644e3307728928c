"""Write synthetic sets to disk in exactly the formats the real loaders (training/datasets) read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.labels import class_names
from training.datasets.image_folder import write_image_folder
from training.datasets.keypoints import write_keypoint_csv, write_keypoint_labels
from training.datasets.scoliosis1k import write_silhouette_pkl, write_split
from training.synth import tasks
from training.synth.walkthrough import write_walkthroughs

PROM_NAMES = ("prom_pain_nrs", "prom_odi", "prom_tsk")
TASK_OF_KIND = {
    "posture-images": "posture-image",
    "keypoints": "posture-keypoints",
    "flexion": "flexion",
    "gait": "gait",
    "head-shift": "head-shift",
    "xray": "xray",
}


def write_synthetic(
    kind: str,
    out: str | Path,
    *,
    n: int | None = None,
    seed: int = 0,
    image_size: int = 128,
    scenarios: tuple[str, ...] | None = None,
) -> Path:
    """Generate `n` samples of `kind` (a `edgescreen synth` kind) from `seed` into `out`; returns the directory.
    `scenarios` (walk-throughs only) replaces the standard mix."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    if kind == "walkthroughs":
        write_walkthroughs(root, n if n is not None else 20, seed, scenarios)
        return root
    if kind not in TASK_OF_KIND:
        raise ValueError(f"unknown synth kind {kind!r}; known: {', '.join([*TASK_OF_KIND, 'walkthroughs'])}")
    task = TASK_OF_KIND[kind]
    count = n if n is not None else tasks.DEFAULT_SIZES[task]
    if task in ("posture-image", "xray"):
        raw = (tasks.posture_image if task == "posture-image" else tasks.xray)(seed, count, image_size)
        write_image_folder(root, raw.inputs, raw.subjects, raw.targets, class_names=class_names(task))
    elif task == "head-shift":
        raw = tasks.head_shift(seed, count, image_size)
        write_image_folder(
            root, raw.inputs, raw.subjects, raw.targets, label_columns=("lateral_shift", "sagittal_shift")
        )
    elif task in ("posture-keypoints", "flexion"):
        raw = tasks.generate(task, count, seed)
        names = class_names(task)
        fps = float(raw.meta["fps"])
        rows: list[tuple[str, str, str, float | None]] = []
        (root / "sequences").mkdir(exist_ok=True)
        for i, seq in enumerate(raw.inputs):
            file = f"sequences/{i:06d}.csv"
            write_keypoint_csv(root / file, seq)
            rows.append((raw.subjects[i], file, names[int(raw.targets[i])], fps))
        proms = raw.meta.get("proms")
        write_keypoint_labels(root, rows, proms, PROM_NAMES if proms is not None else ())
    else:  # gait
        raw = tasks.generate(task, count, seed)
        names = class_names(task)
        for i, seq in enumerate(raw.inputs):
            sid, view = raw.subjects[i], raw.meta["views"][i]
            write_silhouette_pkl(root / sid / names[int(raw.targets[i])] / view / f"{view}.pkl", seq)
        ids = sorted(set(raw.subjects))
        order = np.random.default_rng([seed, 99]).permutation(len(ids))
        n_train = max(1, round(0.7 * len(ids))) if len(ids) > 1 else len(ids)
        train = sorted(ids[j] for j in order[:n_train])
        test = sorted(ids[j] for j in order[n_train:])
        write_split(root / "partition.json", train, test)
    return root
