"""Avatar scenes with their truth: who, in which pose, where, seen by which camera, and what every metric is.

Four scene kinds, one per device role and one for study 001 (docs/synthetic.md, "Avatar scenes"):
  office-desk   a seated office worker at a desk (desk and chair hide part of the body), the posture device's
                camera on the monitor (front), beside it (oblique) or on a side wall (side); posture from the
                generator's office sampler, the cervicogenic-headache label by its rule (labels.ch_label);
  booth-walk    a student aged 10-16 walking towards or away from the booth camera at the corridor's end, across a
                side-wall camera, or obliquely past it; scoliosis-like asymmetry for a sampled Cobb angle
                (pose.sample_scoliosis), the Scoliosis1K class by its rule (labels.scoliosis_label), the walk cycle
                with the asymmetries scoliosis and pain cause (walk.sample_walk);
  head-station  a seated adult facing the head-pose station's camera, head yaw / pitch / roll and lateral /
                sagittal shift over the cervical-dystonia-like range (posture.sample_posture "cervical");
  flexion       an adult aged 18-70 standing in a clinic or office (or before a photo) who bends forward as far as
                is comfortable and returns (walk.FlexionTrial: the capsule generator's gait.sample_flexion for an
                MCI or MI pattern), seen from the side 2.5-3.5 m away as training.synth.tasks.flexion sees it; the
                MCI/MI class by its rule (labels.flexion_label). A subject does `FLEXION_TRIALS` trials
                (`flexion_plan`, trial 0 is the subject's clip): the same person, pattern, label, room and clothes,
                each trial its own movement and camera placement.

Each subject i of a set is drawn from generators seeded by (seed, scene, i) only, so the same seed and size give
byte-identical images and truth, and the first subjects of a larger set are the same people in the same poses
(equal to float rounding: bodies built in another batch differ in the last digits). A subject gives a few still
images (`IMAGES_PER_SUBJECT`, `iter_images`) or one clip (`iter_clips`); bodies are built in batches across
subjects (builder.build_bodies), and a clip's frames share one phenotype's rest body.

Truth of a frame (`AvatarFrame.truth`, JSON-ready; the CLI writes it to truth.jsonl): "keypoints" (33 x
[x, y, visible] pixels, BlazePose order: the mesh's BlazePose points through Frame.project, visible when no
surface lies in front beyond the point's own depth under the skin, points.visibility_tolerance), every metric by
its wire name from truth.frame_truth (the device's definition on those exact landmarks; `_clinical` and `_camera`
variants beside it), the subject's phenotype, the view, whether a prop or wall hides any landmark inside the image
("occluded"), the label, and what was asked ("asked": the posture parameters the body was built from). A booth
clip also carries the walk's gait measures (truth.gait_truth) under the gait role's wire names; the per-frame
values of the names both share move to "<name>_frame". A flexion frame carries its "trial" and the trial's
movement parameters ("flexion": gait.FlexionParams, the pattern being the clean class).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import cv2
import numpy as np

from contract.labels import class_names
from contract.landmarks import NUM_LANDMARKS
from contract.landmarks import Landmark as Lm
from edge.roles.gait.measures import GAIT_MEASURES
from edge.roles.posture.config import POSTURE_METRICS
from training.synth import labels as rules
from training.synth.avatar.appearance import Appearance, sample_appearance
from training.synth.avatar.builder import BodyRequest, build_bodies, stature_m
from training.synth.avatar.camera import CameraPose, role_camera
from training.synth.avatar.imaging import Imaging, apply_imaging, sample_imaging
from training.synth.avatar.mesh import AvatarMesh, BodyPoints
from training.synth.avatar.phenotype import Phenotype, sample_phenotype
from training.synth.avatar.points import visibility_tolerance
from training.synth.avatar.pose import PoseParams, sample_scoliosis, seated
from training.synth.avatar.render import AvatarRenderer, Frame
from training.synth.avatar.scene import Scene, _enclose, make_scene
from training.synth.avatar.truth import HEADPOSE_METRICS, frame_truth, gait_truth
from training.synth.avatar.walk import FlexionTrial, WalkCycle, sample_walk
from training.synth.body import head_orientation
from training.synth.gait import FlexionParams, FlexionPattern, pain_level, sample_flexion
from training.synth.posture import Posture, sample_posture

SceneKind = Literal["office-desk", "booth-walk", "head-station", "flexion"]
SCENE_KINDS: tuple[SceneKind, ...] = get_args(SceneKind)
View = Literal["front", "back", "side", "oblique"]
SCENE_CODES: dict[str, int] = {"office-desk": 21, "booth-walk": 22, "head-station": 23, "flexion": 24}
# No device role screens forward flexion: its clips are for BACK-to-MOVE (study 001), which reads the keypoints
# the device's perception finds; its truth lines carry the posture role's metrics (trunk and neck flexion).
ROLE_OF_SCENE: dict[str, str] = {"office-desk": "posture", "booth-walk": "gait", "head-station": "headpose",
                                 "flexion": "flexion"}  # fmt: skip
# The wire names of each scene's role: every truth line carries them (None where the view cannot give one).
ROLE_METRICS: dict[str, tuple[str, ...]] = {
    "office-desk": POSTURE_METRICS,
    "booth-walk": GAIT_MEASURES,
    "head-station": HEADPOSE_METRICS,
    "flexion": POSTURE_METRICS,
}
IMAGES_PER_SUBJECT: dict[str, int] = {"office-desk": 2, "booth-walk": 4, "head-station": 8, "flexion": 4}
# Flexion at the capsule task's 10 fps (tasks.FLEXION_FPS): the trial's tremor is drawn per frame at that rate.
CLIP_FPS: dict[str, float] = {"office-desk": 10.0, "booth-walk": 15.0, "head-station": 10.0, "flexion": 10.0}
CLIP_SECONDS: dict[str, float] = {"office-desk": 4.0, "head-station": 4.0}  # walks and trials last as they take
FLEXION_TRIALS = 2  # trials per subject, as tasks.SAMPLES_PER_SUBJECT["flexion"]
FLEXION_MI_SHARE = 0.55  # of subjects with the MI pattern, as tasks.flexion
HEAD_FIELDS = ("neck_flexion", "head_yaw", "head_pitch", "head_roll", "head_lateral_shift", "head_sagittal_shift")
DEFAULT_SIZE = (640, 480)
JOINT_LANDMARKS = np.arange(int(Lm.LEFT_SHOULDER), NUM_LANDMARKS)  # BlazePose's body points (face ones are skin)
JOINT_TOLERANCE_M = 0.12


# --- motions of a clip (the body side's Motion protocol) --------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """A seated worker's slow movement: sinusoidal offsets (degrees) of neck flexion, head yaw and pitch and trunk
    flexion, each with its own period (seconds) and phase (cycles)."""

    amplitudes: tuple[float, float, float, float]
    periods: tuple[float, float, float, float]
    phases: tuple[float, float, float, float]

    def pose_at(self, pose: PoseParams, t: float) -> PoseParams:
        a, p, f = self.amplitudes, self.periods, self.phases
        off = [a[i] * math.sin(2 * math.pi * (t / p[i] + f[i])) for i in range(4)]
        q = pose.posture
        posture = replace(
            q,
            neck_flexion=q.neck_flexion + off[0],
            head_yaw=q.head_yaw + off[1],
            head_pitch=q.head_pitch + off[2],
            trunk_flexion=q.trunk_flexion + off[3],
        )
        return replace(pose, posture=posture, motion=None)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Drift:
        return cls(
            amplitudes=(float(rng.uniform(2, 8)), float(rng.uniform(3, 15)), float(rng.uniform(1, 5)),
                        float(rng.uniform(1, 4))),
            periods=tuple(float(x) for x in rng.uniform(2.5, 8.0, 4)),  # type: ignore[arg-type]
            phases=tuple(float(x) for x in rng.random(4)),  # type: ignore[arg-type]
        )  # fmt: skip


@dataclass(frozen=True)
class HeadSweep:
    """The head moving from one set of head parameters (HEAD_FIELDS) to another over `duration_s`, easing in and
    out; the rest of the posture stays."""

    start: tuple[float, ...]
    end: tuple[float, ...]
    duration_s: float

    def pose_at(self, pose: PoseParams, t: float) -> PoseParams:
        u = float(np.clip(t / self.duration_s, 0.0, 1.0))
        w = u * u * (3.0 - 2.0 * u)
        values = {k: (1 - w) * a + w * b for k, a, b in zip(HEAD_FIELDS, self.start, self.end, strict=True)}
        return replace(pose, posture=replace(pose.posture, **values), motion=None)


ASKED_HEAD = ("head_yaw_deg", "head_pitch_deg", "head_roll_deg")  # the asked head pose relative to the trunk


def _posture_fields(asked: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in asked.items() if k in Posture.__dataclass_fields__}


def head_values(posture: Posture) -> tuple[float, ...]:
    return tuple(float(getattr(posture, k)) for k in HEAD_FIELDS)


# --- subjects ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectPlan:
    """Everything drawn for one subject before its bodies exist: the bodies to build (one per frame) and what the
    camera and scene are drawn from once they do."""

    kind: str
    index: int
    seed: int
    phenotype: Phenotype
    requests: tuple[BodyRequest, ...]
    times: tuple[float, ...]
    asked: tuple[dict[str, float], ...]  # per frame: the posture parameters asked of the body
    view: View
    label: str | None
    extra: dict[str, Any] = field(default_factory=dict)  # scene-specific: cobb_deg, walk, direction ...

    @property
    def subject_id(self) -> str:
        return f"S{self.index:05d}"

    def rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SCENE_CODES[self.kind], self.index, *keys])


@dataclass(frozen=True)
class AvatarFrame:
    """One rendered frame: `rgb` as the camera delivers it (blur, noise and, for stills, JPEG applied), the exact
    `silhouette` and `depth`, and its `truth` (JSON-ready). Without `jpeg` it is stored losslessly (PNG)."""

    subject: str
    frame: int
    t: float
    rgb: np.ndarray
    silhouette: np.ndarray
    depth: np.ndarray
    truth: dict[str, Any]
    jpeg: bytes | None = field(default=None, repr=False)  # the camera's JPEG of rgb, when it encodes one
    points: BodyPoints | None = field(default=None, repr=False)

    def encode(self) -> tuple[str, bytes]:
        """(extension, bytes) of the image as written to disk: the camera's JPEG, or PNG."""
        if self.jpeg is not None:
            return ".jpg", self.jpeg
        ok, data = cv2.imencode(".png", np.ascontiguousarray(self.rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise RuntimeError(f"avatar frame {self.subject}/{self.frame}: OpenCV could not encode the image")
        return ".png", data.tobytes()


@dataclass(frozen=True)
class Clip:
    """One subject's frames, in time order, with the camera and what the whole clip's truth adds."""

    subject: str
    kind: str
    fps: float
    frames: list[AvatarFrame]
    camera: CameraPose
    truth: dict[str, Any]


def _office_plan(seed: int, index: int, n_frames: int, clip: bool) -> SubjectPlan:
    from training.synth.tasks import jitter_posture

    kind = "office-desk"
    rng = np.random.default_rng([seed, SCENE_CODES[kind], index])
    phenotype = sample_phenotype(rng, "adult")
    posture = sample_posture(rng, "office")
    label = rules.ch_label(posture, rng)
    u = rng.random()
    view: View = "front" if u < 0.45 else ("oblique" if u < 0.8 else "side")
    base = seated(posture)
    fps = CLIP_FPS[kind]
    if clip:
        drift = Drift.sample(rng)
        pose = replace(base, motion=drift)
        times = tuple(i / fps for i in range(n_frames))
        requests = tuple(BodyRequest(phenotype, pose, t) for t in times)
        asked = tuple(drift.pose_at(base, t).posture.as_dict() for t in times)
    else:
        poses = [seated(jitter_posture(posture, rng)) for _ in range(n_frames)]
        times = tuple(0.0 for _ in poses)
        requests = tuple(BodyRequest(phenotype, p) for p in poses)
        asked = tuple(p.posture.as_dict() for p in poses)
    name = class_names("posture-image")[label.observed]
    return SubjectPlan(kind, index, seed, phenotype, requests, times, asked, view, name, {"label_clean": label.clean})


def _head_plan(seed: int, index: int, n_frames: int, clip: bool) -> SubjectPlan:
    kind = "head-station"
    rng = np.random.default_rng([seed, SCENE_CODES[kind], index])
    phenotype = sample_phenotype(rng, "adult")
    body = sample_posture(rng, "cervical")  # the subject's trunk; each frame draws its own head
    heads = [head_values(sample_posture(rng, "cervical")) for _ in range(n_frames if not clip else 2)]
    base = seated(body)
    fps = CLIP_FPS[kind]
    if clip:
        sweep = HeadSweep(heads[0], heads[1], duration_s=(n_frames - 1) / fps)
        pose = replace(base, motion=sweep)
        times = tuple(i / fps for i in range(n_frames))
        requests = tuple(BodyRequest(phenotype, pose, t) for t in times)
        asked = tuple(sweep.pose_at(base, t).posture.as_dict() for t in times)
    else:
        poses = [replace(base, posture=replace(body, **dict(zip(HEAD_FIELDS, h, strict=True)))) for h in heads]
        times = tuple(0.0 for _ in poses)
        requests = tuple(BodyRequest(phenotype, p) for p in poses)
        asked = tuple(p.posture.as_dict() for p in poses)
    return SubjectPlan(kind, index, seed, phenotype, requests, times, asked, "front", None)


# A screening corridor walk: long enough for at least three gait cycles in the camera's view (a student's stride
# is about 1.0-1.3 m), as a booth needs two whole cycles after the walk's start and end are cut.
WALK_SPAN_M = {"front": 6.0, "back": 6.0, "side": 6.0, "oblique": 6.0}


def _walk_plan(seed: int, index: int, n_frames: int | None, clip: bool) -> SubjectPlan:
    kind = "booth-walk"
    rng = np.random.default_rng([seed, SCENE_CODES[kind], index])
    phenotype = sample_phenotype(rng, "school")
    cobb = rules.sample_cobb(rng, int(rng.integers(3)))
    label = rules.scoliosis_label(cobb, rng)
    scol = sample_scoliosis(rng, cobb)
    pose = scol.apply(PoseParams(posture=sample_posture(rng, "standing")))
    pain = pain_level(rng)
    u = rng.random()
    view: View = "front" if u < 0.3 else ("back" if u < 0.5 else ("side" if u < 0.85 else "oblique"))
    heading = 180.0 if view == "back" else (0.0 if view != "side" else float(rng.choice([0.0, 180.0])))
    span = WALK_SPAN_M[view]
    sign = 1.0 if heading == 0.0 else -1.0
    start = (float(rng.normal(0.0, 0.1)), -sign * span / 2)
    walk = sample_walk(rng, phenotype, stature_m(phenotype), pose.posture, pain=pain, start=start, heading_deg=heading)
    duration = span / walk.gait.speed
    fps = CLIP_FPS[kind]
    total = max(2, int(duration * fps))
    if clip:
        times = tuple(i / fps for i in range(total if n_frames is None else min(n_frames, total)))
    else:
        k = int(n_frames or IMAGES_PER_SUBJECT[kind])
        offset = float(rng.uniform(0.1, 0.9))
        times = tuple(duration * (j + offset) / k for j in range(k))
    moving = replace(pose, motion=walk)
    requests = tuple(BodyRequest(phenotype, moving, t) for t in times)
    asked = tuple(walk.pose_at(pose, t).posture.as_dict() | {"trunk_shift_m": pose.trunk_shift_m} for t in times)
    extra = {"cobb_deg": cobb, "label_clean": label.clean, "walk": walk, "pain": pain, "heading_deg": heading,
             "span_m": span, "scoliosis": scol}  # fmt: skip
    return SubjectPlan(kind, index, seed, phenotype, requests, times, asked, view,
                       class_names("gait")[label.observed], extra)  # fmt: skip


FLEXION_TRIAL_KEY = 100  # a trial's own generator: (seed, scene, subject, FLEXION_TRIAL_KEY + trial)
SPINE_ASKED = ("pelvic_tilt", "lumbar_flexion", "thoracic_flexion")  # the LimbPose angles a flexion trial moves


def flexion_plan(seed: int, index: int, *, trial: int = 0, clip: bool = True, n_frames: int | None = None
                 ) -> SubjectPlan:  # fmt: skip
    """Trial `trial` of flexion subject `index`: who the subject is, their pattern and its observed label come from
    (seed, scene, index) as tasks.flexion draws them (standing posture, MI for FLEXION_MI_SHARE, labels.flexion_label
    with its label noise); the trial's movement (gait.sample_flexion for the pattern, its tremor) from the trial's
    own generator. A clip lasts the whole trial (or its first n_frames); stills are spread over it."""
    kind = "flexion"
    if not 0 <= trial < FLEXION_TRIALS:
        raise ValueError(f"avatar scene flexion: trial must be 0..{FLEXION_TRIALS - 1}, got {trial}")
    rng = np.random.default_rng([seed, SCENE_CODES[kind], index])
    phenotype = sample_phenotype(rng, "adult")
    posture = sample_posture(rng, "standing")
    pattern: FlexionPattern = "mi" if rng.random() < FLEXION_MI_SHARE else "mci"
    label = rules.flexion_label(pattern, rng)
    trng = np.random.default_rng([seed, SCENE_CODES[kind], index, FLEXION_TRIAL_KEY + trial])
    params = sample_flexion(trng, pattern)
    fps = CLIP_FPS[kind]
    motion = FlexionTrial.make(posture, params, seed=int(trng.integers(2**31)), fps=fps)
    total = len(motion.states)
    if clip:
        times = tuple(i / fps for i in range(total if n_frames is None else min(n_frames, total)))
    else:
        k = int(n_frames or IMAGES_PER_SUBJECT[kind])
        offset = float(trng.uniform(0.1, 0.9))
        times = tuple(motion.duration_s * (j + offset) / k for j in range(k))
    base = PoseParams(posture=posture)
    requests = tuple(BodyRequest(phenotype, replace(base, motion=motion), t) for t in times)
    asked = []
    for t in times:
        now = motion.pose_at(base, t)
        spine = {name: float(getattr(now.limbs, name)) for name in SPINE_ASKED}
        asked.append(now.posture.as_dict() | spine | {"knee_flexion": float(np.mean(now.limbs.knee_flexion))})
    extra = {"trial": trial, "flexion": params, "motion": motion, "label_clean": label.clean}
    return SubjectPlan(kind, index, seed, phenotype, requests, times, tuple(asked), "side",
                       class_names("flexion")[label.observed], extra)  # fmt: skip


def plan_subject(kind: str, seed: int, index: int, *, clip: bool = False, n_frames: int | None = None) -> SubjectPlan:
    """Subject `index` of a `kind` set from `seed`: its stills (IMAGES_PER_SUBJECT, or n_frames) or its clip
    (CLIP_SECONDS at CLIP_FPS, or n_frames; a walk lasts as long as the walk, a flexion clip is the subject's
    first trial)."""
    check_kind(kind)
    if kind == "booth-walk":
        return _walk_plan(seed, index, n_frames, clip)
    if kind == "flexion":
        return flexion_plan(seed, index, clip=clip, n_frames=n_frames)
    k = n_frames if n_frames is not None else (
        round(CLIP_SECONDS[kind] * CLIP_FPS[kind]) if clip else IMAGES_PER_SUBJECT[kind]
    )  # fmt: skip
    if k < 1:
        raise ValueError(f"avatar scene {kind}: a subject needs at least one frame, got {k}")
    return (_office_plan if kind == "office-desk" else _head_plan)(seed, index, k, clip)


def check_kind(kind: str) -> None:
    if kind not in SCENE_KINDS:
        raise ValueError(f"unknown avatar scene {kind!r}; expected one of {', '.join(SCENE_KINDS)}")


# --- cameras and scenes, once the bodies exist ------------------------------------------------------------------


# A set's rooms come from a pool of ROOM_POOL[kind] rooms per backdrop (8 in all, the renderer's texture cache,
# render.AvatarRenderer.scene_cache): drawing a room's textures costs 50-270 ms, more than rendering a subject.
# Each subject draws a slot, gets that slot's room (grown to hold its camera where it lies outside; a booth corridor
# always grows, so booth subjects draw their own rooms) and its own light, props and photo.
ROOM_POOL: dict[str, dict[str, int]] = {
    "office-desk": {"office": 6, "photo": 2},
    "head-station": {"clinic": 4, "office": 2, "photo": 2},
    "booth-walk": {"corridor": 6, "photo": 2},
    "flexion": {"clinic": 4, "office": 2, "photo": 2},
}
_BACKDROP_CODES = {"office": 1, "clinic": 2, "corridor": 3, "photo": 4}


def pooled_scene(plan: SubjectPlan, backdrop: str, rng: np.random.Generator, *,
                 contain: Sequence[Sequence[float]] = (), **kwargs: Any) -> Scene:  # fmt: skip
    """A scene of `backdrop` for `plan`'s subject whose room (and so its textures) is one of the set's pool: the
    slot is drawn from the subject's `rng`, the room from (seed, scene, backdrop, slot) alone."""
    slot = int(rng.integers(ROOM_POOL[plan.kind][backdrop]))
    room_rng = np.random.default_rng([plan.seed, SCENE_CODES[plan.kind], 77, _BACKDROP_CODES[backdrop], slot])
    pooled = make_scene(backdrop, room_rng, walk_length_m=kwargs.get("walk_length_m", 8.0))
    scene = make_scene(backdrop, rng, room=_enclose(pooled.room, contain), **kwargs)
    return replace(scene, seed=pooled.seed)


def _office_stage(plan: SubjectPlan, first: BodyPoints, rng: np.random.Generator) -> tuple[CameraPose, Scene]:
    a = first.anatomical
    head = np.asarray(a["head_center"], np.float64)
    hips = 0.5 * (np.asarray(a["hip_joint_l"], np.float64) + np.asarray(a["hip_joint_r"], np.float64))
    if plan.view == "front":
        pose = role_camera("desk-monitor", rng, head - (0.0, 0.12, 0.0))
    elif plan.view == "oblique":
        pose = role_camera("desk-monitor", rng, 0.6 * head + 0.4 * hips, azimuth_deg=float(rng.uniform(35, 55)),
                           both_sides=True, distance_m=(0.9, 1.5))  # fmt: skip
    else:
        pose = role_camera("desk-monitor", rng, 0.5 * (head + hips), azimuth_deg=90.0, both_sides=True,
                           distance_m=(1.3, 2.0), hfov_deg=(55.0, 70.0), height_offset_m=(-0.1, 0.2))  # fmt: skip
    backdrop = "photo" if rng.random() < 0.2 else "office"
    scene = pooled_scene(plan, backdrop, rng, seated=first.seat,
                         contain=[pose.position] if backdrop != "photo" else ())  # fmt: skip
    return pose, scene


def _head_stage(plan: SubjectPlan, first: BodyPoints, rng: np.random.Generator) -> tuple[CameraPose, Scene]:
    head = np.asarray(first.anatomical["head_center"], np.float64)
    # Aim at the neutral head's place: the head moves within the view from frame to frame, the camera stays.
    pose = role_camera("head-station", rng, head - (0.0, 0.05, 0.0))
    u = rng.random()
    backdrop = "clinic" if u < 0.6 else ("office" if u < 0.8 else "photo")
    scene = pooled_scene(plan, backdrop, rng, seated=first.seat,
                         contain=[pose.position] if backdrop != "photo" else ())  # fmt: skip
    chair_only = tuple(p for p in scene.props if not p.name.startswith("desk"))  # a station has no desk
    return pose, replace(scene, props=chair_only)


def _walk_stage(plan: SubjectPlan, first: BodyPoints, rng: np.random.Generator) -> tuple[CameraPose, Scene]:
    walk: WalkCycle = plan.extra["walk"]
    height = float(first.blazepose[:, 1].max())
    target = np.array([walk.start[0], 0.55 * height, 0.0])
    heading = plan.extra["heading_deg"]
    span = plan.extra["span_m"]
    if plan.view in ("front", "back"):  # the camera at the corridor's +z end
        # the walk's near end stays 3.0-4.5 m from the camera, so the whole student is in view there
        pose = role_camera("booth-end", rng, target, distance_m=(span / 2 + 3.0, span / 2 + 4.5))
    elif plan.view == "oblique":
        pose = role_camera("booth-end", rng, target, azimuth_deg=float(rng.uniform(25, 45)), both_sides=True,
                           distance_m=(span / 2 + 2.5, span / 2 + 4.5))  # fmt: skip
    else:
        # Far enough back that a whole student stays in view over most of the walk (the role's nearest mount crops
        # the head, and at 2-3 m only about one gait cycle fits across the image).
        pose = role_camera("booth-side", rng, target, facing_deg=heading, distance_m=(4.0, 4.8))
    ends = [(walk.start[0] + dx, 0.0, z) for dx in (-0.6, 0.6) for z in (-span / 2 - 0.5, span / 2 + 0.5)]
    backdrop = "photo" if rng.random() < 0.15 else "corridor"
    contain = [pose.position, *ends] if backdrop != "photo" else ()
    scene = pooled_scene(plan, backdrop, rng, walk_length_m=span + 2.0, contain=contain)
    return pose, scene


# A flexion camera stands as tasks.flexion's: on a side wall 2.5-3.5 m from the subject, 0.9-1.3 m high, aimed
# at mid-body a little forward of the feet (the trunk bends forward), a few degrees off square.
FLEXION_CAMERA: dict[str, Any] = {"distance_m": (2.5, 3.5), "hfov_deg": (55.0, 65.0), "height_m": (0.9, 1.3),
                  "azimuth_jitter_deg": 8.0}  # fmt: skip
PROP_CLEARANCE_M = 1.2  # a cabinet nearer the camera than this (horizontally) would stand in front of the lens


def _flexion_stage(plan: SubjectPlan, first: BodyPoints, rng: np.random.Generator) -> tuple[CameraPose, Scene]:
    height = float(first.blazepose[:, 1].max())
    target = np.array([0.0, 0.5 * height, 0.25])
    # The room and clothes are the subject's (one visit); each trial places the camera anew.
    camera_rng = plan.rng(3, int(plan.extra["trial"]))
    pose = role_camera("booth-side", camera_rng, target, **FLEXION_CAMERA)
    u = rng.random()
    backdrop = "clinic" if u < 0.5 else ("office" if u < 0.8 else "photo")
    scene = pooled_scene(plan, backdrop, rng, contain=[pose.position] if backdrop != "photo" else ())
    camera_xz = np.array([pose.position[0], pose.position[2]])
    clear = tuple(p for p in scene.props
                  if np.hypot(*(np.array([p.centre[0], p.centre[2]]) - camera_xz)) >= PROP_CLEARANCE_M)  # fmt: skip
    return pose, replace(scene, props=clear)


_STAGES = {"office-desk": _office_stage, "head-station": _head_stage, "booth-walk": _walk_stage,
           "flexion": _flexion_stage}  # fmt: skip


def view_of(points: BodyPoints, camera_position: Sequence[float]) -> View:
    """The view by geometry: the camera's horizontal direction from the mid-hip against the trunk's forward axis
    (front within 25°, back beyond 155°, side 65-115°, oblique between)."""
    mid = 0.5 * (points.blazepose[Lm.LEFT_HIP] + points.blazepose[Lm.RIGHT_HIP]).astype(np.float64)
    to_cam = np.asarray(camera_position, np.float64) - mid
    forward = np.asarray(points.frames["pelvis"], np.float64)[:, 2]
    angle = math.degrees(math.atan2(abs(forward[0] * to_cam[2] - forward[2] * to_cam[0]),
                                    forward[0] * to_cam[0] + forward[2] * to_cam[2]))  # fmt: skip
    if angle < 25:
        return "front"
    if angle > 155:
        return "back"
    if 65 <= angle <= 115:
        return "side"
    return "oblique"


# --- rendering ----------------------------------------------------------------------------------------------------


def _round(values: Any, digits: int) -> Any:
    if isinstance(values, float):
        return round(values, digits) if math.isfinite(values) else None
    if isinstance(values, dict):
        return {k: _round(v, digits) for k, v in values.items()}
    if isinstance(values, list | tuple):
        return [_round(v, digits) for v in values]
    if isinstance(values, np.floating | np.integer):
        return _round(values.item(), digits)
    return values


def frame_record(
    plan: SubjectPlan, i: int, *, mesh: AvatarMesh, points: BodyPoints, frame: Frame, view: View
) -> dict[str, Any]:
    """The truth of frame i of `plan` (JSON-ready)."""
    names, pts = points.all_points()
    tolerance = visibility_tolerance(mesh, points)
    # A joint centre seen along an oblique ray lies deeper under the skin than its nearest vertex (a shoulder seen
    # from above and in front: ~10 cm of deltoid); a far-side joint hides behind 20 cm or more of the body.
    tolerance[JOINT_LANDMARKS] = np.maximum(tolerance[JOINT_LANDMARKS], JOINT_TOLERANCE_M)
    projected = frame.project(pts, tolerance_m=np.clip(tolerance, 0.0, 9.0))
    kp = projected[:NUM_LANDMARKS].astype(np.float64)
    # Metrics as a perfect pose model would make the device report them: BlazePose reports every landmark inside
    # the image, hidden or not (the keypoints' own flag says which are seen).
    metrics = frame_truth(points, frame.camera)
    # Occluded: a landmark inside the image, hidden, with something other than the person in front of it.
    h, w = frame.silhouette.shape
    col = np.clip(np.rint(kp[:, 0]).astype(np.int64), 0, w - 1)
    row = np.clip(np.rint(kp[:, 1]).astype(np.int64), 0, h - 1)
    inside = (kp[:, 0] >= 0) & (kp[:, 0] < w) & (kp[:, 1] >= 0) & (kp[:, 1] < h)
    hidden_by_scene = inside & (kp[:, 2] == 0) & (frame.silhouette[row, col] == 0)
    record: dict[str, Any] = {
        "subject": plan.subject_id,
        "scene": plan.kind,
        "role": ROLE_OF_SCENE[plan.kind],
        "keypoints": _round(kp.tolist(), 2),
        "anatomical_px": {n: _round(projected[j].tolist(), 2) for j, n in enumerate(names) if j >= NUM_LANDMARKS},
    }
    for name in ROLE_METRICS[plan.kind]:
        record[name] = None  # present whatever the view; frame_truth fills what it can
    record.update(_round(metrics, 5))
    record.update(
        sex=plan.phenotype.sex,
        age_years=round(plan.phenotype.age_years, 2),
        phenotype=_round(plan.phenotype.as_dict(), 4),
        view=view,
        occluded=bool(hidden_by_scene.any()),
        occluded_landmarks=[int(j) for j in np.flatnonzero(hidden_by_scene)],
        label=plan.label,
        t=round(plan.times[i], 4),
        asked=_round(
            plan.asked[i]
            | dict(zip(ASKED_HEAD, head_orientation(Posture(**_posture_fields(plan.asked[i]))), strict=True)),
            5,
        ),
    )
    if plan.kind == "booth-walk":
        record.update(cobb_deg=round(float(plan.extra["cobb_deg"]), 3), direction=_direction(plan))
    if plan.kind == "flexion":
        params: FlexionParams = plan.extra["flexion"]
        record.update(trial=int(plan.extra["trial"]), flexion=_round(vars(params).copy(), 4))
    return record


def _direction(plan: SubjectPlan) -> str:
    """Where the walk goes relative to the camera, as planned (the per-frame view follows the geometry)."""
    if plan.view == "side":
        return "across"
    return "away" if plan.extra["heading_deg"] == 180.0 else "towards"


class SceneRenderer:
    """Renders subjects of any scene kind at one image size; keeps one AvatarRenderer (one GL context per process).
    `imaging`: None samples each subject's camera degradations; CLEAN-like settings fix them."""

    def __init__(self, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1], *,
                 imaging: Imaging | None = None) -> None:  # fmt: skip
        self.width, self.height = int(width), int(height)
        self.renderer = AvatarRenderer(self.width, self.height)
        self.imaging = imaging

    def render(self, plans: Sequence[SubjectPlan], *, clip: bool = False) -> list[Clip]:
        """Each plan's frames, its bodies built in one batched call for all the plans."""
        requests = [r for p in plans for r in p.requests]
        bodies = build_bodies(requests)
        out: list[Clip] = []
        start = 0
        for plan in plans:
            mine = bodies[start : start + len(plan.requests)]
            start += len(plan.requests)
            out.append(self._render_subject(plan, mine, clip=clip))
        return out

    def _render_subject(self, plan: SubjectPlan, bodies: list[tuple[AvatarMesh, BodyPoints]], *, clip: bool) -> Clip:
        rng = plan.rng(1)
        pose, scene = _STAGES[plan.kind](plan, bodies[0][1], rng)
        look: Appearance = sample_appearance(rng)
        imaging = self.imaging if self.imaging is not None else sample_imaging(rng)
        quality = None if clip else imaging.jpeg_quality
        imaging = replace(imaging, jpeg_quality=None)  # the image is encoded once, when written
        camera = pose.camera(self.width, self.height)
        frames = []
        for i, (mesh, points) in enumerate(bodies):
            frame = self.renderer.render(mesh, scene, camera, look)
            view = plan.view if plan.kind != "booth-walk" else view_of(points, pose.position)
            truth = frame_record(plan, i, mesh=mesh, points=points, frame=frame, view=view)
            rgb = apply_imaging(frame.rgb, imaging, plan.rng(2, i))
            jpeg = None
            if quality is not None:  # encoded once, as the camera would; rgb is what a reader of it sees
                ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
                if not ok:
                    raise RuntimeError(f"avatar frame {plan.subject_id}/{i}: OpenCV could not encode the JPEG")
                jpeg = data.tobytes()
                decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
                if decoded is None:
                    raise RuntimeError(f"avatar frame {plan.subject_id}/{i}: OpenCV could not decode its own JPEG")
                rgb = np.ascontiguousarray(decoded[..., ::-1])
            frames.append(
                AvatarFrame(plan.subject_id, i, plan.times[i], rgb, frame.silhouette, frame.depth, truth, jpeg, points)
            )
        clip_truth: dict[str, Any] = {}
        if plan.kind == "booth-walk" and clip:
            clip_truth = self._walk_truth(plan, bodies, camera, frames)
        return Clip(plan.subject_id, plan.kind, CLIP_FPS[plan.kind], frames, pose, clip_truth)

    @staticmethod
    def _walk_truth(plan: SubjectPlan, bodies: list[tuple[AvatarMesh, BodyPoints]], camera: Any,
                    frames: list[AvatarFrame]) -> dict[str, Any]:  # fmt: skip
        """The walk's gait measures; they replace the per-frame values of the shared names on every frame."""
        first, last = frames[0].truth["keypoints"], frames[-1].truth["keypoints"]
        dx = (last[Lm.LEFT_HIP][0] + last[Lm.RIGHT_HIP][0]) - (first[Lm.LEFT_HIP][0] + first[Lm.RIGHT_HIP][0])
        walk = gait_truth([(t, p) for t, (_, p) in zip(plan.times, bodies, strict=True)], camera,
                          direction=1 if dx >= 0 else -1)  # fmt: skip
        walk = _round(walk, 5)
        for f in frames:
            for name in GAIT_MEASURES:
                if name in f.truth and name in walk:
                    f.truth[f"{name}_frame"] = f.truth[name]
            f.truth.update(walk)
        return dict(walk)


# --- sets ---------------------------------------------------------------------------------------------------------


def iter_clips(
    kind: str, n: int, seed: int, *, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1],
    n_frames: int | None = None, renderer: SceneRenderer | None = None, first: int = 0,
) -> Iterator[Clip]:  # fmt: skip
    """`n` subjects' clips (subjects first .. first + n - 1), one at a time."""
    check_kind(kind)
    if n < 1:
        raise ValueError(f"avatar scene {kind}: the number of clips must be >= 1, got {n}")
    r = renderer or SceneRenderer(width, height)
    for index in range(first, first + n):
        yield from r.render([plan_subject(kind, seed, index, clip=True, n_frames=n_frames)], clip=True)


