"""The head-shift set from avatars (study 002's recipe): head-and-shoulders images of seated adults facing the
head-pose station's camera, with the head's lateral and sagittal shift over the trunk as regression targets.

Each image is the square the device cuts (edge.roles.headpose.shift_model.crop_box: placed by the two shoulder
keypoints, so the trunk frames it and the head moves inside it), taken from a full 640x480 station frame of the
`head-station` avatar scene. The shoulder keypoints are the truth landmarks with a perception-sized error
(`SHOULDER_JITTER` of the shoulder width, per coordinate), so the framing varies as it does on the device.

Targets follow the generator's rule (training.synth.labels.head_shift_target): the shift the body was posed with
(metres, lateral > 0 towards the subject's left, sagittal > 0 forward) over the subject's head width (here the
tragus-to-tragus distance of the avatar's mesh), plus a rater's reading error of sd labels.HEAD_SHIFT_SD.

Written as an image folder (training.datasets.image_folder): ROOT/images/*.jpg and ROOT/labels.csv with
`subject_id,image,lateral_shift,sagittal_shift` and, beside them, sex, age, age group and the head's yaw, pitch and
roll (degrees) for breakdowns. `edgescreen train --task head-shift --data ROOT` reads it."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from contract.labels import HEAD_SHIFT_TARGETS
from edge.roles.headpose.shift_model import CropBox, crop_box
from training.datasets.avatar_common import BREAKDOWN_COLUMNS, RowWriter, breakdown_cells, rendered_subjects
from training.synth import labels as rules

log = logging.getLogger(__name__)

KIND = "head-station"
IMAGE_SIZE = 128  # the full-width model's input; the small one reads the same files resized to 64
SHOULDER_JITTER = 0.02  # sd of the shoulder keypoint error, in shoulder widths (BlazePose on a clear frame)
JPEG_QUALITY = 95
HEADER = ("subject_id", "image", *HEAD_SHIFT_TARGETS, *BREAKDOWN_COLUMNS, "yaw_deg", "pitch_deg", "roll_deg",
          "head_width_m")  # fmt: skip


def crop_square(rgb: npt.NDArray[np.uint8], box: CropBox, size: int) -> npt.NDArray[np.uint8]:
    """The device's square (edge.roles.headpose.shift_model.model_input before normalisation): edge pixels repeat
    outside the frame, area-resized to size x size."""
    h, w = rgb.shape[:2]
    x1, y1 = box.x0 + box.side, box.y0 + box.side
    inside = rgb[max(box.y0, 0) : min(y1, h), max(box.x0, 0) : min(x1, w)]
    if inside.size == 0:
        raise ValueError(f"crop {box} lies outside the {w}x{h} frame")
    pad = (max(0, -box.y0), max(0, y1 - h), max(0, -box.x0), max(0, x1 - w))
    square = cv2.copyMakeBorder(inside, *pad, cv2.BORDER_REPLICATE) if any(pad) else inside
    interpolation = cv2.INTER_AREA if box.side >= size else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(square, (size, size), interpolation=interpolation), np.uint8)


def head_width_m(points: Any) -> float:
    a = points.anatomical
    return float(np.linalg.norm(np.asarray(a["tragus_l"], np.float64) - np.asarray(a["tragus_r"], np.float64)))


def shift_targets(asked: dict[str, float], head_width: float, rng: np.random.Generator) -> tuple[float, float]:
    """(lateral, sagittal) in head widths with the rater's reading error (labels.head_shift_target's rule)."""
    lateral = asked["head_lateral_shift"] / head_width + float(rng.normal(0, rules.HEAD_SHIFT_SD))
    sagittal = asked["head_sagittal_shift"] / head_width + float(rng.normal(0, rules.HEAD_SHIFT_SD))
    return lateral, sagittal


def jittered_keypoints(keypoints: Any, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    kp = np.asarray(keypoints, np.float64).copy()
    width = float(np.hypot(*(kp[11, :2] - kp[12, :2])))
    kp[11:13, :2] += rng.normal(0.0, SHOULDER_JITTER * width, (2, 2))
    return kp


def write_head_shift_set(
    out: Path, n_images: int, seed: int = 0, *, size: int = IMAGE_SIZE, first_subject: int = 0
) -> dict[str, Any]:
    """Render about `n_images` images (8 per subject) into `out`; returns counts (images, subjects, skipped)."""
    from training.synth.avatar.scenes import IMAGES_PER_SUBJECT

    if n_images < 1:
        raise ValueError(f"head-shift avatar set: the number of images must be >= 1, got {n_images}")
    per_subject = IMAGES_PER_SUBJECT[KIND]
    n_subjects = -(-n_images // per_subject)
    (out / "images").mkdir(parents=True, exist_ok=True)
    started, skipped, written = time.monotonic(), 0, 0
    subjects: set[str] = set()
    with RowWriter(out, HEADER) as rows:
        for clip in rendered_subjects(KIND, seed, n_subjects, first=first_subject):
            for frame in clip.frames:
                if written >= n_images:
                    break
                rng = np.random.default_rng([seed, 5002, int(clip.subject[1:]), frame.frame])
                truth = frame.truth
                box = crop_box(jittered_keypoints(truth["keypoints"], rng), min_visibility=0.5)
                if box is None:  # a shoulder hidden or the subject turned away: the device would not read it
                    skipped += 1
                    continue
                image = crop_square(frame.rgb, box, size)
                name = f"images/{clip.subject}_{frame.frame}.jpg"
                ok = cv2.imwrite(str(out / name), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if not ok:
                    raise OSError(f"cannot write {out / name}")
                width = head_width_m(frame.points)
                lateral, sagittal = shift_targets(truth["asked"], width, rng)
                angles = [truth["asked"][k] for k in ("head_yaw", "head_pitch", "head_roll")]
                rows.write([clip.subject, name, f"{lateral:.5f}", f"{sagittal:.5f}", *breakdown_cells(truth),
                            *(f"{a:.2f}" for a in angles), f"{width:.4f}"])  # fmt: skip
                subjects.add(clip.subject)
                written += 1
            if written and written % 400 < per_subject:
                rate = written / max(time.monotonic() - started, 1e-6)
                log.info("head-shift avatars: %d/%d images (%.1f/s)", written, n_images, rate)
    return {"images": written, "subjects": len(subjects), "skipped": skipped,
            "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
