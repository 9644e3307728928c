"""Posing anny from the generator's parameters: `Posture` (training/synth/posture.py) and `LimbPose`
(training/synth/body.py), with the same meanings and signs as the capsule body there.

Each body segment gets an orientation in world axes (x the subject's left, y up, z forward), built as in
`training.synth.body.pose_body`: sagittal angles > 0 bend forward, lateral > 0 tilt to the subject's left, axial > 0
turn the front to the subject's left; the head's (yaw, pitch, roll) follow `HeadPose`, relative to the thorax's
heading and level with the world. Orientations are relative to anny's reference pose (all deltas identity: trunk
upright, head level, arms in an A-pose); limbs are aimed at the directions `pose_body` gives them, keeping the twist
their parent carries. One deliberate difference: abduction here moves a limb away from the midline.

Targets that must come out exactly on the mesh (builder.py solves them by secant steps on forward kinematics):
- neck flexion (Posture.neck_flexion, degrees): the device's `neck_flexion_deg` (ear midpoint over shoulder
  midpoint, docs/metrics.md) rises by that much over the same body's neutral neck; the trunk's own flexion and
  kyphosis add to it as on the device. On anny the ear line turns about half as fast as the neck, so 0.35 of it is
  taken by the upper thoracic spine (the neck bones start above C7) and neck angles are capped at 70°;
- shoulder height difference (Posture.shoulder_elevation_asymmetry, metres, left minus right acromion): the
  clavicles elevate / depress until the acromions differ by that much, plus what leaning the trunk sideways does
  (a lean to the left lowers the left shoulder by the shoulder span x sin(lean)); a scoliotic curve's own effect
  on the shoulders is taken to be inside the asked difference (sample_scoliosis draws it with the curve);
- trunk shift (PoseParams.trunk_shift_m, metres, + to the subject's left): C7 stands that far to the side of the
  mid-hip (the C7 plumb line's offset in scoliosis), plus what a sideways lean does (C7's height x sin(lean)); the
  thorax slides over the thoracolumbar junction and stays upright;
- pelvic obliquity (LimbPose.pelvic_obliquity + Posture.pelvic_obliquity, degrees, + left side higher): the line
  of the BlazePose hips (as the gait booth measures it) tilts by that much; the pelvis tilts about the forward axis,
  the legs stay vertical, the lumbar spine takes the trunk back upright. (anny skins the ASIS region partly to the
  lumbar bones, so the ASIS line tilts less: about 0.75 of it.)
The head shift (Posture.head_lateral_shift / head_sagittal_shift, metres) needs no solving: the head bones
translate, so the head moves by exactly that much relative to C7, its orientation unchanged, the upper neck
shearing.

Scoliosis-like asymmetry and its published ranges (adolescent idiopathic scoliosis, AIS): `sample_scoliosis`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from training.synth.body import LimbPose, head_orientation, rot_lat, rot_x, rot_y
from training.synth.posture import Posture

if TYPE_CHECKING:
    from training.synth.avatar.anny_model import AnnyModel

F64 = npt.NDArray[np.float64]
DOWN = np.array([0.0, -1.0, 0.0])
NEUTRAL_KYPHOSIS = 40.0  # Posture's default thoracic kyphosis and lumbar lordosis: anny's rest spine
NEUTRAL_LORDOSIS = 40.0
NECK_THORACIC_SHARE = 0.35  # of neck flexion taken by the upper thoracic spine (anny's neck bones start above C7)
HEAD_SHIFT_BONES = ("neck02", "neck03", "head")  # a head shift is spread over these as translations


class Motion(Protocol):
    """A movement over time (walk cycle, flexion trial): the pose at time t seconds."""

    def pose_at(self, pose: PoseParams, t: float) -> PoseParams: ...


@dataclass(frozen=True)
class PoseParams:
    """Everything that places and poses one body. Angles in degrees, lengths in metres."""

    posture: Posture = field(default_factory=Posture)
    limbs: LimbPose = field(default_factory=LimbPose)
    trunk_shift_m: float = 0.0  # lateral offset of the thorax over the pelvis, + to the subject's left
    heading_deg: float = 0.0  # about the vertical; 0 faces +z, 90 faces +x
    position: tuple[float, float] = (0.0, 0.0)  # floor position (x, z) of the mid-hip
    seated: bool = False  # on a chair: the body side says where the seat and desk go (BodyPoints.seat)
    motion: Motion | None = None  # with build_body(..., t=...): the pose at time t

    def __post_init__(self) -> None:
        values = {f"posture.{k}": v for k, v in self.posture.as_dict().items()}
        values.update(trunk_shift_m=self.trunk_shift_m, heading_deg=self.heading_deg)
        values.update({"position[0]": self.position[0], "position[1]": self.position[1]})
        for name, value in values.items():
            if not math.isfinite(value):
                raise ValueError(f"PoseParams.{name}: must be a finite number, got {value}")
        for name, value, limit in (  # beyond these a body cannot take the pose
            ("posture.head_lateral_shift", self.posture.head_lateral_shift, 0.25),
            ("posture.head_sagittal_shift", self.posture.head_sagittal_shift, 0.25),
            ("trunk_shift_m", self.trunk_shift_m, 0.15),
            ("posture.shoulder_elevation_asymmetry", self.posture.shoulder_elevation_asymmetry, 0.15),
        ):
            if abs(value) > limit:
                raise ValueError(f"PoseParams.{name}: {value} m is beyond ±{limit} m")


def seated(posture: Posture | None = None, **kwargs: object) -> PoseParams:
    """A seated office worker (the generator's SEATED limbs: hips and knees ~90°, forearms towards the desk)."""
    from training.synth.tasks import SEATED

    return PoseParams(posture=posture or Posture(), limbs=SEATED, seated=True, **kwargs)  # type: ignore[arg-type]


# --- scoliosis ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scoliosis:
    """Scoliosis-like trunk asymmetry for one subject (signs: + = the subject's left side higher / shifted left;
    a positive Cobb angle is a right-convex thoracic curve, as Posture.scoliosis_cobb)."""

    cobb_deg: float
    trunk_rotation_deg: float  # axial rotation of the thorax (the rib hump's source), Posture.scoliosis_rotation
    shoulder_height_diff_m: float  # left minus right acromion height
    pelvic_obliquity_deg: float
    trunk_shift_m: float

    def apply(self, pose: PoseParams) -> PoseParams:
        posture = replace(
            pose.posture,
            scoliosis_cobb=self.cobb_deg,
            scoliosis_rotation=self.trunk_rotation_deg,
            shoulder_elevation_asymmetry=self.shoulder_height_diff_m,
            pelvic_obliquity=self.pelvic_obliquity_deg,
        )
        return replace(pose, posture=posture, trunk_shift_m=self.trunk_shift_m)


def sample_scoliosis(rng: np.random.Generator, cobb_deg: float) -> Scoliosis:
    """The visible trunk asymmetry that goes with a (signed) Cobb angle, within published AIS ranges.

    - Trunk rotation: the scoliometer's angle of trunk rotation (ATR) grows with the Cobb angle; Bunnell (1984)
      found ATR 5° about a 20° curve at the screening cut-off and referral at ATR >= 7°, and AIS curves of
      20-40° mostly read 5-15°. Here |ATR| = 0.3 x |Cobb| x N(1, 0.15), capped at 20°, turning the thorax
      towards the concave side's front (a right thoracic curve shows a right rib hump): as
      training.synth.posture.scoliosis.
    - Shoulder height difference: radiographic / clinical shoulder imbalance in AIS is mostly 0-3 cm, > 2-3 cm
      counting as marked (Kuklo et al. 2001); here 0.06 cm per degree of Cobb plus N(0, 0.4 cm), clipped to ±3.5 cm,
      the convex side's shoulder higher.
    - Trunk shift: the C7 plumb line's lateral offset from the sacrum; > 2 cm is coronal imbalance in AIS
      reports; here 0.05 cm per degree towards the convex side plus N(0, 0.5 cm), clipped to ±4 cm.
    - Pelvic obliquity: small in idiopathic curves (a few degrees; larger suggests leg-length difference or a
      neuromuscular cause): N(0, 0.8°) - 0.03 x Cobb, clipped to ±3°.

    References: Bunnell WP. An objective criterion for scoliosis screening. J Bone Joint Surg Am
    1984;66(9):1381-1387. Kuklo TR, Lenke LG, Graham EJ, et al. Correlation of radiographic, clinical, and patient
    assessment of shoulder balance following fusion versus nonfusion of the proximal thoracic curve in adolescent
    idiopathic scoliosis. Spine 2002;27(18):2013-2020. Scoliosis Research Society: scoliosis = Cobb >= 10°.
    """
    cobb = float(cobb_deg)
    convex_right = 1.0 if cobb >= 0 else -1.0
    atr = min(20.0, 0.3 * abs(cobb) * float(rng.normal(1.0, 0.15)))
    shoulder = float(np.clip(-convex_right * 0.0006 * abs(cobb) + rng.normal(0, 0.004), -0.035, 0.035))
    shift = float(np.clip(-convex_right * 0.0005 * abs(cobb) + rng.normal(0, 0.005), -0.04, 0.04))
    obliquity = float(np.clip(rng.normal(0, 0.8) - 0.03 * cobb, -3.0, 3.0))
    return Scoliosis(
        cobb_deg=cobb,
        trunk_rotation_deg=-convex_right * atr,
        shoulder_height_diff_m=shoulder,
        pelvic_obliquity_deg=obliquity,
        trunk_shift_m=shift,
    )


# --- segment orientations -------------------------------------------------------------------------------------


def _cross(a: F64, b: F64) -> F64:
    """Cross product of two 3-vectors (np.cross costs ~20x more for single vectors)."""
    return np.array((a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]))


