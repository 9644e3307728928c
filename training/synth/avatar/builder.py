"""Build posed avatar bodies: mesh, truth points and segment frames, in batches.

`build_bodies` poses many (phenotype, pose) pairs, BATCH per anny call. A phenotype's rest state (its shape and
skeleton) is built once and kept (the last BODY_CACHE_SIZE phenotypes), so the frames of one subject's clip, or
one body seen by several cameras, cost kinematics and one skinning each. A body is placed on the floor (its
lowest vertex at y = 0) at `PoseParams.position`, turned by `heading_deg`; a seated body has its feet on the
floor and says where the seat and desk go (`BodyPoints.seat`).

Before the skinning pass, up to three forward-kinematics passes (cheap: only the tracked points are skinned)
solve the angles that bring the device's neck flexion, the shoulder height difference, the trunk shift and the
pelvic obliquity onto their targets (pose.py): one measures the untouched body, two are secant steps. The head
shift needs no solving: it is a translation of the head bones.

Measured on this project's 2-core x86-64 machine, no GPU, while other jobs ran: 13 ms per body for a head-station
set (16 poses per subject), 16 ms per frame of a walk clip, 28 ms per body when every body is a new phenotype in
a seated office posture; loading the model and choosing the truth points takes about 5 s once per process.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from contract.landmarks import Landmark as Lm
from training.synth.avatar import anny_model
from training.synth.avatar.mesh import AvatarMesh, BodyPoints, Region, SeatedPlacement
from training.synth.avatar.phenotype import Phenotype
from training.synth.avatar.points import PointSpec, body_points, point_spec
from training.synth.avatar.pose import (
    PoseParams,
    RestGeometry,
    Solve,
    c7_follow,
    head_shift,
    local_deltas,
    segment_orientations,
)
from training.synth.body import rot_y

if TYPE_CHECKING:
    import torch

F64 = npt.NDArray[np.float64]
BATCH = 8  # bodies per anny call: larger batches gain little on 2 cores and cost memory
MAX_NECK_DEG = 70.0
MAX_CLAVICLE_DEG = 30.0
MAX_LUMBAR_DEG = 25.0
FRAME_BONES = {"head": "head", "thorax": "spine01", "pelvis": "root"}


@dataclass(frozen=True)
class BodyRequest:
    """One body to build: who, in which pose, at which time of the pose's motion (if any)."""

    phenotype: Phenotype
    pose: PoseParams
    t: float | None = None

    def resolved(self) -> PoseParams:
        if self.pose.motion is None:
            return self.pose
        return self.pose.motion.pose_at(self.pose, 0.0 if self.t is None else self.t)


def build_body(phenotype: Phenotype, pose: PoseParams, *, t: float | None = None) -> tuple[AvatarMesh, BodyPoints]:
    """One posed body and its truth points (t: time in seconds into the pose's motion, if it has one)."""
    return build_bodies([BodyRequest(phenotype, pose, t)])[0]


def build_bodies(requests: Sequence[BodyRequest]) -> list[tuple[AvatarMesh, BodyPoints]]:
    """Many bodies, batched; the result follows the order of `requests`."""
    out: list[tuple[AvatarMesh, BodyPoints]] = []
    for start in range(0, len(requests), BATCH):
        out.extend(_build_batch(list(requests[start : start + BATCH])))
    return out


@dataclass(frozen=True)
class _Body:
    """What stays fixed for one phenotype whatever its pose."""

    rest: anny_model.RestBodies  # batch of one
    reference: torch.Tensor  # (1, J, 4, 4) bone poses with all deltas identity (anny's reference pose)
    geometry: RestGeometry


_BODY_CACHE: OrderedDict[Phenotype, _Body] = OrderedDict()
BODY_CACHE_SIZE = 64  # bodies kept between calls (a few hundred kB each)


