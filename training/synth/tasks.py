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

from contract.labels import class_names
from training.synth import labels as rules
from training.synth.body import (
    Anthropometry,
    LimbPose,
    Skeleton,
    body_radii,
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


def _avatar_subjects(kind: str, seed: int, n_subjects: int, per_subject: int) -> Any:
    """Rendered avatar subjects 0 .. n_subjects - 1 (at least) of scene `kind`, their bodies built two subjects at
    a time from subject 0, so a subject's images do not depend on the set's size (a smaller set is a prefix)."""
    from training.datasets.avatar_common import rendered_subjects

    yield from rendered_subjects(kind, seed, n_subjects + n_subjects % 2, batch_subjects=2, n_frames=per_subject)


def _square(rgb: U8, size: int) -> U8:
    """The whole frame resized to size x size, as the image-folder loader resizes a frame it reads."""
    return np.ascontiguousarray(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA), np.uint8)


def posture_image(seed: int, n: int, size: int = IMAGE_SIZE) -> SynthSet:
    """Seated office workers at a desk, rendered as avatars (the `office-desk` scene: desk-monitor, oblique and side
    cameras, the scene's camera degradations); label: CH risk from forward head posture (labels.ch_label). Each
    640x480 frame is resized to size x size."""
    task = "posture-image"
    k = SAMPLES_PER_SUBJECT[task]
    names = list(class_names(task))
    images = np.empty((n, size, size, 3), np.uint8)
    targets = np.empty(n, np.int64)
    subjects: list[str] = []
    for clip in _avatar_subjects("office-desk", seed, -(-n // k), k):
        for frame in clip.frames:
            i = len(subjects)
            if i >= n:
                break
            images[i] = _square(frame.rgb, size)
            targets[i] = names.index(str(frame.truth["label"]))
            subjects.append(clip.subject)
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
    """Head-and-shoulders crops of seated adults at the head-pose station, rendered as avatars and cut as the device
    cuts them (training.datasets.avatar_head_shift: the square placed by the shoulder keypoints, study 002's
    recipe); targets: (lateral, sagittal) shift in head widths with the rater's error. A frame whose shoulders the
    device would not see is left out, so a subject gives up to 4 images (SAMPLES_PER_SUBJECT)."""
    from training.datasets.avatar_head_shift import (
        crop_box,
        crop_square,
        head_width_m,
        jittered_keypoints,
        shift_targets,
    )

    kind = "head-station"
    k = SAMPLES_PER_SUBJECT["head-shift"]
    images = np.empty((n, size, size, 3), np.uint8)
    targets = np.empty((n, 2), np.float32)
    truth = np.empty((n, len(HEAD_TRUTH_COLUMNS)), np.float32)
    subjects: list[str] = []
    wanted = -(-n // k)
    while len(subjects) < n:  # more subjects when frames were left out
        subjects.clear()
        for clip in _avatar_subjects(kind, seed, wanted, k):
            for frame in clip.frames:
                i = len(subjects)
                if i >= n:
                    break
                rng = _rng(seed, "head-shift", int(clip.subject[1:]), frame.frame)
                box = crop_box(jittered_keypoints(frame.truth["keypoints"], rng), min_visibility=0.5)
                if box is None:
                    continue
                images[i] = crop_square(frame.rgb, box, size)
                width = head_width_m(frame.points)
                asked = frame.truth["asked"]
                targets[i] = shift_targets(asked, width, rng)
                yaw, pitch, roll = (float(asked[k]) for k in ("head_yaw_deg", "head_pitch_deg", "head_roll_deg"))
                truth[i] = (
                    yaw,
                    pitch,
                    roll,
                    asked["head_lateral_shift"] / width,
                    asked["head_sagittal_shift"] / width,
                    yaw - float(frame.truth["yaw_deg_camera"]),
                    pitch - float(frame.truth["pitch_deg_camera"]),
                )
                subjects.append(clip.subject)
        wanted += 2
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
