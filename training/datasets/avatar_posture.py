"""Posture sets from avatars: seated office workers at a desk (the `office-desk` scene), labelled with the
cervicogenic-headache risk rule (training.synth.labels.ch_label, 10 % of labels flipped), in two formats:

- keypoints (`ROOT/keypoints/`, for the keypoint MLP): each image run through the device's own perception
  (edge.perception.pipeline on ONNX Runtime, pose only), its 33 landmarks written as a one-frame BlazePose JSON
  sequence (training.datasets.keypoints); an image in which perception finds nobody is left out and counted;
- images (`ROOT/images/`, for study 000's CNNs): the full 640x480 frame, written as an image folder whose
  loader resizes it (training.datasets.image_folder).

Both labels.csv files carry sex, age, age group and the camera's view beside the label, for breakdowns."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.datasets.avatar_common import BREAKDOWN_COLUMNS, RowWriter, breakdown_cells, rendered_subjects
from training.datasets.keypoints import write_keypoint_json

log = logging.getLogger(__name__)

KIND = "office-desk"
FPS = 10.0  # nominal: a one-frame sequence
KEYPOINT_HEADER = ("subject_id", "file", "label", "fps", *BREAKDOWN_COLUMNS, "view")
IMAGE_HEADER = ("subject_id", "image", "label", *BREAKDOWN_COLUMNS, "view")


def perception(model_dir: Path | None = None) -> Any:
    """The device's pose perception on ONNX Runtime (one CPU thread, no face, no tracking between images)."""
    from edge.model_store import default_model_dir
    from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline

    config = PerceptionConfig.model_validate(
        {"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 1}, "face": False, "tracking": False}
    )
    return PerceptionPipeline(config, model_dir or default_model_dir())


def device_keypoints(pipeline: Any, rgb: np.ndarray) -> np.ndarray | None:
    """(33, 3) pixel keypoints with visibility of the one person perception finds in an RGB image, or None."""
    pipeline.reset()
    result = pipeline.process(np.ascontiguousarray(rgb[..., ::-1]), 0.0)
    if not result.persons:
        return None
    return np.asarray(result.persons[0].keypoints, np.float32)


def write_posture_sets(
    out: Path, n_images: int, seed: int = 0, *, keypoints: bool = True, images: bool = True,
    image_size: int | None = 224, model_dir: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Render `n_images` office-desk stills (2 per subject) into ROOT/keypoints and/or ROOT/images."""
    from training.synth.avatar.scenes import IMAGES_PER_SUBJECT

    if n_images < 1:
        raise ValueError(f"posture avatar set: the number of images must be >= 1, got {n_images}")
    started = time.monotonic()
    n_subjects = -(-n_images // IMAGES_PER_SUBJECT[KIND])
    pipeline = perception(model_dir) if keypoints else None
    kp_rows = RowWriter(out / "keypoints", KEYPOINT_HEADER) if keypoints else None
    im_rows = RowWriter(out / "images", IMAGE_HEADER) if images else None
    if kp_rows:
        (out / "keypoints" / "seq").mkdir(parents=True, exist_ok=True)
    if im_rows:
        (out / "images" / "img").mkdir(parents=True, exist_ok=True)
    done = missed = 0
    try:
        for clip in rendered_subjects(KIND, seed, n_subjects):
            for frame in clip.frames:
                if done >= n_images:
                    break
                truth = frame.truth
                cells = [truth["label"], *breakdown_cells(truth), truth["view"]]
                stem = f"{clip.subject}_{frame.frame}"
                if im_rows:
                    rgb = frame.rgb
                    if image_size:
                        rgb = cv2.resize(rgb, (image_size, image_size), interpolation=cv2.INTER_AREA)
                    name = f"img/{stem}.jpg"
                    if not cv2.imwrite(str(out / "images" / name), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95]):
                        raise OSError(f"cannot write {out / 'images' / name}")
                    im_rows.write([clip.subject, name, *cells])
                if kp_rows and pipeline is not None:
                    kp = device_keypoints(pipeline, frame.rgb)
                    if kp is None:
                        missed += 1
                    else:
                        name = f"seq/{stem}.json"
                        write_keypoint_json(out / "keypoints" / name, kp[None], fps=FPS)
                        kp_rows.write([clip.subject, name, cells[0], FPS, *cells[1:]])
                done += 1
    finally:
        for rows in (kp_rows, im_rows):
            if rows:
                rows.close()
    return {"images": done, "no_person": missed, "seconds": round(time.monotonic() - started, 1)}
