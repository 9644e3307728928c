"""Per-task synthetic data sets: subjects, their samples, and the labels from `labels.py`.

Sample i belongs to subject i // k (k samples per subject) and draws only from generators seeded by
(seed, task, subject, sample), so `synthetic:100` is the first 100 samples of `synthetic:200` and the same seed
always gives byte-identical arrays."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from training.synth import labels as rules
from training.synth.body import (
    Anthropometry,
    LimbPose,
    Skeleton,
    body_radii,
    head_orientation,
    pose_body,
    sample_anthropometry,
)
from training.synth.camera import View, make_camera, view_camera
from training.synth.gait import FlexionPattern, flexion_sequence, gait_sequence, pain_level, sample_flexion, sample_gait
from training.synth.posture import Posture, sample_posture, scoliosis
from training.synth.render import (
    estimator_keypoints,
    normalise_silhouette,
    render_cervical_xray,
    render_mask,
    render_person_image,
)

U8 = npt.NDArray[np.uint8]

IMAGE_SIZE = 128
KEYPOINT_IMAGE = (640, 480)  # width, height of the frames the synthetic keypoints come from
POSTURE_WINDOW = 8  # frames per posture-keypoints sample (reduced to one pose by the per-landmark median)
FLEXION_FPS = 10.0
GAIT_FPS = 25.0
GAIT_VIEWS = ("090", "270")
# meta["truth"] of head-shift: head yaw/pitch/roll relative to the trunk (HeadPose conventions, degrees), the true
# shifts in head widths, and where the camera sits seen from the head (azimuth > 0 towards the subject's left,
# elevation > 0 above). The head pose as the camera sees it: yaw - camera_azimuth, pitch - camera_elevation.
HEAD_TRUTH_COLUMNS = (
    "yaw",
    "pitch",
    "roll",
    "lateral",
    "sagittal",
    "camera_azimuth",
    "camera_elevation",
)  # walking towards image left / image right, seen from the side

TASK_CODES = {"posture-image": 1, "posture-keypoints": 2, "flexion": 3, "gait": 4, "head-shift": 5, "xray": 6}
DEFAULT_SIZES = {
    "posture-image": 400,
    "posture-keypoints": 1000,
    "flexion": 200,
    "gait": 240,
    "head-shift": 400,
    "xray": 300,
}
SAMPLES_PER_SUBJECT = {"posture-image": 2, "posture-keypoints": 2, "flexion": 2, "gait": 2, "head-shift": 4, "xray": 1}


@dataclass
class SynthSet:
    """Raw generated samples in the formats the real loaders produce (before any load-time cropping)."""

    inputs: Any  # np.ndarray or list of np.ndarray
    targets: npt.NDArray[Any]
    subjects: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


def _rng(seed: int, task: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, TASK_CODES[task], *keys])


def _subject_id(task: str, subject: int) -> str:
    return f"S{subject:05d}"


SEATED = LimbPose(
    hip_flexion=(88.0, 88.0),
    knee_flexion=(88.0, 88.0),
    shoulder_flexion=(25.0, 25.0),
    elbow_flexion=(75.0, 75.0),
    seated=True,
)
SEAT_HEIGHT = 0.47


def _office_subject(seed: int, task: str, subject: int) -> tuple[Anthropometry, Posture, rules.Label]:
    rng = _rng(seed, task, subject)
    anthro = sample_anthropometry(rng)
    posture = sample_posture(rng, "office")
    return anthro, posture, rules.ch_label(posture, rng)


def _side_or_oblique(rng: np.random.Generator) -> View:
    return "side" if rng.random() < 0.7 else "oblique"


def jitter_posture(posture: Posture, rng: np.random.Generator) -> Posture:
    """The same person on another day: small changes that keep the label's drivers close."""
    return replace(
        posture,
        neck_flexion=posture.neck_flexion + float(rng.normal(0, 2)),
        head_yaw=posture.head_yaw + float(rng.normal(0, 3)),
        trunk_flexion=posture.trunk_flexion + float(rng.normal(0, 2)),
    )


def _seated(anthro: Anthropometry, posture: Posture) -> Skeleton:
    return pose_body(anthro, posture, SEATED, root=(0.0, SEAT_HEIGHT, 0.0), on_ground=False)


