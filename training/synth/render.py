"""Renderers: pose-estimator-like 2D keypoints, binary silhouettes (Scoliosis1K style), shaded images and
X-ray-like lateral cervical images. Drawing uses OpenCV's integer rasteriser (LINE_8), which is deterministic."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from contract.landmarks import NUM_LANDMARKS, Landmark
from training.synth.body import CAPSULES, J, Skeleton
from training.synth.camera import Camera

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

SILHOUETTE_SIZE = 64
FACE = tuple(range(int(Landmark.NOSE), int(Landmark.MOUTH_RIGHT) + 1))


# --- 2D keypoints --------------------------------------------------------------------------------------------


def estimator_keypoints(
    joints: F64,
    camera: Camera,
    rng: np.random.Generator,
    *,
    noise: float = 0.008,
    jitter_corr: float = 0.7,
    dropout: float = 0.02,
) -> F32:
    """Project (T, NUM_JOINTS, 3) or (NUM_JOINTS, 3) world joints to the 33 BlazePose keypoints the way a real
    pose estimator reports them: (…, 33, 3) = x, y pixels and visibility 0..1.

    Noise: Gaussian with sd `noise` x person height in pixels (half for face points), temporally correlated
    (AR(1) with coefficient `jitter_corr`) across frames; far-side limbs in a side view get lower visibility and
    twice the noise; with probability `dropout` a keypoint is lost (visibility < 0.2, position off by up to
    10 % of the height); points outside the image get visibility 0."""
    seq = joints[None] if joints.ndim == 2 else joints
    pts = seq[:, :NUM_LANDMARKS]
    uv, depth = camera.project(pts)
    n_t = uv.shape[0]
    body_h = np.maximum(uv[..., 1].max(axis=1) - uv[..., 1].min(axis=1), 10.0)[:, None]
    centre_depth = camera.to_camera(seq[:, J["pelvis"]])[:, 2][:, None]
    far = np.clip((depth - centre_depth - 0.04) / 0.15, 0.0, 1.0)  # 0 near side .. 1 clearly behind the body
    sd = noise * body_h * (1.0 + far)
    sd[:, list(FACE)] *= 0.5
    white = rng.standard_normal((n_t, NUM_LANDMARKS, 2))
    err = np.empty_like(white)
    err[0] = white[0]
    scale = np.sqrt(1.0 - jitter_corr**2)
    for t in range(1, n_t):
        err[t] = jitter_corr * err[t - 1] + scale * white[t]
    uv = uv + err * sd[..., None]
    vis = np.clip(0.97 - 0.45 * far + rng.normal(0, 0.03, far.shape), 0.0, 1.0)
    lost = rng.random(far.shape) < dropout
    uv = uv + lost[..., None] * rng.uniform(-0.1, 0.1, uv.shape) * body_h[..., None]
    vis = np.where(lost, rng.uniform(0.0, 0.2, vis.shape), vis)
    outside = (uv[..., 0] < 0) | (uv[..., 0] >= camera.width) | (uv[..., 1] < 0) | (uv[..., 1] >= camera.height)
    vis = np.where(outside | (depth <= 0), 0.0, vis)
    out = np.concatenate([uv, vis[..., None]], axis=-1).astype(np.float32)
    return out[0] if joints.ndim == 2 else out


# --- silhouettes ---------------------------------------------------------------------------------------------


def _capsule_2d(skel: Skeleton, camera: Camera) -> list[tuple[str, F64, F64, float, float]]:
    """Projected capsules (part, uv a, uv b, radius px, mean depth), plus the head."""
    uv, depth = camera.project(skel.joints)
    parts = []
    for part, a, b, rkey in CAPSULES:
        ia, ib = J[a], J[b]
        d = 0.5 * (depth[ia] + depth[ib])
        if d <= 0.05:
            continue
        radius = float(skel.radii[rkey] * camera.focal_for_depth(d))
        parts.append((part, uv[ia], uv[ib], radius, float(d)))
    ih = J["head"]
    if depth[ih] > 0.05:
        r = float(skel.radii["head"] * camera.focal_for_depth(depth[ih]))
        parts.append(("head", uv[ih], uv[ih] + np.array([0.0, -0.15 * r]), r, float(depth[ih])))
    return parts


def _pt(p: F64, shift: int) -> tuple[int, int]:
    return round(float(p[0]) * (1 << shift)), round(float(p[1]) * (1 << shift))


def _draw_capsule(img: npt.NDArray[Any], a: F64, b: F64, radius: float, color: float | tuple[float, ...]) -> None:
    shift = 2
    thickness = max(1, round(2 * radius))
    pa, pb = _pt(a, shift), _pt(b, shift)
    if pa == pb:
        cv2.circle(img, pa, max(1, round(radius)) << shift, color, -1, cv2.LINE_8, shift)
    else:  # OpenCV's thick lines already have round caps
        cv2.line(img, pa, pb, color, thickness, cv2.LINE_8, shift)


def render_mask(skel: Skeleton, camera: Camera) -> U8:
    """Binary person mask (H, W) uint8 0/255 at the camera's resolution."""
    mask = np.zeros((camera.height, camera.width), np.uint8)
    for _, a, b, r, _ in _capsule_2d(skel, camera):
        _draw_capsule(mask, a, b, r, 255)
    uv, depth = camera.project(skel.joints)
    quad = [J["left_shoulder"], J["right_shoulder"], J["right_hip"], J["left_hip"]]
    if (depth[quad] > 0.05).all():
        cv2.fillPoly(mask, [np.round(uv[quad] * 4).astype(np.int32)], 255, cv2.LINE_8, 2)
    return mask