def _skew(v: F64) -> F64:
    return np.array(((0.0, -v[2], v[1]), (v[2], 0.0, -v[0]), (-v[1], v[0], 0.0)))


def _aim(parent: F64, rest_dir: F64, target: F64) -> F64:
    """The orientation that turns a segment's rest direction (as its parent now carries it) onto `target` by the
    smallest rotation, keeping the parent's twist."""
    a = parent @ rest_dir
    a = a / math.sqrt(a @ a)
    b = target / math.sqrt(target @ target)
    v = _cross(a, b)
    c = float(a @ b)
    s2 = float(v @ v)
    if s2 < 1e-18:
        if c > 0:
            return parent
        axis = _cross(a, np.array((1.0, 0.0, 0.0) if abs(a[0]) < 0.9 else (0.0, 1.0, 0.0)))
        k = _skew(axis / math.sqrt(axis @ axis))
        return (np.eye(3) + 2 * k @ k) @ parent
    k = _skew(v)
    return (np.eye(3) + k + k @ k * ((1 - c) / s2)) @ parent


@dataclass(frozen=True)
class RestGeometry:
    """Directions (world axes) of one body's bones in anny's reference pose, the pose all deltas start from."""

    heads: F64  # (J, 3) bone heads in the reference pose, world axes

    def direction(self, a: int, b: int) -> F64:
        d = self.heads[b] - self.heads[a]
        return np.asarray(d / np.linalg.norm(d))