def posture_image(seed: int, n: int, size: int = IMAGE_SIZE) -> SynthSet:
    """Side and oblique photos of seated office workers; label: CH risk from forward head posture."""
    task = "posture-image"
    k = SAMPLES_PER_SUBJECT[task]
    images = np.empty((n, size, size, 3), np.uint8)
    targets = np.empty(n, np.int64)
    subjects = []
    for i in range(n):
        anthro, posture, label = _office_subject(seed, task, i // k)
        rng = _rng(seed, task, i // k, i % k + 1)
        skel = _seated(anthro, jitter_posture(posture, rng))
        target = skel["pelvis"] + np.array([0.0, 0.38 * anthro.scale, 0.08])
        view = _side_or_oblique(rng)
        cam = view_camera(
            rng,
            size,
            size,
            view=view,
            target=target,
            subject_heading=0.0,
            distance=(1.7, 2.1),
            camera_height=(0.8, 1.2),
            hfov=(48.0, 56.0),
        )
        images[i] = render_person_image(skel, cam, rng)
        targets[i] = label.observed
        subjects.append(_subject_id(task, i // k))
    return SynthSet(images, targets, subjects)


def posture_keypoint_windows(seed: int, n: int) -> SynthSet:
    """Windows of POSTURE_WINDOW estimator keypoint frames (33 x [x, y, visibility] pixels) of seated workers."""
    task = "posture-keypoints"
    k = SAMPLES_PER_SUBJECT[task]
    width, height = KEYPOINT_IMAGE
    windows = []
    targets = np.empty(n, np.int64)
    subjects = []
    for i in range(n):
        anthro, posture, label = _office_subject(seed, task, i // k)
        rng = _rng(seed, task, i // k, i % k + 1)
        skel = _seated(anthro, jitter_posture(posture, rng))
        target = skel["pelvis"] + np.array([0.0, 0.35 * anthro.scale, 0.1])
        cam = view_camera(
            rng, width, height, view=_side_or_oblique(rng), target=target, distance=(1.6, 2.6), camera_height=(0.8, 1.3)
        )
        joints = np.repeat(skel.joints[None], POSTURE_WINDOW, axis=0)
        windows.append(estimator_keypoints(joints, cam, rng))
        targets[i] = label.observed
        subjects.append(_subject_id(task, i // k))
    return SynthSet(windows, targets, subjects, {"image_size": KEYPOINT_IMAGE, "fps": 5.0})


def flexion(seed: int, n: int) -> SynthSet:
    """Forward-flexion trials seen from the side as estimator keypoint sequences; label: MCI vs MI; PROMs."""
    task = "flexion"
    k = SAMPLES_PER_SUBJECT[task]
    width, height = KEYPOINT_IMAGE
    seqs = []
    targets = np.empty(n, np.int64)
    proms = np.empty((n, 3), np.float32)
    subjects = []
    for i in range(n):
        srng = _rng(seed, task, i // k)
        anthro = sample_anthropometry(srng)
        posture = sample_posture(srng, "standing")
        pattern: FlexionPattern = "mi" if srng.random() < 0.55 else "mci"
        label = rules.flexion_label(pattern, srng)
        # PROMs (pain NRS 0-10, disability ODI 0-100, fear TSK 17-68): barely related to the class.
        subject_proms = (
            float(np.clip(srng.normal(5.0 + 0.3 * (pattern == "mi"), 2), 0, 10)),
            float(np.clip(srng.normal(28 + 2 * (pattern == "mi"), 12), 0, 100)),
            float(np.clip(srng.normal(40 + 1.5 * (pattern == "mi"), 8), 17, 68)),
        )
        rng = _rng(seed, task, i // k, i % k + 1)
        params = sample_flexion(rng, pattern)  # each trial of the pattern varies
        heading = 0.0
        joints = flexion_sequence(anthro, posture, params, rng, fps=FLEXION_FPS, heading=heading)
        target = np.array([0.0, 0.75 * anthro.height, 0.2])
        cam = view_camera(
            rng,
            width,
            height,
            view="side",
            target=target,
            distance=(2.6, 3.4),
            camera_height=(0.9, 1.3),
            hfov=(55.0, 65.0),
        )
        seqs.append(estimator_keypoints(joints, cam, rng, noise=0.006))
        targets[i] = label.observed
        proms[i] = subject_proms
        subjects.append(_subject_id(task, i // k))
    return SynthSet(seqs, targets, subjects, {"image_size": KEYPOINT_IMAGE, "fps": FLEXION_FPS, "proms": proms})


def _gait_subject(seed: int, task: str, subject: int) -> tuple[Anthropometry, Posture, rules.Label, float]:
    rng = _rng(seed, task, subject)
    anthro = sample_anthropometry(rng, age="adolescent")
    cobb = rules.sample_cobb(rng, int(rng.integers(3)))
    posture = replace(sample_posture(rng, "standing"), **scoliosis(cobb, rng))
    return anthro, posture, rules.scoliosis_label(cobb, rng), cobb


def gait_silhouettes(seed: int, n: int) -> SynthSet:
    """Side-view walking sequences as Scoliosis1K silhouettes (T, 64, 64) uint8; label: scoliosis class."""
    task = "gait"
    k = SAMPLES_PER_SUBJECT[task]
    seqs: list[U8] = []
    targets = np.empty(n, np.int64)
    subjects, views, cobbs = [], [], []
    for i in range(n):
        anthro, posture, label, cobb = _gait_subject(seed, task, i // k)
        rng = _rng(seed, task, i // k, i % k + 1)
        view = GAIT_VIEWS[i % k % len(GAIT_VIEWS)]
        heading = 90.0 if view == "090" else -90.0
        params = sample_gait(rng, anthro, posture, pain=pain_level(rng))
        n_frames = int(rng.integers(30, 46))
        span = params.speed * n_frames / GAIT_FPS
        start = (-np.sign(heading) * span / 2, 0.0, 0.0)
        joints, _ = gait_sequence(
            anthro,
            posture,
            params,
            fps=GAIT_FPS,
            n_frames=n_frames,
            start=start,
            heading=heading,
            phase0=float(rng.random()),
        )
        distance = float(rng.uniform(3.5, 4.5))
        cam = make_camera(
            240, 180, eye=(0.0, float(rng.uniform(0.9, 1.3)), -distance), target=(0.0, 0.85, 0.0), hfov_deg=60.0
        )
        frames = [normalise_silhouette(render_mask(_skeleton(joints[t], anthro), cam)) for t in range(n_frames)]
        seqs.append(np.stack([f for f in frames if f is not None]))
        targets[i] = label.observed
        subjects.append(_subject_id(task, i // k))
        views.append(view)
        cobbs.append(cobb)
    return SynthSet(seqs, targets, subjects, {"views": views, "cobb": np.array(cobbs, np.float32)})


def _skeleton(joints: npt.NDArray[np.float64], anthro: Anthropometry) -> Skeleton:
    return Skeleton(joints=joints, anthro=anthro, radii=body_radii(anthro))


def head_shift(seed: int, n: int, size: int = IMAGE_SIZE) -> SynthSet:
    """Head-and-shoulders photos from the front with random head pose and shift; targets: (lateral, sagittal)
    shift in head widths."""
    task = "head-shift"
    k = SAMPLES_PER_SUBJECT[task]
    images = np.empty((n, size, size, 3), np.uint8)
    targets = np.empty((n, 2), np.float32)
    subjects = []
    truth = np.empty((n, 7), np.float32)
    for i in range(n):
        srng = _rng(seed, task, i // k)
        anthro = sample_anthropometry(srng)
        rng = _rng(seed, task, i // k, i % k + 1)
        posture = sample_posture(rng, "cervical")
        skel = _seated(anthro, posture)
        target = skel["c7"] + np.array([0.0, 0.06 * anthro.scale, 0.0])
        cam = view_camera(
            rng,
            size,
            size,
            view="front",
            target=target,
            distance=(0.9, 1.2),
            camera_height=(float(target[1]) - 0.1, float(target[1]) + 0.1),
            hfov=(38.0, 46.0),
        )
        images[i] = render_person_image(skel, cam, rng)
        targets[i] = rules.head_shift_target(posture, anthro, rng)
        yaw, pitch, roll = head_orientation(posture)
        to_camera = cam.centre - skel["head"]
        truth[i] = (
            yaw,
            pitch,
            roll,
            posture.head_lateral_shift / anthro.head_width,
            posture.head_sagittal_shift / anthro.head_width,
            float(np.degrees(np.arctan2(to_camera[0], to_camera[2]))),
            float(np.degrees(np.arctan2(to_camera[1], np.hypot(to_camera[0], to_camera[2])))),
        )
        subjects.append(_subject_id(task, i // k))
    return SynthSet(images, targets, subjects, {"truth": truth, "truth_columns": list(HEAD_TRUTH_COLUMNS)})


def xray(seed: int, n: int, size: int = IMAGE_SIZE) -> SynthSet:
    """Lateral cervical X-ray-like images; label: normal / straightened / reversed curvature."""
    task = "xray"
    images = np.empty((n, size, size, 1), np.uint8)
    targets = np.empty(n, np.int64)
    curvature = np.empty(n, np.float32)
    subjects = []
    for i in range(n):
        rng = _rng(seed, task, i)
        angle = float(rng.uniform(-30.0, 40.0))
        images[i, ..., 0] = render_cervical_xray(angle, rng, size)
        targets[i] = rules.xray_label(angle, rng).observed
        curvature[i] = angle
        subjects.append(_subject_id(task, i))
    return SynthSet(images, targets, subjects, {"curvature": curvature})


GENERATORS: dict[str, Callable[[int, int], SynthSet]] = {
    "posture-image": posture_image,
    "posture-keypoints": posture_keypoint_windows,
    "flexion": flexion,
    "gait": gait_silhouettes,
    "head-shift": head_shift,
    "xray": xray,
}


def generate(task: str, n: int, seed: int = 0) -> SynthSet:
    """`n` samples of `task` (one of contract.labels.TASKS) from `seed`."""
    if n < 1:
        raise ValueError(f"synthetic sample count must be >= 1, got {n}")
    cv2.setNumThreads(1)
    return GENERATORS[task](seed, n)
