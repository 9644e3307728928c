"""The synthetic-trained head-shift regressor (study 002) on the device: frame → crop → ONNX → shift in cm.

The model was trained on the generator's head-and-shoulders renders (`training.synth.tasks.head_shift`): a
front camera aimed at a point 6 cm (× body scale) above C7, the square image spanning 0.62-1.02 m at the
subject. Measured on those renders, the square is `CROP_SIDE` shoulder widths wide (median 2.36, 5-95 %
1.85-2.94) and its centre lies `CROP_UP` shoulder widths above the shoulder midpoint (median 0.256), straight up
in the image (the generator's camera is level; so is a station camera). The device cuts the same square from
the frame with the pose keypoints of the shoulders: the trunk, never the head, places the crop, because the
shift the model reads is the head's offset from that trunk framing.

From the square to the model input, as training did (`training.models.inputs`): BGR frame → RGB, 0..1, area
resized to the input size of the exported model's `input_spec`, minus the metadata's `normalisation` mean,
divided by its std, NCHW. Parts of the square outside the frame repeat the frame's edge pixels.

The outputs are (lateral, sagittal) shift in head widths (`contract.labels.HEAD_SHIFT_TARGETS`; lateral > 0
towards the subject's left, sagittal > 0 forward, both relative to a neutral head over the trunk). They become
centimetres by one ear-to-ear head width, `shift_model.head_width_cm` (default 15 cm: the generator's mean
adult head width, 0.088-0.090 × body height). The crop lives only inside `predict`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from contract.errors import EdgeScreenError
from contract.hashing import sha256_file
from contract.landmarks import Landmark as Lm
from contract.wire import ModelRef
from edge.backends.base import BackendConfig, BackendError, create_backend
from edge.roles.headpose.config import ShiftModelConfig

log = logging.getLogger(__name__)

SHIFT_TASK = "head-shift"
SHIFT_OUTPUTS = 2  # lateral, sagittal (contract.labels.HEAD_SHIFT_TARGETS)
CROP_SIDE = 2.36  # square side in shoulder widths (median over the generator's head-shift renders)
CROP_UP = 0.256  # square centre above the shoulder midpoint, in shoulder widths
MIN_SHOULDER_PX = 8.0  # narrower shoulders give a crop too coarse to read a shift from

FloatArray = npt.NDArray[np.float32]


class ShiftModelError(EdgeScreenError, ValueError):
    """The configured shift model cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class CropBox:
    """The square the model reads, in frame pixels: integer left/top corner and side (may reach outside)."""

    x0: int
    y0: int
    side: int


def crop_box(keypoints: npt.ArrayLike, min_visibility: float) -> CropBox | None:
    """The training framing from a person's image keypoints (33 × [x, y, visibility]), or None when both
    shoulders are not visible, the subject does not face the camera, or the shoulders are too narrow."""
    kp = np.asarray(keypoints, np.float64)
    left, right = kp[Lm.LEFT_SHOULDER], kp[Lm.RIGHT_SHOULDER]
    if min(left[2], right[2]) < min_visibility or not np.isfinite(kp[[Lm.LEFT_SHOULDER, Lm.RIGHT_SHOULDER]]).all():
        return None
    if left[0] <= right[0]:
        return None  # the subject's left is not on the image right: not facing the camera as in training
    width = math.hypot(left[0] - right[0], left[1] - right[1])
    if width < MIN_SHOULDER_PX:
        return None
    side = round(CROP_SIDE * width)
    cx = (left[0] + right[0]) / 2
    cy = (left[1] + right[1]) / 2 - CROP_UP * width  # image y points down
    return CropBox(x0=round(cx - side / 2), y0=round(cy - side / 2), side=side)


