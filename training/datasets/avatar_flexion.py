"""The BACK-to-MOVE set from avatars (study 001): standing forward-flexion trials of the `flexion` avatar scene
(training/synth/avatar/scenes.py), each run frame by frame through the device's own perception, so the model
learns from the keypoints a camera and BlazePose give, not from render truth.

Each subject does two trials (scenes.FLEXION_TRIALS: the same person, pattern and label, each its own movement and
camera placement); the label is the scene's, drawn by the capsule task's rule (labels.flexion_label: the sampled
MCI/MI pattern, 6 % of labels flipped). Perception runs as on video (edge.perception.pipeline on ONNX Runtime,
pose only, tracking between frames, one-euro smoothing, reset before each trial). A frame in which it finds
nobody is filled in time from its neighbours with visibility 0 (the keypoint format has no gaps); a trial in which
it finds nobody in more than half the frames (`MIN_FOUND`) is left out and counted.

Written as a keypoint folder (training.datasets.keypoints): ROOT/seq/SUBJECT_tTRIAL.json (BlazePose order, pixel
coordinates of the 640x480 frame, the clip's fps) and ROOT/labels.csv with `subject_id,file,label,fps` and, for
breakdowns, sex, age, age group, trial, the share of frames perception found the person in, and the camera's
distance. `edgescreen train --task flexion --data ROOT` reads it; `evaluate_set` adds the breakdown by sex and age
group."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.landmarks import NUM_LANDMARKS
from training.datasets.avatar_common import BREAKDOWN_COLUMNS, RowWriter, breakdown_cells
from training.datasets.keypoints import write_keypoint_json

log = logging.getLogger(__name__)

KIND = "flexion"
TASK = "flexion"
MIN_FOUND = 0.5  # share of a trial's frames perception must find the person in
HEADER = ("subject_id", "file", "label", "fps", *BREAKDOWN_COLUMNS, "trial", "found", "camera_distance_m")
GROUP_COLUMNS = ("sex", "age_group")
F32 = npt.NDArray[np.float32]


def perception(model_dir: Path | None = None, threads: int = 1) -> Any:
    """The device's pose perception on ONNX Runtime as on video: no face, tracking between frames."""
    from edge.model_store import default_model_dir
    from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline

    config = PerceptionConfig.model_validate(
        {"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": threads}, "face": False}
    )
    return PerceptionPipeline(config, model_dir or default_model_dir())


def perceive_clip(pipeline: Any, clip: Any) -> tuple[F32, npt.NDArray[np.bool_]]:
    """(T, 33, 3) keypoints of the person perception tracks through `clip` (NaN where it finds nobody) and the
    frames it found them in."""
    n = len(clip.frames)
    seq = np.full((n, NUM_LANDMARKS, 3), np.nan, np.float32)
    found = np.zeros(n, bool)
    pipeline.reset()
    for i, frame in enumerate(clip.frames):
        result = pipeline.process(np.ascontiguousarray(frame.rgb[..., ::-1]), frame.t)
        if result.persons:
            seq[i] = np.asarray(result.persons[0].keypoints, np.float32)
            found[i] = True
    return seq, found


def fill_gaps(seq: F32, found: npt.NDArray[np.bool_]) -> F32:
    """`seq` with the frames where nobody was found filled by linear interpolation in time (the nearest found frame
    at either end), their visibility 0."""
    if not found.any():
        raise ValueError("fill_gaps: no frame has a person")
    out = seq.copy()
    t = np.arange(len(seq))
    have = np.flatnonzero(found)
    for j in range(NUM_LANDMARKS):
        for c in range(2):
            out[:, j, c] = np.interp(t, have, seq[have, j, c])
    out[~found, :, 2] = 0.0
    return out