def image_batches(kind: str, n: int, seed: int, *, batch_bodies: int = 8) -> list[list[tuple[int, int]]]:
    """The subjects of an `n`-image set, in the batches whose bodies are built together: per batch a list of
    (subject index, images of it), IMAGES_PER_SUBJECT per subject (the last may give fewer), at least
    `batch_bodies` bodies a batch. The batches fix the float rounding of the bodies, so any process that renders a
    batch gives the same images."""
    check_kind(kind)
    if n < 1:
        raise ValueError(f"avatar scene {kind}: the number of images must be >= 1, got {n}")
    del seed  # the batches depend on the set's size only; the argument keeps call sites uniform
    k = IMAGES_PER_SUBJECT[kind]
    batches: list[list[tuple[int, int]]] = []
    left, index = n, 0
    while left > 0:
        group: list[tuple[int, int]] = []
        while left > 0 and sum(c for _, c in group) < batch_bodies:
            count = min(k, left)
            group.append((index, count))
            left -= count
            index += 1
        batches.append(group)
    return batches


def _still_plan(kind: str, seed: int, index: int, count: int) -> SubjectPlan:
    if kind != "booth-walk":
        return plan_subject(kind, seed, index, n_frames=count)
    plan = plan_subject(kind, seed, index)  # a walk's stills are spread over the whole walk: keep the first ones
    return replace(plan, requests=plan.requests[:count], times=plan.times[:count], asked=plan.asked[:count])


def render_batch(renderer: SceneRenderer, kind: str, seed: int, batch: Sequence[tuple[int, int]]) -> list[Clip]:
    """The stills of one batch from `image_batches`, rendered by `renderer`."""
    return renderer.render([_still_plan(kind, seed, index, count) for index, count in batch])


def iter_images(
    kind: str, n: int, seed: int, *, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1],
    renderer: SceneRenderer | None = None, batch_bodies: int = 8,
) -> Iterator[AvatarFrame]:  # fmt: skip
    """`n` still images, IMAGES_PER_SUBJECT per subject (the last subject may give fewer), bodies of several
    subjects built together (`batch_bodies` at least per call). workers.iter_encoded renders the same on several
    processes."""
    batches = image_batches(kind, n, seed, batch_bodies=batch_bodies)
    r = renderer or SceneRenderer(width, height)
    for batch in batches:
        for clip in render_batch(r, kind, seed, batch):
            yield from clip.frames