def model_input(
    frame_bgr: npt.NDArray[np.uint8], box: CropBox, size: int, mean: FloatArray, std: FloatArray
) -> FloatArray:
    """[1, 3, size, size] float32: the square cut from the frame, RGB, 0..1, area-resized, normalised."""
    h, w = frame_bgr.shape[:2]
    x1, y1 = box.x0 + box.side, box.y0 + box.side
    inside = frame_bgr[max(box.y0, 0) : min(y1, h), max(box.x0, 0) : min(x1, w)]
    if inside.size == 0:
        raise ValueError(f"crop {box} lies outside the {w}x{h} frame")
    pad = (max(0, -box.y0), max(0, y1 - h), max(0, -box.x0), max(0, x1 - w))
    square = np.asarray(cv2.copyMakeBorder(inside, *pad, cv2.BORDER_REPLICATE), np.uint8) if any(pad) else inside
    rgb = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(1 / 255)
    interpolation = cv2.INTER_AREA if box.side >= size else cv2.INTER_LINEAR
    resized = cv2.resize(rgb, (size, size), interpolation=interpolation)
    x = (resized - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def _json_prop(meta: dict[str, str], key: str, path: object) -> Any:
    if key not in meta:
        raise ShiftModelError(f"shift model {path}: metadata lacks {key!r} (not exported by `edgescreen export onnx`?)")
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as exc:
        raise ShiftModelError(f"shift model {path}: metadata {key!r} is not JSON: {meta[key][:80]!r}") from exc


def _channel_stats(norm: Any, path: object) -> tuple[FloatArray, FloatArray]:
    try:
        mean = np.asarray(norm["mean"], np.float32).reshape(3)
        std = np.asarray(norm["std"], np.float32).reshape(3)
    except (KeyError, TypeError, ValueError) as exc:
        raise ShiftModelError(
            f"shift model {path}: normalisation {norm!r} is not a mean and std for 3 channels"
        ) from exc
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise ShiftModelError(f"shift model {path}: normalisation {norm!r} needs finite means and positive stds")
    return mean, std


class HeadShiftModel:
    """An exported head-shift regressor run with the ONNX Runtime backend; checked when it is loaded."""

    def __init__(self, config: ShiftModelConfig) -> None:
        self.config = config
        path = config.path
        if not path.is_file():
            raise ShiftModelError(f"shift model {path}: file not found (headpose.shift_model.path)")
        backend = BackendConfig(type="onnxruntime", providers=config.providers, threads=config.threads)
        try:
            self.backend = create_backend(backend, path)
        except BackendError as exc:
            raise ShiftModelError(f"shift model {path}: not a loadable ONNX model: {exc}") from exc
        meta = self.backend.metadata
        task = meta.get("task")
        if task != SHIFT_TASK:
            found = f"a {task!r} model" if task else "a model without edgescreen task metadata"
            raise ShiftModelError(
                f"shift model {path}: {found}, not a {SHIFT_TASK!r} regressor (export a checkpoint of "
                f"`edgescreen train --task {SHIFT_TASK}` with `edgescreen export onnx`)"
            )
        spec = _json_prop(meta, "input_spec", path)
        self.mean, self.std = _channel_stats(_json_prop(meta, "normalisation", path), path)
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if (
            spec.get("layout") != "NCHW"
            or not isinstance(shape, list)
            or len(shape) != 4
            or shape[1] != 3
            or not (isinstance(shape[2], int) and shape[2] > 0 and shape[2] == shape[3])
        ):
            raise ShiftModelError(f"shift model {path}: input_spec {spec} is not an NCHW RGB square image")
        self.size = int(shape[2])
        graph = self.backend.inputs
        if len(graph) != 1 or graph[0].name != spec.get("name"):
            names = [g.name for g in graph]
            raise ShiftModelError(f"shift model {path}: graph inputs {names} do not match input_spec {spec}")
        dims = graph[0].shape
        if len(dims) != 4 or any(isinstance(d, int) and d != w for d, w in zip(dims[1:], shape[1:], strict=True)):
            raise ShiftModelError(f"shift model {path}: graph input shape {graph[0].shape} differs from {shape}")
        self.input_name = graph[0].name
        self.input_dtype = np.dtype(graph[0].dtype)
        probe = self._run(np.zeros((1, 3, self.size, self.size), np.float32))
        if probe.shape != (SHIFT_OUTPUTS,):
            raise ShiftModelError(
                f"shift model {path}: first output has {probe.size} values per image, expected {SHIFT_OUTPUTS} "
                "(lateral, sagittal)"
            )
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem).strip("-._") or "head-shift"
        self.ref = ModelRef(name=name[:96], sha256=sha256_file(path))
        log.info(
            "head-shift model %s: %dx%d input, every %d frame(s), %.1f cm per head width",
            path, self.size, self.size, config.every_n_frames, config.head_width_cm,
        )  # fmt: skip

    def _run(self, x: FloatArray) -> npt.NDArray[np.float64]:
        out = self.backend.infer({self.input_name: x.astype(self.input_dtype, copy=False)})[0]
        return np.asarray(out, np.float64).reshape(-1)

    def predict(
        self, frame_bgr: npt.NDArray[np.uint8], keypoints: npt.ArrayLike, min_visibility: float
    ) -> tuple[float, float] | None:
        """(lateral, sagittal) head shift in cm for the person whose keypoints are given, or None when the
        shoulders do not place a crop or the model gives a non-finite value."""
        box = crop_box(keypoints, min_visibility)
        if box is None:
            return None
        try:
            x = model_input(frame_bgr, box, self.size, self.mean, self.std)
        except ValueError:
            return None  # the person's shoulders lie outside this frame
        out = self._run(x)
        del x
        if not np.isfinite(out).all():
            return None
        k = self.config.head_width_cm
        return float(out[0]) * k, float(out[1]) * k