@dataclass
class Solve:
    """The pose's solved angles (degrees), found by builder.py from the mesh so that the targets come out."""

    neck: float = 0.0  # neck flexion beyond following the thorax (0.35 upper thoracic, 0.65 cervical)
    clavicles: float = 0.0  # the left clavicle's elevation and the right one's depression
    trunk_shift: float = 0.0  # thoracolumbar tilt carrying the trunk shift
    pelvis: float = 0.0  # the pelvis' tilt about the forward axis (+ left side up)


def segment_orientations(am: AnnyModel, rest: RestGeometry, pose: PoseParams, solve: Solve) -> dict[str, F64]:
    """World-axis orientation (relative to rest) of each bone the pose sets; the others follow their parent."""
    p, lp = pose.posture, pose.limbs
    g: dict[str, F64] = {}
    b = am.bone_index

    # Pelvis: gait rotation, obliquity (solved: + left side up), forward tilt.
    tf = p.trunk_flexion
    d_kyph = p.thoracic_kyphosis - NEUTRAL_KYPHOSIS
    d_lord = p.lumbar_lordosis - NEUTRAL_LORDOSIS
    pelvis_tilt = 0.6 * tf + lp.pelvic_tilt + 0.5 * d_lord  # a deeper lordosis goes with a forward-tilted pelvis
    pr = lp.pelvic_rotation
    g["root"] = rot_y(pr) @ rot_lat(-solve.pelvis) @ rot_x(pelvis_tilt)

    # Spine: anny's spine05 carries the pelvis' mesh, so it moves with the root; spine04-03 are the lumbar spine,
    # spine02-01 the thoracic. Cumulative sagittal bends from the pelvis (trunk flexion split 0.6 pelvis, 0.3
    # lumbar, 0.1 thoracic, as the capsule body; a lordosis change bends the lumbar spine, a kyphosis change the
    # thoracic), lateral angles absolute (lean, a thoracic curve for a Cobb angle, the trunk shift), axial
    # rotation growing upwards.
    lumbar = 0.15 * tf + 0.5 * lp.lumbar_flexion - 0.5 * d_lord
    thoracic = lp.thoracic_flexion / 2 + d_kyph / 2 + 0.05 * tf
    curve = 0.6 * p.scoliosis_cobb
    lean = p.lateral_lean
    twist = p.scoliosis_rotation + lp.trunk_counter_rotation
    low = lean - curve / 2
    shift = solve.trunk_shift  # the thorax slides sideways over the thoracolumbar junction
    spine = (  # (bone, sagittal bend added at it, lateral angle, axial angle)
        ("spine04", lumbar, low, pr + 0.25 * twist),
        ("spine03", lumbar, low + shift, pr + 0.5 * twist),
        ("spine02", thoracic, lean + shift, pr + 0.75 * twist),
        ("spine01", thoracic + NECK_THORACIC_SHARE * solve.neck, lean + curve / 2, pr + twist),
    )
    sagittal = pelvis_tilt
    for name, bend, lateral, axial in spine:
        sagittal += bend
        g[name] = rot_y(axial) @ rot_lat(lateral) @ rot_x(sagittal)
    thorax_sagittal, thorax_axial = sagittal, pr + twist
    r_trunk = rot_y(thorax_axial)

    # Neck: follows the thorax, less a compensation for extra kyphosis; its own flexion (solved from
    # Posture.neck_flexion) bends the upper thoracic spine a little and the neck bones most, spread 0.6 / 0.25 /
    # 0.15 over them. The head's orientation is absolute (level head = pitch 0, whatever the trunk does), as the
    # capsule body's `head_orientation`; a head shift translates it (head_shift).
    thorax_sagittal -= NECK_THORACIC_SHARE * solve.neck  # the girdle and arms keep to the trunk proper
    neck_base = thorax_sagittal - 0.3 * d_kyph + NECK_THORACIC_SHARE * solve.neck
    cumulative = 0.0
    for name, share in (("neck01", 0.6), ("neck02", 0.25), ("neck03", 0.15)):
        cumulative += share
        sag = neck_base + cumulative * (1 - NECK_THORACIC_SHARE) * solve.neck
        g[name] = r_trunk @ rot_lat(0.5 * lean) @ rot_x(sag)
    yaw, pitch, roll = head_orientation(p)
    g["head"] = r_trunk @ rot_y(yaw) @ rot_x(-pitch) @ rot_lat(roll)

    # Shoulder girdle: rolls with the lean and a little with the curve (not the full thoracic tilt), elevations.
    girdle = r_trunk @ rot_lat(lean + 0.08 * p.scoliosis_cobb) @ rot_x(thorax_sagittal)
    g["clavicle.L"] = girdle @ rot_lat(-solve.clavicles)
    g["clavicle.R"] = girdle @ rot_lat(-solve.clavicles)

    # Arms hang from the girdle in the trunk's heading (not its flexion), as the capsule body.
    for i, (side, sign) in enumerate((("L", 1.0), ("R", -1.0))):
        # abduction moves the arm away from the midline (the capsule body tilts it the other way)
        frame = r_trunk @ rot_x(-lp.shoulder_flexion[i]) @ rot_lat(-sign * lp.shoulder_abduction[i])
        upper = _aim(
            g[f"clavicle.{side}"], rest.direction(b[f"upperarm01.{side}"], b[f"lowerarm01.{side}"]), frame @ DOWN
        )
        g[f"upperarm01.{side}"] = upper
        g[f"upperarm02.{side}"] = upper
        fore_target = frame @ rot_x(-lp.elbow_flexion[i]) @ DOWN
        fore = _aim(upper, rest.direction(b[f"lowerarm01.{side}"], b[f"wrist.{side}"]), fore_target)
        g[f"lowerarm01.{side}"] = fore
        g[f"lowerarm02.{side}"] = fore

    # Legs from the pelvis' heading only (they stay vertical when it tilts), feet flat at the shank's angle.
    r_legs = rot_y(pr)
    for i, (side, sign) in enumerate((("L", 1.0), ("R", -1.0))):
        hip_flex = lp.hip_flexion[i]
        r_thigh = r_legs @ rot_x(-hip_flex) @ rot_lat(-sign * lp.hip_abduction[i])
        thigh = _aim(g["root"], rest.direction(b[f"upperleg01.{side}"], b[f"lowerleg01.{side}"]), r_thigh @ DOWN)
        g[f"upperleg01.{side}"] = thigh
        g[f"upperleg02.{side}"] = thigh
        shank_angle = hip_flex - lp.knee_flexion[i]
        r_shank = r_legs @ rot_x(-shank_angle) @ rot_lat(-sign * lp.hip_abduction[i])
        shank = _aim(thigh, rest.direction(b[f"lowerleg01.{side}"], b[f"foot.{side}"]), r_shank @ DOWN)
        g[f"lowerleg01.{side}"] = shank
        g[f"lowerleg02.{side}"] = shank
        g[f"foot.{side}"] = r_legs @ rot_x(-(shank_angle + lp.ankle_dorsiflexion[i]))
    return g


