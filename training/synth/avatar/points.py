"""Truth points on the anny mesh: the 33 BlazePose landmarks, the anatomical points, and per-vertex regions.

All bodies share anny's topology, so each point is chosen once, on a reference body in its rest pose, as a mesh
vertex, a blend of vertices (anny's COCO-WholeBody regressor) or a joint (a bone head); it then follows every
body and pose. Where each comes from:

- BlazePose points that COCO-WholeBody has (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles,
  heels) come from `anny.KeypointsRegressor.coco`; `foot_index` blends its big toe (0.7) and small toe (0.3).
- Eye inner/outer corners: the medial / lateral end of the eye opening (the rim of anny's `eye_cavity` faces).
  Mouth corners: the lateral ends of the lip opening (the rim of `mouth_cavity`).
- Hand points are joints, as BlazePose defines them: `pinky` and `index` = the first knuckle (MCP) of the little
  and index fingers, `thumb` = the thumb's second knuckle.
- Anatomical points are skin vertices (palpable landmarks) or joint centres: tragus (just in front of the ear's
  concha), C7 (posterior midline at the neck's base, anny's neck01 joint level), acromion (top of the shoulder
  above the glenohumeral joint), ASIS / PSIS (anterior / posterior iliac spines: about 7 % of stature above the hip
  joint; ASIS lateral of the joint, PSIS ~40 % of the hip-joint spacing from the midline), T8 and L5 (posterior
  midline at anny's spine02 joint and at PSIS level), the sternal notch, nasion, chin; joint centres (hip and
  shoulder) are bone heads of anny's rig.

Regions (mesh.Region) split the skin for appearance: eyes and the lips by anny's UV segmentation, a hair cap
above the hairline and over the back of the head, shoes on the feet, a short-sleeved top and long trousers split
at the waist, skin elsewhere.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from contract.landmarks import NUM_LANDMARKS
from contract.landmarks import Landmark as Lm
from training.synth.avatar import anny_model
from training.synth.avatar.mesh import AvatarMesh, BodyPoints, Region

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

REFERENCE_PHENOTYPE = {"gender": 0.5, "age": 0.8, "height": 0.5, "weight": 0.5, "muscle": 0.5, "proportions": 0.5}

# BlazePose landmark <- COCO-WholeBody label from anny's regressor.
_FROM_COCO: dict[Lm, str] = {
    Lm.NOSE: "nose",
    Lm.LEFT_EYE: "left_eye",
    Lm.RIGHT_EYE: "right_eye",
    Lm.LEFT_EAR: "left_ear",
    Lm.RIGHT_EAR: "right_ear",
    Lm.LEFT_SHOULDER: "left_shoulder",
    Lm.RIGHT_SHOULDER: "right_shoulder",
    Lm.LEFT_ELBOW: "left_elbow",
    Lm.RIGHT_ELBOW: "right_elbow",
    Lm.LEFT_WRIST: "left_wrist",
    Lm.RIGHT_WRIST: "right_wrist",
    Lm.LEFT_HIP: "left_hip",
    Lm.RIGHT_HIP: "right_hip",
    Lm.LEFT_KNEE: "left_knee",
    Lm.RIGHT_KNEE: "right_knee",
    Lm.LEFT_ANKLE: "left_ankle",
    Lm.RIGHT_ANKLE: "right_ankle",
    Lm.LEFT_HEEL: "left_heel",
    Lm.RIGHT_HEEL: "right_heel",
}
# BlazePose hand landmarks <- bone heads (knuckle joints).
_FROM_BONE: dict[Lm, str] = {
    Lm.LEFT_PINKY: "finger5-1.L",
    Lm.RIGHT_PINKY: "finger5-1.R",
    Lm.LEFT_INDEX: "finger2-1.L",
    Lm.RIGHT_INDEX: "finger2-1.R",
    Lm.LEFT_THUMB: "finger1-2.L",
    Lm.RIGHT_THUMB: "finger1-2.R",
}
_JOINTS: dict[str, str] = {
    "hip_joint_l": "upperleg01.L",
    "hip_joint_r": "upperleg01.R",
    "shoulder_joint_l": "upperarm01.L",
    "shoulder_joint_r": "upperarm01.R",
}
FOOT_INDEX_BIG_TOE = 0.7


@dataclass(frozen=True)
class PointSpec:
    """Where every truth point comes from, for all bodies (anny's topology)."""

    coco_rows: dict[int, int]  # BlazePose index -> row of the COCO regressor output
    foot_index: tuple[tuple[int, int, int], ...]  # (BlazePose index, big toe row, small toe row)
    vertex_landmarks: dict[int, int]  # BlazePose index -> vertex (eye corners, mouth corners)
    bone_landmarks: dict[int, int]  # BlazePose index -> bone (hand knuckles)
    anatomical_vertices: dict[str, int]  # anatomical point -> vertex
    anatomical_bones: dict[str, int]  # anatomical point -> bone (joint centres)
    regions: npt.NDArray[np.uint8]  # (V,) Region per vertex
    uv: npt.NDArray[np.float32]  # (V, 2) one UV per vertex (seams take one side's coordinates)
    iris_uv: npt.NDArray[np.float32]  # (2, 3) each eyeball's front in uv: centre u, v and radius

    def control_vertices(self) -> tuple[list[str], I64]:
        """The anatomical vertices the pose solver tracks (names, vertex ids)."""
        names = list(self.anatomical_vertices)
        return names, np.array([self.anatomical_vertices[n] for n in names], np.int64)


def _nearest(world: F64, candidates: I64, target: F64) -> int:
    d = np.linalg.norm(world[candidates] - target, axis=1)
    return int(candidates[int(np.argmin(d))])


def _extreme(world: F64, mask: npt.NDArray[np.bool_], axis: int, largest: bool, what: str) -> int:
    ids = np.flatnonzero(mask)
    if ids.size == 0:
        raise RuntimeError(f"avatar points: no mesh vertex found for {what}; is this anny's default topology?")
    values = world[ids, axis]
    return int(ids[int(np.argmax(values) if largest else np.argmin(values))])


@functools.cache
def point_spec() -> PointSpec:
    """Choose every point once on the reference body (rest pose, world axes: x left, y up, z forward)."""
    am = anny_model.get_model()
    rest = anny_model.rest_bodies([REFERENCE_PHENOTYPE])
    identity = np.tile(np.eye(3), (1, am.n_bones, 1, 1))
    transforms, poses = anny_model.bone_transforms(rest, identity)
    posed = anny_model.skin(rest, transforms)
    w = anny_model.to_world(posed[0].double().numpy())
    labels = anny_model.coco_labels()
    coco = anny_model.to_world(anny_model.regress_coco(posed)[0])
    k = {label: coco[i] for i, label in enumerate(labels)}
    bones = {name: anny_model.to_world(poses[0, i, :3, 3].double().numpy()) for name, i in am.bone_index.items()}
    faces = am.faces

    def face_vertices(parts: list[str]) -> I64:
        return np.unique(faces[anny_model.face_parts(parts)])

    head_v = face_vertices(["head"])
    stature = float(w[:, 1].max() - w[:, 1].min())
    s = stature / 1.75  # offsets below are for a 1.75 m body
    head_mask = np.zeros(len(w), bool)
    head_mask[head_v] = True
    x, y, z = w[:, 0], w[:, 1], w[:, 2]

    # Face: eye and mouth openings are the rims of anny's cavity parts (shared with the head's skin).
    vertex_landmarks: dict[int, int] = {}
    eye_rim = np.intersect1d(face_vertices(["eye_cavity.L", "eye_cavity.R"]), head_v)
    mouth_rim = np.intersect1d(face_vertices(["mouth_cavity"]), head_v)
    for side, inner, outer, mouth in (
        (1.0, Lm.LEFT_EYE_INNER, Lm.LEFT_EYE_OUTER, Lm.MOUTH_LEFT),
        (-1.0, Lm.RIGHT_EYE_INNER, Lm.RIGHT_EYE_OUTER, Lm.MOUTH_RIGHT),
    ):
        rim = eye_rim[side * x[eye_rim] > 0]
        vertex_landmarks[int(inner)] = int(rim[np.argmin(side * x[rim])])
        vertex_landmarks[int(outer)] = int(rim[np.argmax(side * x[rim])])
        vertex_landmarks[int(mouth)] = int(mouth_rim[np.argmax(side * x[mouth_rim])])

    # Anatomical skin points.
    anat: dict[str, int] = {}
    midline = np.abs(x) < 0.008 * s
    neck = bones["neck01"]
    anat["c7"] = _extreme(w, midline & (np.abs(y - neck[1]) < 0.012 * s) & (z < neck[2]), 2, False, "C7")
    spine02 = bones["spine02"]
    anat["t8"] = _extreme(w, midline & (np.abs(y - spine02[1]) < 0.012 * s) & (z < spine02[2]), 2, False, "T8")
    clav = 0.5 * (bones["clavicle.L"] + bones["clavicle.R"])
    anat["sternum_notch"] = _extreme(
        w, midline & (np.abs(y - clav[1]) < 0.012 * s) & (z > clav[2]), 2, True, "the sternal notch"
    )
    eye_y = 0.5 * (k["left_eye"][1] + k["right_eye"][1])
    anat["nasion"] = _extreme(w, midline & head_mask & (np.abs(y - eye_y) < 0.006 * s), 2, True, "the nasion")
    mouth_y = float(np.mean(y[mouth_rim]))
    mouth_z = float(np.max(z[mouth_rim]))
    anat["chin"] = _extreme(w, midline & head_mask & (z > mouth_z - 0.03 * s) & (y < mouth_y), 1, False, "the chin")
    hip_y = 0.5 * (k["left_hip"][1] + k["right_hip"][1])
    crest_y = hip_y + 0.07 * s
    for tag, side in (("l", 1.0), ("r", -1.0)):
        ear = k[f"{'left' if side > 0 else 'right'}_ear"]
        lateral = side * x > 0.045 * s
        target = ear + np.array([-side * 0.004, -0.003, 0.013]) * s
        anat[f"tragus_{tag}"] = _nearest(w, np.flatnonzero(lateral & head_mask), target)
        joint = bones[f"upperarm01.{'L' if side > 0 else 'R'}"]
        column = (np.abs(x - (joint[0] - side * 0.012 * s)) < 0.012 * s) & (np.abs(z - joint[2]) < 0.025 * s)
        anat[f"acromion_{tag}"] = _extreme(w, column & (y > joint[1]) & (y < joint[1] + 0.12 * s), 1, True, "acromion")
        hip_x = k[f"{'left' if side > 0 else 'right'}_hip"][0]
        band = np.abs(y - crest_y) < 0.015 * s
        anat[f"asis_{tag}"] = _extreme(w, band & (np.abs(x - 1.15 * hip_x) < 0.02 * s), 2, True, "ASIS")
        anat[f"psis_{tag}"] = _extreme(w, band & (np.abs(x - 0.4 * hip_x) < 0.015 * s), 2, False, "PSIS")
    anat["l5"] = _extreme(w, midline & (np.abs(y - crest_y) < 0.012 * s), 2, False, "L5")

    coco_row = {label: i for i, label in enumerate(labels)}
    bone = am.bone_index
    whole_parts = {
        Region.LIPS: face_vertices(["mouth_cavity", "tongue"]),
        Region.EYES: face_vertices(["eye_front.L", "eye_front.R", "eye_back.L", "eye_back.R"]),
    }
    regions = _regions(
        w, am, bones=bones, keypoints=k, head_mask=head_mask, mouth_rim=mouth_rim, inner_parts=whole_parts, s=s
    )
    return PointSpec(
        coco_rows={int(lm): coco_row[name] for lm, name in _FROM_COCO.items()},
        foot_index=(
            (int(Lm.LEFT_FOOT_INDEX), coco_row["left_big_toe"], coco_row["left_small_toe"]),
            (int(Lm.RIGHT_FOOT_INDEX), coco_row["right_big_toe"], coco_row["right_small_toe"]),
        ),
        vertex_landmarks=vertex_landmarks,
        bone_landmarks={int(lm): bone[name] for lm, name in _FROM_BONE.items()},
        anatomical_vertices=anat,
        anatomical_bones={name: bone[b] for name, b in _JOINTS.items()},
        regions=regions,
        uv=_vertex_uv(len(w), faces),
        iris_uv=_iris_uv(),
    )


def _regions(
    w: F64,
    am: anny_model.AnnyModel,
    *,
    bones: dict[str, F64],
    keypoints: dict[str, F64],
    head_mask: npt.NDArray[np.bool_],
    mouth_rim: I64,
    inner_parts: dict[Region, I64],
    s: float,
) -> npt.NDArray[np.uint8]:
    """Region per vertex on the reference body (world axes); `inner_parts`: vertices of anny's UV parts that
    take a region whole (eyes, mouth cavity)."""
    k = keypoints
    x, y, z = w[:, 0], w[:, 1], w[:, 2]
    names = list(am.bone_index)
    dominant = am.vertex_bone_indices[np.arange(len(w)), am.vertex_bone_weights.argmax(axis=1)]
    bone_of = np.array([names[i] for i in dominant])

    def starts(*prefixes: str) -> npt.NDArray[np.bool_]:
        return np.array([b.startswith(prefixes) for b in bone_of])

    regions = np.full(len(w), Region.SKIN, np.uint8)
    torso = starts("spine", "root", "pelvis", "clavicle", "shoulder01")
    waist_y = bones["spine05"][1] + 0.09 * s
    regions[torso & (y >= waist_y)] = Region.TOP
    regions[torso & (y < waist_y)] = Region.BOTTOM
    neck_base = bones["neck01"][1]
    regions[starts("neck01") & (y < neck_base - 0.01 * s)] = Region.TOP
    regions[starts("upperarm01")] = Region.TOP
    for side in ("L", "R"):
        top, elbow = bones[f"upperarm01.{side}"], bones[f"lowerarm01.{side}"]
        sleeve_end = top + 0.5 * (elbow - top)  # short sleeves end half-way down the upper arm
        axis = (elbow - top) / np.linalg.norm(elbow - top)
        upper = starts(f"upperarm02.{side}") & ((w - top) @ axis < (sleeve_end - top) @ axis)
        regions[upper] = Region.TOP
    regions[starts("upperleg", "lowerleg")] = Region.BOTTOM
    ankle_y = 0.5 * (k["left_ankle"][1] + k["right_ankle"][1])
    regions[starts("foot", "toe") | (starts("lowerleg02") & (y < ankle_y + 0.03 * s))] = Region.SHOES

    # Head: hair cap above the hairline and over the back of the skull; lips around the mouth opening; eyes.
    ear_y = 0.5 * (k["left_ear"][1] + k["right_ear"][1])
    ear_z = 0.5 * (k["left_ear"][2] + k["right_ear"][2])
    eye_y = 0.5 * (k["left_eye"][1] + k["right_eye"][1])
    near_ear = (np.abs(x) > 0.06 * s) & (np.abs(y - ear_y) < 0.035 * s) & (np.abs(z - ear_z) < 0.035 * s)
    hair = head_mask & ~near_ear & ((y > eye_y + 0.05 * s) | ((z < ear_z - 0.015 * s) & (y > ear_y - 0.035 * s)))
    regions[hair] = Region.HAIR
    # Eyebrows, in the hair's colour: a band over each eye on the front of the face.
    eye_x = 0.5 * abs(k["left_eye"][0] - k["right_eye"][0])
    eye_z = 0.5 * (k["left_eye"][2] + k["right_eye"][2])
    brow_y = eye_y + 0.017 * s - 0.012 * s * ((np.abs(x) - eye_x) / eye_x) ** 2  # arched, lower at the ends
    brows = head_mask & (np.abs(y - brow_y) < 0.0035 * s) & (np.abs(np.abs(x) - eye_x) < 0.022 * s)
    regions[brows & (z > eye_z - 0.01 * s)] = Region.HAIR
    corner = float(np.max(np.abs(x[mouth_rim])))
    lip_y, lip_z = float(np.mean(y[mouth_rim])), float(np.max(z[mouth_rim]))
    lips = head_mask & (np.abs(x) < 1.1 * corner) & (np.abs(y - lip_y) < 0.011 * s) & (z > lip_z - 0.012 * s)
    regions[lips] = Region.LIPS
    for region, ids in inner_parts.items():
        regions[ids] = region
    return regions


def _iris_uv() -> npt.NDArray[np.float32]:
    """Centre and radius, in uv, of the front cap of each of anny's eyeballs (left, right)."""
    uv, corner_uv = anny_model.texture_coordinates()
    rows = []
    for part in ("eye_front.L", "eye_front.R"):
        cap = uv[corner_uv[anny_model.face_parts([part])].reshape(-1)]
        lo, hi = cap.min(axis=0), cap.max(axis=0)
        rows.append((*(0.5 * (lo + hi)), 0.25 * float((hi - lo).sum())))
    return np.asarray(rows, np.float32)


def _vertex_uv(n_vertices: int, faces: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
    """One UV per vertex from anny's per-corner UVs (a vertex on a seam takes the last corner's)."""
    uv, corner_uv = anny_model.texture_coordinates()
    out = np.zeros((n_vertices, 2), np.float32)
    out[faces.reshape(-1)] = uv[corner_uv.reshape(-1)]
    return out


def blazepose_points(spec: PointSpec, vertices: F64, coco: F64, bone_heads: F64) -> F64:
    """The 33 BlazePose landmarks (B, 33, 3) from posed vertices (B, V, 3), the COCO regressor output (B, 23, 3)
    and bone heads (B, J, 3), all in the same frame."""
    out = np.zeros((vertices.shape[0], NUM_LANDMARKS, 3))
    for lm, row in spec.coco_rows.items():
        out[:, lm] = coco[:, row]
    for lm, big, small in spec.foot_index:
        out[:, lm] = FOOT_INDEX_BIG_TOE * coco[:, big] + (1 - FOOT_INDEX_BIG_TOE) * coco[:, small]
    for lm, v in spec.vertex_landmarks.items():
        out[:, lm] = vertices[:, v]
    for lm, b in spec.bone_landmarks.items():
        out[:, lm] = bone_heads[:, b]
    return out


def anatomical_points(spec: PointSpec, vertices: F64, bone_heads: F64) -> list[dict[str, F64]]:
    """The anatomical points of each body: skin vertices, joint centres, and the head centre (mid-tragus)."""
    out = []
    for b in range(vertices.shape[0]):
        points = {name: vertices[b, v] for name, v in spec.anatomical_vertices.items()}
        points.update({name: bone_heads[b, j] for name, j in spec.anatomical_bones.items()})
        points["head_center"] = 0.5 * (points["tragus_l"] + points["tragus_r"])
        out.append(points)
    return out


def body_points(spec: PointSpec, vertices: F64, coco: F64, bone_heads: F64) -> list[BodyPoints]:
    """BodyPoints per body (float32), from world-frame vertices, COCO output and bone heads."""
    blaze = blazepose_points(spec, vertices, coco, bone_heads)
    anat = anatomical_points(spec, vertices, bone_heads)
    return [
        BodyPoints(
            blazepose=blaze[b].astype(np.float32),
            anatomical={n: p.astype(np.float32) for n, p in anat[b].items()},
        )
        for b in range(len(anat))
    ]


def visibility_tolerance(mesh: AvatarMesh, points: BodyPoints, margin_m: float = 0.02) -> F64:
    """Per point of `points.all_points()`: how far in front of it the body's own surface may lie with the point
    still counting as visible (Frame.project's tolerance_m) = its depth under the skin (distance to the nearest
    vertex) plus `margin_m`. Skin points get the margin; a hip joint some 0.1 m inside gets about 0.12 m."""
    _, pts = points.all_points()
    v = mesh.vertices.astype(np.float64)
    p = pts.astype(np.float64)
    # The nearest vertex of each point from one matrix product (|v|^2 - 2 v.p, per point), then its exact distance:
    # a loop over the points cost ~25 ms a frame.
    nearest = np.argmin((v * v).sum(axis=1)[:, None] - 2.0 * (v @ p.T), axis=0)
    depth = np.sqrt(((v[nearest] - p) ** 2).sum(axis=1))
    return np.asarray(depth + margin_m)