def _trials(seed: int, n: int, width: int, height: int) -> Iterator[Any]:
    """The first `n` trials of the set as rendered clips: subject 0's trials, then subject 1's, ...; the trials of
    one subject are built in one batch."""
    from training.synth.avatar.scenes import FLEXION_TRIALS, SceneRenderer, flexion_plan

    renderer = SceneRenderer(width, height)
    for index in range(-(-n // FLEXION_TRIALS)):
        count = min(FLEXION_TRIALS, n - index * FLEXION_TRIALS)
        yield from renderer.render([flexion_plan(seed, index, trial=k) for k in range(count)], clip=True)


def write_flexion_set(
    out: Path, n_trials: int, seed: int = 0, *, width: int = 640, height: int = 480, model_dir: Path | None = None
) -> dict[str, Any]:
    """Render `n_trials` flexion trials (two per subject), perceive them and write the keypoint folder `out`;
    returns counts (trials written, subjects, left out, labels) and the seconds it took."""
    if n_trials < 1:
        raise ValueError(f"flexion avatar set: the number of trials must be >= 1, got {n_trials}")
    (out / "seq").mkdir(parents=True, exist_ok=True)
    pipeline = perception(model_dir)
    started = time.monotonic()
    written = rendered = left_out = frames = 0
    subjects: set[str] = set()
    labels: dict[str, int] = {}
    with RowWriter(out, HEADER) as rows:
        for clip in _trials(seed, n_trials, width, height):
            rendered += 1
            first = clip.frames[0].truth
            seq, found = perceive_clip(pipeline, clip)
            frames += len(found)
            share = float(found.mean())
            if share <= MIN_FOUND:
                left_out += 1
                log.info("flexion avatars: %s trial %d left out, person found in %.0f %% of frames", clip.subject,
                         first["trial"], 100 * share)  # fmt: skip
                continue
            name = f"seq/{clip.subject}_t{first['trial']}.json"
            write_keypoint_json(out / name, fill_gaps(seq, found), fps=clip.fps)
            distance = float(np.hypot(clip.camera.position[0], clip.camera.position[2]))
            rows.write([clip.subject, name, first["label"], clip.fps, *breakdown_cells(first), first["trial"],
                        f"{share:.3f}", f"{distance:.2f}"])  # fmt: skip
            subjects.add(clip.subject)
            labels[first["label"]] = labels.get(first["label"], 0) + 1
            written += 1
            if rendered % 10 == 0:
                rate = rendered / max(time.monotonic() - started, 1e-6)
                log.info("flexion avatars: %d/%d trials (%.2f/s), %d left out", rendered, n_trials, rate, left_out)
    return {"trials": written, "subjects": len(subjects), "left_out": left_out, "labels": labels, "frames": frames,
            "seconds": round(time.monotonic() - started, 1)}  # fmt: skip


def load_set(path: Path) -> tuple[Any, dict[str, npt.NDArray[np.str_]]]:
    """A flexion keypoint folder as TaskData, plus its breakdown columns (sex, age group) by trial."""
    from training.data import load_task_data
    from training.datasets.image_folder import read_labels_csv

    data = load_task_data(TASK, str(path))
    rows = read_labels_csv(path / "labels.csv", ("subject_id", "file", "label"))
    groups = {c: np.asarray([r[c] for r in rows], np.str_) for c in GROUP_COLUMNS if all(c in r for r in rows)}
    return data, groups


def evaluate_set(
    path: Path, out_dir: Path, *, folds: int = 5, epochs: int = 30, seed: int = 0, rounds: int = 1000
) -> dict[str, Any]:
    """Subject-disjoint CV of flexion_net on the set at `path` (as `edgescreen train --task flexion --no-final-fit`
    with these folds, epochs and seed): pooled figures with 95 % CIs, recall per class, and the same by sex and by
    age group (training.device_models.evaluation.summary)."""
    from training.device_models.evaluation import cross_validate, summary
    from training.train import TrainConfig

    data, groups = load_set(path)
    cfg = TrainConfig(task=TASK, data=str(path), folds=folds, epochs=epochs, seed=seed, final_fit=False,
                      progress=False, bootstrap_rounds=rounds)  # fmt: skip
    cv = cross_validate(cfg, data, out_dir, groups)
    return summary(cv, TASK, rounds=rounds, seed=seed)
