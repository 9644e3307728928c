"""One label map per task, shared by training, export and the device.

The integer of a class is its output index in the model; the device and export read these maps (or the copy
stored in each checkpoint), so a class is never renumbered. The gait map follows Scoliosis1K / OpenGait
(negative 0, neutral 1, positive 2).
"""

from __future__ import annotations

from typing import Literal

TaskName = Literal["posture-image", "posture-keypoints", "flexion", "gait", "head-shift", "xray"]
TaskKind = Literal["binary", "multiclass", "regression"]

TASKS: tuple[TaskName, ...] = ("posture-image", "posture-keypoints", "flexion", "gait", "head-shift", "xray")

# Posture (study 000): control vs cervicogenic headache risk; the keypoint classifier shares the image map.
POSTURE_LABELS: dict[str, int] = {"control": 0, "ch": 1}
# BACK-to-MOVE (study 001): motor-control impairment vs movement impairment; MI is the "positive" class
# (the study reports sensitivity as MI detection, specificity as MCI detection).
FLEXION_LABELS: dict[str, int] = {"mci": 0, "mi": 1}
# Scoliosis1K (study 003).
GAIT_LABELS: dict[str, int] = {"negative": 0, "neutral": 1, "positive": 2}
# Cervical curvature on X-ray (study 004).
XRAY_LABELS: dict[str, int] = {"normal": 0, "straightened": 1, "reversed": 2}

LABEL_MAPS: dict[TaskName, dict[str, int]] = {
    "posture-image": POSTURE_LABELS,
    "posture-keypoints": POSTURE_LABELS,
    "flexion": FLEXION_LABELS,
    "gait": GAIT_LABELS,
    "xray": XRAY_LABELS,
    "head-shift": {},
}

# Regression outputs of the head-shift model, in output order; units: fraction of head width (see the generator).
HEAD_SHIFT_TARGETS: tuple[str, ...] = ("lateral_shift", "sagittal_shift")

TASK_KINDS: dict[TaskName, TaskKind] = {
    "posture-image": "binary",
    "posture-keypoints": "binary",
    "flexion": "binary",
    "gait": "multiclass",
    "head-shift": "regression",
    "xray": "multiclass",
}


def label_map(task: str) -> dict[str, int]:
    """The label map of `task` (empty for the regression task)."""
    return dict(LABEL_MAPS[check_task(task)])


def class_names(task: str) -> list[str]:
    """Class names of `task` in output-index order."""
    mapping = label_map(task)
    return [name for name, _ in sorted(mapping.items(), key=lambda item: item[1])]


def check_task(task: str) -> TaskName:
    """Return `task` as a TaskName or raise ValueError naming the known tasks."""
    if task not in TASKS:
        import difflib

        close = difflib.get_close_matches(task, TASKS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown task {task!r}{hint}; known: {', '.join(TASKS)}")
    return task