def normalise_silhouette(mask: U8, size: int = SILHOUETTE_SIZE) -> U8 | None:
    """Scoliosis1K / OpenGait pretreatment: crop to the rows holding the person, resize to `size` rows keeping
    the aspect ratio, centre horizontally on the column where half the mass lies, cut to `size` x `size`.
    Returns None for an empty mask (the frame is dropped, as OpenGait does)."""
    rows = np.flatnonzero(mask.sum(axis=1))
    if rows.size == 0:
        return None
    img = mask[rows[0] : rows[-1] + 1]
    width = max(1, round(img.shape[1] * size / img.shape[0]))
    img = np.asarray(cv2.resize(img, (width, size), interpolation=cv2.INTER_CUBIC), np.uint8)
    csum = img.sum(axis=0, dtype=np.int64).cumsum()
    if csum[-1] == 0:
        return None
    x_centre = int(np.searchsorted(csum, csum[-1] / 2))
    half = size // 2
    padded = np.pad(img, ((0, 0), (half, half)))
    x_centre += half
    out = padded[:, x_centre - half : x_centre + half]
    return np.ascontiguousarray(np.where(out > 127, 255, 0).astype(np.uint8))


# --- shaded images -------------------------------------------------------------------------------------------


SKIN_TONES = ((224, 189, 160), (198, 152, 118), (160, 114, 82), (110, 74, 50), (236, 204, 180))
PART_MATERIAL = {
    "head": "skin",
    "neck": "skin",
    "left_hand": "skin",
    "right_hand": "skin",
    "left_forearm": "sleeve",
    "right_forearm": "sleeve",
    "left_upper_arm": "shirt",
    "right_upper_arm": "shirt",
    "torso_high": "shirt",
    "torso_mid": "shirt",
    "torso_low": "trousers",
    "left_thigh": "trousers",
    "right_thigh": "trousers",
    "left_shank": "trousers",
    "right_shank": "trousers",
    "left_foot": "shoes",
    "right_foot": "shoes",
}