def _bodies(phenotypes: list[Phenotype]) -> list[_Body]:
    """The fixed state of each phenotype, built in one call for those not cached yet."""
    missing = [p for p in dict.fromkeys(phenotypes) if p not in _BODY_CACHE]
    if missing:
        am = anny_model.get_model()
        rest = anny_model.rest_bodies([p.anny_kwargs() for p in missing])
        # Deltas compose from anny's reference pose (all deltas identity), a little off the rest mesh's A-pose:
        # bone directions and segment frames are taken against it.
        identity = np.tile(np.eye(3), (len(missing), am.n_bones, 1, 1))
        _, reference = anny_model.bone_transforms(rest, identity)
        heads = anny_model.to_world(reference[:, :, :3, 3].double().numpy())
        for i, p in enumerate(missing):
            one = anny_model.RestBodies(vertices=rest.vertices[i : i + 1], bone_poses=rest.bone_poses[i : i + 1])
            _BODY_CACHE[p] = _Body(one, reference[i : i + 1], RestGeometry(heads[i]))
    out = []
    for p in phenotypes:
        _BODY_CACHE.move_to_end(p)
        out.append(_BODY_CACHE[p])
    while len(_BODY_CACHE) > BODY_CACHE_SIZE:
        _BODY_CACHE.popitem(last=False)
    return out


def _build_batch(requests: list[BodyRequest]) -> list[tuple[AvatarMesh, BodyPoints]]:
    import torch

    am = anny_model.get_model()
    spec = point_spec()
    poses = [r.resolved() for r in requests]
    bodies = _bodies([r.phenotype for r in requests])
    if all(b is bodies[0] for b in bodies):  # one subject's frames: anny broadcasts a batch of one
        rest, reference = bodies[0].rest, bodies[0].reference.expand(len(bodies), -1, -1, -1)
    else:
        with anny_model.single_thread():
            rest = anny_model.RestBodies(
                vertices=torch.cat([b.rest.vertices for b in bodies]),
                bone_poses=torch.cat([b.rest.bone_poses for b in bodies]),
            )
            reference = torch.cat([b.reference for b in bodies])
    geometry = [b.geometry for b in bodies]
    solves = _solve(am, spec, rest, geometry, poses)

    transforms, posed = anny_model.bone_transforms(rest, *_deltas(am, geometry, poses, solves))
    vertices_t = anny_model.skin(rest, transforms)
    coco = anny_model.to_world(anny_model.regress_coco(vertices_t))
    vertices = anny_model.to_world(vertices_t.double().numpy())
    bone_heads = anny_model.to_world(posed[:, :, :3, 3].double().numpy())
    rot_posed = posed[:, :, :3, :3].double().numpy()
    rot_reference = reference[:, :, :3, :3].double().numpy()

    results = []
    for i, pose in enumerate(poses):
        heading = rot_y(pose.heading_deg)
        lift = -float(vertices[i, :, 1].min())
        offset = np.array([pose.position[0], lift, pose.position[1]])
        v = vertices[i] @ heading.T + offset
        c = coco[i] @ heading.T + offset
        h = bone_heads[i] @ heading.T + offset
        frames = {}
        for name, bone in FRAME_BONES.items():
            j = am.bone_index[bone]
            g = anny_model.ANNY_TO_WORLD @ rot_posed[i, j] @ rot_reference[i, j].T @ anny_model.ANNY_TO_WORLD.T
            frames[name] = (heading @ g).astype(np.float32)
        points = body_points(spec, v[None], c[None], h[None])[0]
        seat = _seat(v, points.blazepose.astype(np.float64), spec, pose) if pose.seated else None
        points = BodyPoints(points.blazepose, points.anatomical, frames=frames, seat=seat)
        mesh = AvatarMesh(
            vertices=v.astype(np.float32), faces=am.faces, regions=spec.regions, uv=spec.uv, iris_uv=spec.iris_uv
        )
        results.append((mesh, points))
    return results


# --- the pose solver ------------------------------------------------------------------------------------------
#
# Each solved angle moves one measured quantity and they barely interact, so each is found by secant steps from
# the untouched state (angle 0) through a first guess; two steps bring them within a few hundredths of a degree
# or a tenth of a millimetre of their targets.

_SOLVED = ("neck", "clavicles", "trunk_shift", "pelvis")
SECANT_STEPS = 2
# First guesses, as angle (deg) per unit of target (deg or metre) for a typical adult; the secant corrects them.
_GUESS_PER_UNIT = {"neck": 1.5, "clavicles": 57.3 / 0.30, "trunk_shift": 57.3 / 0.21, "pelvis": 1.15}
_LIMITS = {"neck": MAX_NECK_DEG, "clavicles": MAX_CLAVICLE_DEG, "trunk_shift": MAX_LUMBAR_DEG, "pelvis": 15.0}
_COCO_POINTS = ("left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_hip", "right_hip")
_SKIN_POINTS = ("acromion_l", "acromion_r", "c7")