def head_shift(pose: PoseParams, c7_follow: float = 0.0) -> dict[str, F64]:
    """World displacement (metres) of each bone carrying the head shift: the head moves relative to C7 by
    (lateral, sagittal) along the thorax's left and forward axes, its orientation unchanged, the neck shearing
    over its upper part. `c7_follow` is the fraction of the head's displacement the C7 skin point takes along
    (its skinning weights on these bones), made up for so that the shift relative to C7 is exact."""
    p, lp = pose.posture, pose.limbs
    r_trunk = rot_y(lp.pelvic_rotation + p.scoliosis_rotation + lp.trunk_counter_rotation)
    total = r_trunk @ np.array([p.head_lateral_shift, 0.0, p.head_sagittal_shift]) / (1.0 - c7_follow)
    return {name: total / len(HEAD_SHIFT_BONES) for name in HEAD_SHIFT_BONES}


def c7_follow(am: AnnyModel, c7_vertex: int) -> float:
    """How much of a head shift (spread evenly over HEAD_SHIFT_BONES, cumulative down the chain) C7 takes along."""
    names = list(am.bone_index)
    n = len(HEAD_SHIFT_BONES)
    follow = 0.0
    for k in range(am.vertex_bone_weights.shape[1]):
        name = names[int(am.vertex_bone_indices[c7_vertex, k])]
        if name in HEAD_SHIFT_BONES:
            follow += float(am.vertex_bone_weights[c7_vertex, k]) * (HEAD_SHIFT_BONES.index(name) + 1) / n
    return follow


def local_deltas(am: AnnyModel, orientations: dict[str, F64], shifts: dict[str, F64] | None = None) -> tuple[F64, F64]:
    """anny local-ref deltas for world-axis segment orientations and bone displacements: (J, 3, 3) rotations and
    (J, 3) translations, anny axes. Unset bones follow their parent (identity delta). A displacement moves the
    bone and its descendants in world axes."""
    from training.synth.avatar.anny_model import ANNY_TO_WORLD, world_rotation_to_anny

    n = am.n_bones
    world = np.zeros((n, 3, 3))
    deltas = np.tile(np.eye(3), (n, 1, 1))
    translations = np.zeros((n, 3))
    names = list(am.bone_index)
    shifts = shifts or {}
    for j in range(n):  # parents come before their children in anny's bone order
        parent = am.bone_parents[j]
        parent_world = world[parent] if parent >= 0 else np.eye(3)
        own = orientations.get(names[j])
        world[j] = parent_world if own is None else own
        deltas[j] = parent_world.T @ world[j]
        if names[j] in shifts:
            translations[j] = parent_world.T @ shifts[names[j]]  # local-ref: the parent's posed axes
    return world_rotation_to_anny(deltas), translations @ ANNY_TO_WORLD  # row vectors: A^T v