def random_background(rng: np.random.Generator, height: int, width: int) -> U8:
    """An indoor-like background: a wall gradient, a floor band, a few furniture blocks and sensor noise (RGB)."""
    wall = rng.uniform(90, 230, 3)
    floor = rng.uniform(40, 160, 3)
    horizon = int(rng.uniform(0.55, 0.85) * height)
    ramp = np.linspace(0.85, 1.1, height)[:, None, None]
    img = np.empty((height, width, 3), np.float64)
    img[:] = wall * ramp
    img[horizon:] = floor
    for _ in range(int(rng.integers(1, 5))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 10, width // 2)), int(rng.integers(height // 10, height // 2))
        img[y0 : y0 + h, x0 : x0 + w] = rng.uniform(30, 240, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_person_image(
    skel: Skeleton,
    camera: Camera,
    rng: np.random.Generator,
    *,
    background: U8 | None = None,
    face_features: bool = True,
) -> U8:
    """A shaded RGB image (H, W, 3) uint8: random clothing and skin colours, a directional light giving each
    limb a lit and a shaded side, hair, simple face features, blur and sensor noise."""
    img = background.copy() if background is not None else random_background(rng, camera.height, camera.width)
    colours = {
        "skin": np.array(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], np.float64),
        "shirt": rng.uniform(20, 235, 3),
        "trousers": rng.uniform(15, 160, 3),
        "shoes": rng.uniform(10, 90, 3),
        "hair": rng.uniform(10, 120, 1).repeat(3) * np.array([1.0, 0.8, 0.6]),
    }
    colours["sleeve"] = colours["skin"] if rng.random() < 0.3 else colours["shirt"]
    light = rng.normal(0, 1, 2)
    light /= np.linalg.norm(light) + 1e-9
    gain = float(rng.uniform(0.65, 1.2))
    tint = rng.uniform(0.9, 1.1, 3)
    parts = sorted(_capsule_2d(skel, camera), key=lambda item: -item[4])  # far first (painter's order)
    uv, depth = camera.project(skel.joints)
    facing = bool(depth[Landmark.NOSE] < depth[J["head"]])  # the face is turned towards the camera
    hair = tuple(float(c) for c in np.clip(colours["hair"] * gain, 0, 255))
    for part, a, b, r, _ in parts:
        base = colours[PART_MATERIAL[part]] * gain * tint
        hair_at = uv[J["head"]] - (uv[Landmark.NOSE] - uv[J["head"]]) * 0.35 + np.array([0.0, -0.3 * r])
        if part == "head" and facing:  # hair behind the face: a rim above and around it
            _draw_capsule(img, hair_at, hair_at, r * 1.0, hair)
        _draw_capsule(img, a, b, r, tuple(float(c) for c in np.clip(base * 0.7, 0, 255)))
        offset = light * r * 0.35
        _draw_capsule(img, a + offset, b + offset, r * 0.55, tuple(float(c) for c in np.clip(base * 1.05, 0, 255)))
        if part == "head":
            if not facing:
                _draw_capsule(img, hair_at, hair_at, r * 0.8, hair)
            if face_features and facing:
                for landmark in (Landmark.LEFT_EYE, Landmark.RIGHT_EYE):
                    _draw_capsule(img, uv[landmark], uv[landmark], max(1.0, r * 0.1), (30.0, 25.0, 20.0))
                mouth = (uv[Landmark.MOUTH_LEFT], uv[Landmark.MOUTH_RIGHT])
                _draw_capsule(img, mouth[0], mouth[1], max(0.6, r * 0.05), (120.0, 50.0, 50.0))
                nose = uv[Landmark.NOSE]
                _draw_capsule(img, nose, nose, max(1.0, r * 0.08), tuple(float(c) for c in base * 0.8))
        if part == "torso_mid":
            quad = [J["left_shoulder"], J["right_shoulder"], J["right_hip"], J["left_hip"]]
            if (depth[quad] > 0.05).all():
                shirt = tuple(float(c) for c in np.clip(colours["shirt"] * gain * tint * 0.85, 0, 255))
                cv2.fillPoly(img, [np.round(uv[quad] * 4).astype(np.int32)], shirt, cv2.LINE_8, 2)
    img = np.asarray(cv2.GaussianBlur(img, (3, 3), 0.7), np.uint8)
    noisy = img.astype(np.float64) + rng.normal(0, float(rng.uniform(1.0, 5.0)), img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


# --- X-ray-like cervical images ------------------------------------------------------------------------------


def render_cervical_xray(curvature: float, rng: np.random.Generator, size: int = 128) -> U8:
    """A lateral cervical radiograph-like image (size, size) uint8, anterior to the right. `curvature` is the
    C2-C7 angle in degrees: > 0 lordosis (convex anteriorly), ~0 straightened, < 0 reversed (kyphotic).

    Seven vertebral bodies and their posterior elements follow a circular arc whose tangent turns by the
    curvature between C7 and C2, with soft tissue, skull base, mandible and shoulder shadows, a random
    position/scale/rotation of the field, exposure, blur and quantum noise."""
    s = size / 128.0
    canvas = np.zeros((size, size), np.float64)
    xx = np.arange(size, dtype=np.float64)[None, :]
    neck_cx = size * rng.uniform(0.42, 0.58)
    canvas += 45 + 35 * np.exp(-(((xx - neck_cx) / (size * 0.28)) ** 2))  # soft tissue of the neck
    canvas += rng.uniform(-10, 10)
    # Skull base and mandible at the top, shoulders at the bottom.
    cv2.ellipse(canvas, (int(neck_cx - 10 * s), int(6 * s)), (int(40 * s), int(18 * s)), 0, 0, 360, 150, -1)
    cv2.ellipse(canvas, (int(neck_cx + 28 * s), int(22 * s)), (int(22 * s), int(9 * s)), 25, 0, 360, 120, -1)
    for sx in (-1, 1):
        cv2.ellipse(canvas, (int(neck_cx + sx * 55 * s), int(size)), (int(35 * s), int(20 * s)), 0, 0, 360, 130, -1)
    # Vertebral column: arc from C7 (bottom) to C2 (top); tangent angle turns by `curvature`.
    n = 7
    height = size * rng.uniform(0.62, 0.72)
    step = height / n
    theta = np.deg2rad(curvature)
    # Tangent angle from vertical (> 0 leans anterior, to the right). Going up from C7 a lordosis first leans
    # anterior and turns back posterior, so the mid-cervical bodies lie anterior of the C2-C7 line.
    start_angle = theta / 2 + np.deg2rad(rng.normal(0, 4))
    x, y = neck_cx - 4 * s, size * 0.88
    angle = start_angle
    body_w, body_h = 16 * s * rng.uniform(0.9, 1.1), step * 0.72
    intensity = rng.uniform(175, 215)
    for i in range(n):
        angle_mid = angle - theta / (2 * n)
        cx_b, cy_b = x + np.sin(angle_mid) * step / 2, y - np.cos(angle_mid) * step / 2
        deg = float(np.rad2deg(angle_mid))
        h_i = body_h * (1.4 if i == n - 1 else 1.0)  # C2 with the dens is taller
        box = ((float(cx_b), float(cy_b)), (float(body_w), float(h_i)), deg)
        pts = cv2.boxPoints(box)
        cv2.fillPoly(canvas, [np.round(pts * 4).astype(np.int32)], float(intensity), cv2.LINE_8, 2)
        cv2.polylines(canvas, [np.round(pts * 4).astype(np.int32)], True, float(intensity + 25), 1, cv2.LINE_8, 2)
        # Posterior elements: a fainter block behind the body.
        back = (float(cx_b - np.cos(angle_mid) * body_w * 0.95), float(cy_b - np.sin(angle_mid) * body_w * 0.95))
        box2 = (back, (float(body_w * 0.8), float(h_i * 0.6)), deg)
        cv2.fillPoly(canvas, [np.round(cv2.boxPoints(box2) * 4).astype(np.int32)], intensity * 0.7, cv2.LINE_8, 2)
        x, y = x + np.sin(angle_mid) * step, y - np.cos(angle_mid) * step
        angle -= theta / n
    # Field placement, exposure and noise.
    rot = cv2.getRotationMatrix2D(
        (size / 2, size / 2), float(rng.normal(0, 5)), float(rng.uniform(0.9, 1.1))
    ) + np.array([[0, 0, rng.normal(0, 4 * s)], [0, 0, rng.normal(0, 4 * s)]])
    canvas = np.asarray(
        cv2.warpAffine(canvas, rot, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), np.float64
    )
    canvas = np.asarray(cv2.GaussianBlur(canvas, (0, 0), float(rng.uniform(0.6, 1.4))), np.float64)
    gamma = rng.uniform(0.8, 1.25)
    canvas = 255.0 * (np.clip(canvas, 0, 255) / 255.0) ** gamma
    canvas += rng.normal(0, rng.uniform(3, 9), canvas.shape)
    return np.clip(canvas, 0, 255).astype(np.uint8)