def _targets(pose: PoseParams) -> dict[str, tuple[float, bool]]:
    """Each solved angle's target as (value, absolute): an absolute target is a value to reach, the others a
    change from the untouched state."""
    p, lp = pose.posture, pose.limbs
    return {
        "neck": (p.neck_flexion, False),  # the device's neck_flexion_deg rises this much over the neutral neck
        # left minus right acromion height, metres, beyond what leaning the trunk does (set in _solve)
        "clavicles": (p.shoulder_elevation_asymmetry, True),
        "trunk_shift": (pose.trunk_shift_m, True),  # C7 over the mid-hip, metres, beyond a lean (set in _solve)
        # the hip line (BlazePose hips, as the gait booth measures it) against the horizontal, degrees
        "pelvis": (lp.pelvic_obliquity + p.pelvic_obliquity, True),
    }


def _deltas(
    am: anny_model.AnnyModel, geometry: list[RestGeometry], poses: list[PoseParams], solves: list[Solve]
) -> tuple[F64, F64]:
    follow = c7_follow(am, point_spec().anatomical_vertices["c7"])
    pairs = [
        local_deltas(am, segment_orientations(am, geometry[i], p, solves[i]), head_shift(p, follow))
        for i, p in enumerate(poses)
    ]
    return np.stack([r for r, _ in pairs]), np.stack([t for _, t in pairs])


def _solve(
    am: anny_model.AnnyModel,
    spec: PointSpec,
    rest: anny_model.RestBodies,
    geometry: list[RestGeometry],
    poses: list[PoseParams],
) -> list[Solve]:
    targets = [_targets(p) for p in poses]
    solves = [Solve() for _ in poses]
    if not any(abs(t[name][0]) > 1e-9 for t in targets for name in _SOLVED):
        return solves
    # The first point is the neutral neck with a level head: the state neck flexion is counted from.
    previous = [replace(s) for s in solves]
    neutral = [replace(p, posture=replace(p.posture, neck_flexion=0.0)) for p in poses]
    f_previous = _measure(am, spec, rest, geometry, poses=neutral, solves=previous)
    goal = {name: np.array([t[name][0] if t[name][1] else f_previous[name][i] + t[name][0]
                            for i, t in enumerate(targets)]) for name in _SOLVED}  # fmt: skip
    # A trunk leaning to the left lowers the left shoulder: that part of the shoulder line comes on top.
    lean = np.radians([p.posture.lateral_lean for p in poses])
    goal["clavicles"] = goal["clavicles"] - f_previous["shoulder_span"] * np.sin(lean)
    goal["trunk_shift"] = goal["trunk_shift"] + f_previous["trunk_height"] * np.sin(lean)  # so does C7
    current = [replace(s) for s in solves]
    for s, t in zip(current, targets, strict=True):
        for name in _SOLVED:
            guess = _GUESS_PER_UNIT[name] * t[name][0]  # a zero target leaves its angle at 0
            setattr(s, name, float(np.clip(guess, -_LIMITS[name], _LIMITS[name])))
    for _ in range(SECANT_STEPS):
        f_current = _measure(am, spec, rest, geometry, poses=poses, solves=current)
        following = [replace(s) for s in current]
        for i, s in enumerate(following):
            for name in _SOLVED:
                x0, x1 = getattr(previous[i], name), getattr(current[i], name)
                f0, f1 = f_previous[name][i], f_current[name][i]
                if abs(f1 - f0) < 1e-12 or abs(x1 - x0) < 1e-12:
                    continue
                x = x1 + (goal[name][i] - f1) * (x1 - x0) / (f1 - f0)
                setattr(s, name, float(np.clip(x, -_LIMITS[name], _LIMITS[name])))
        previous, f_previous, current = current, f_current, following
    return current


def _horizontal_unit(v: F64) -> F64:
    v = v.copy()
    v[:, 1] = 0.0
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True))


def _dot(a: F64, b: F64) -> F64:
    return np.asarray(np.einsum("bi,bi->b", a, b))


def _measure(
    am: anny_model.AnnyModel,
    spec: PointSpec,
    rest: anny_model.RestBodies,
    geometry: list[RestGeometry],
    *,
    poses: list[PoseParams],
    solves: list[Solve],
) -> dict[str, F64]:
    """The quantities the solved angles move, per body, after one kinematics pass (only the points skinned)."""
    transforms, _ = anny_model.bone_transforms(rest, *_deltas(am, geometry, poses, solves))
    support, weights = anny_model.coco_support(_COCO_POINTS)
    skin_ids = np.array([spec.anatomical_vertices[n] for n in _SKIN_POINTS], np.int64)
    pts = anny_model.to_world(anny_model.skin_points(rest, transforms, np.concatenate([skin_ids, support])))
    named = {n: pts[:, i] for i, n in enumerate(_SKIN_POINTS)}
    ear_l, ear_r, sh_l, sh_r, hip_l, hip_r = np.einsum("kv,bvd->kbd", weights, pts[:, len(_SKIN_POINTS) :])
    up = np.array([0.0, 1.0, 0.0])
    left = _horizontal_unit(sh_l - sh_r)  # the device's trunk axes, from the shoulders
    forward = np.cross(left, up)
    neck = 0.5 * (ear_l + ear_r) - 0.5 * (sh_l + sh_r)
    c7 = named["c7"]
    hips = hip_l - hip_r
    return {
        "neck": np.degrees(np.arctan2(_dot(neck, forward), neck @ up)),
        "clavicles": named["acromion_l"][:, 1] - named["acromion_r"][:, 1],
        "shoulder_span": np.linalg.norm(named["acromion_l"] - named["acromion_r"], axis=1),
        "trunk_shift": _dot(c7 - 0.5 * (hip_l + hip_r), _horizontal_unit(hips)),
        "trunk_height": c7[:, 1] - 0.5 * (hip_l + hip_r)[:, 1],
        "pelvis": np.degrees(np.arctan2(hips[:, 1], np.linalg.norm(hips[:, [0, 2]], axis=1))),
    }


def _seat(vertices: F64, blazepose: F64, spec: PointSpec, pose: PoseParams) -> SeatedPlacement:
    """Chair and desk for a seated body: the seat under the buttocks with its front edge short of the knee pits
    and its back just behind the lower back; the desk just under the wrists with its near edge in front of the
    belly."""
    heading = rot_y(pose.heading_deg)
    origin = np.array([pose.position[0], 0.0, pose.position[1]])
    local = (vertices - origin) @ heading  # the body's own frame: mid-hip at x = z = 0, facing +z
    kp = (blazepose - origin) @ heading
    trunk = np.isin(spec.regions, (Region.TOP, Region.BOTTOM)) & (np.abs(local[:, 0]) < 0.15)
    buttocks = local[trunk & (local[:, 2] < 0.15)]
    seat_height = float(buttocks[:, 1].min())
    seat_front = float(kp[[Lm.LEFT_KNEE, Lm.RIGHT_KNEE], 2].mean()) - 0.10
    lower_back = local[trunk & (local[:, 1] > seat_height) & (local[:, 1] < seat_height + 0.6)]
    seat_depth = float(np.clip(seat_front - lower_back[:, 2].min(), 0.30, 0.60))
    belly = float(local[trunk & (spec.regions == Region.TOP), 2].max())
    wrists = kp[[Lm.LEFT_WRIST, Lm.RIGHT_WRIST]]
    return SeatedPlacement(
        seat_height_m=seat_height,
        seat_front_z_m=seat_front + pose.position[1],
        desk_height_m=float(wrists[:, 1].min()) - 0.03,
        desk_near_z_m=float(min(belly + 0.06, wrists[:, 2].mean() - 0.10)) + pose.position[1],
        centre_x_m=pose.position[0],
        seat_depth_m=seat_depth,
        heading_deg=pose.heading_deg,
        centre_z_m=pose.position[1],
    )


def stature_m(phenotype: Phenotype) -> float:
    """The body's standing height in metres (its rest mesh, top of the head to the soles)."""
    rest = anny_model.rest_bodies([phenotype.anny_kwargs()])
    z = rest.vertices[0, :, 2]
    return float(z.max() - z.min())
