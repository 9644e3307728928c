"""Inputs for calibrating and verifying a model, picked by what the model is.

- The five perception models get real photos (scikit-image's astronaut, coffee, chelsea, rocket, camera,
  matplotlib's grace_hopper) turned into model inputs by the perception pipeline's own preprocessing:
  letterboxed frames for the detectors, and for the landmark models the crops the pipeline cuts around
  detected people/faces, with jittered ROIs (scale, rotation, shift) for more variety. Calibration and
  evaluation use different photos and different jitter, so parity is measured on held-out inputs.
  `DATA` for them is `photos[:N]` (or `synthetic[:N]`, which means the same built-in photo set) or a
  folder of images.
- Models from training get `training.data.load_task_data(task, DATA, seed)`; the task comes from the
  model's metadata.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx
from onnxruntime.quantization import CalibrationDataReader

from contract.errors import EdgeScreenError
from edge.model_store import PERCEPTION_MODELS

log = logging.getLogger(__name__)

Purpose = Literal["calibration", "evaluation"]
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# Photos for each purpose; people appear in astronaut (calibration) and grace_hopper (evaluation).
CALIBRATION_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")
EVALUATION_PHOTOS = ("grace_hopper", "immunohistochemistry", "cat", "astronaut_flipped")


class CalibrationError(EdgeScreenError, ValueError):
    """The data asked for cannot feed this model."""


@dataclass
class ModelInfo:
    """What a model is, read from its ONNX file (metadata, file name, graph inputs)."""

    path: Path
    input_name: str
    input_shape: list[int | None]
    perception: str | None  # one of PERCEPTION_MODELS, or None for a trained model
    task: str | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def label_map(self) -> dict[str, int] | None:
        raw = self.metadata.get("label_map")
        return json.loads(raw) if raw else None


def describe(path: Path) -> ModelInfo:
    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others with no common base
        raise CalibrationError(f"{path} is not a readable ONNX model: {exc}") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise CalibrationError(f"{path}: expected one graph input, found {[i.name for i in inputs]}")
    dims: list[int | None] = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in inputs[0].type.tensor_type.shape.dim
    ]
    perception = meta.get("edgescreen.perception_model") or perception_name(path.name)
    return ModelInfo(path, inputs[0].name, dims, perception, meta.get("task"), meta)


def perception_name(filename: str) -> str | None:
    stem = filename.removesuffix(".onnx")
    for name in sorted(PERCEPTION_MODELS, key=len, reverse=True):
        if stem == name or re.fullmatch(rf"{re.escape(name)}[._-](int8|fp16|fp32|qdq|quant)\w*", stem):
            return name
    return None


@dataclass(frozen=True)
class DataSpec:
    kind: Literal["synthetic", "photos", "path"]
    count: int | None
    path: Path | None = None
    raw: str = ""


def parse_data(spec: str) -> DataSpec:
    """`synthetic[:N]`, `photos[:N]`, or a path (as `edgescreen train --data`)."""
    match = re.fullmatch(r"(synthetic|photos)(?::(\d+))?", spec.strip())
    if match:
        count = int(match.group(2)) if match.group(2) else None
        if count is not None and count < 1:
            raise CalibrationError(f"--data {spec!r}: the count must be at least 1")
        return DataSpec(match.group(1), count, raw=spec)  # type: ignore[arg-type]
    path = Path(spec).expanduser()
    if not path.exists():
        raise CalibrationError(f"data {spec!r} is neither synthetic[:N], photos[:N] nor an existing path")
    return DataSpec("path", None, path, raw=spec)


# ---------------------------------------------------------------- photos → perception model inputs


def _photo(name: str) -> npt.NDArray[np.uint8]:
    """A built-in photo as BGR uint8."""
    import cv2

    if name == "grace_hopper":
        import matplotlib.cbook

        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return np.asarray(image, dtype=np.uint8)
    import skimage.data

    rgb = getattr(skimage.data, name.removesuffix("_flipped"))()
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    return np.ascontiguousarray(bgr[:, ::-1]) if name.endswith("_flipped") else bgr


def _images_from(spec: DataSpec, purpose: Purpose) -> list[tuple[str, npt.NDArray[np.uint8]]]:
    import cv2

    if spec.kind != "path":
        names = CALIBRATION_PHOTOS if purpose == "calibration" else EVALUATION_PHOTOS
        return [(n, _photo(n)) for n in names]
    assert spec.path is not None
    files = [spec.path] if spec.path.is_file() else sorted(spec.path.rglob("*"))
    images = []
    for file in files:
        if file.suffix.lower() not in _IMAGE_SUFFIXES:
            continue
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise CalibrationError(f"cannot read image {file}")
        images.append((file.name, np.asarray(image, np.uint8)))
    if not images:
        raise CalibrationError(f"no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) under {spec.path}")
    return images


def _ort_backend(path: Path) -> Any:
    from edge.backends.base import BackendConfig
    from edge.backends.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(BackendConfig(threads=1))
    backend.load(path)
    return backend


def _jittered(roi: Any, rng: np.random.Generator, count: int, strength: float) -> list[Any]:
    from edge.perception.roi import RotatedRect

    rois = [roi]
    for _ in range(count - 1):
        scale = 1.0 + rng.uniform(-0.1, 0.15) * strength
        rois.append(
            RotatedRect(
                cx=roi.cx + rng.uniform(-0.05, 0.05) * strength * roi.width,
                cy=roi.cy + rng.uniform(-0.05, 0.05) * strength * roi.height,
                width=roi.width * scale,
                height=roi.height * scale,
                rotation=roi.rotation + math.radians(rng.uniform(-15, 15) * strength),
            )
        )
    return rois


def _frame_variants(
    image: npt.NDArray[np.uint8], rng: np.random.Generator, count: int, strength: float
) -> list[npt.NDArray[np.uint8]]:
    """The whole frame, then random sub-frames (60-90 % of each side), every other one mirrored."""
    variants = [image]
    h, w = image.shape[:2]
    for i in range(count - 1):
        scale = 1.0 - rng.uniform(0.1, 0.4) * strength
        ch, cw = max(16, int(h * scale)), max(16, int(w * scale))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        sub = image[y : y + ch, x : x + cw]
        variants.append(np.ascontiguousarray(sub[:, ::-1] if i % 2 == 0 else sub))
    return variants


def perception_inputs(
    name: str, reference_model: Path, spec: DataSpec, purpose: Purpose, *, seed: int, count: int | None
) -> list[npt.NDArray[np.float32]]:
    """Model inputs for perception model `name` made by the pipeline's preprocessing from photos.

    The landmark models need the detector models beside `reference_model` (as the model store has them)
    to find the people and faces to crop.
    """
    from edge.perception.face_detector import FaceDetector
    from edge.perception.pose_detector import PoseDetector, detection_to_roi

    rng = np.random.default_rng(seed + (0 if purpose == "calibration" else 1000))
    images = _images_from(spec, purpose)
    per_crop = 4 if purpose == "calibration" else 3
    strength = 1.0 if purpose == "calibration" else 0.6
    store = Path(reference_model).parent
    tensors: list[npt.NDArray[np.float32]] = []
    frames = [v for _, img in images for v in _frame_variants(img, rng, per_crop, strength)]
    if name == "pose_detection":
        detector = PoseDetector(_ort_backend(reference_model))
        tensors = [detector.preprocess(img)[0] for img in frames]
    elif name == "face_detection_short_range":
        face_detector = FaceDetector(_ort_backend(reference_model))
        tensors = [face_detector.preprocess(img)[0] for img in frames]
    elif name == "selfie_segmentation":
        tensors = [_resized(img, reference_model) for img in frames]
    elif name == "pose_landmark_full":
        from edge.perception.pose_landmarker import PoseLandmarker

        detector = PoseDetector(_ort_backend(_sibling(store, "pose_detection")))
        landmarker = PoseLandmarker(_ort_backend(reference_model))
        for label, img in images:
            if not detector(img):
                log.info("no person found in %s; not used for %s", label, name)
                continue
            for frame in _frame_variants(img, rng, per_crop, strength):
                detections = detector(frame)
                if not detections:
                    continue
                for roi in _jittered(detection_to_roi(detections[0]), rng, 3, strength):
                    tensors.append(landmarker.preprocess(frame, roi)[0])
    elif name == "face_landmark":
        from edge.perception.face_landmarker import FaceLandmarker

        face_detector = FaceDetector(_ort_backend(_sibling(store, "face_detection_short_range")))
        face_landmarker = FaceLandmarker(_ort_backend(reference_model))
        for label, img in images:
            if not face_detector(img):
                log.info("no face found in %s; not used for %s", label, name)
                continue
            for frame in _frame_variants(img, rng, per_crop, strength):
                faces = face_detector(frame)
                if faces:
                    for roi in _jittered(faces[0].roi, rng, 3, strength):
                        tensors.append(face_landmarker.preprocess(frame, roi)[0])
    else:
        raise CalibrationError(f"no input recipe for perception model {name!r}")
    if not tensors:
        raise CalibrationError(f"the {purpose} photos gave no usable input for {name} (no person/face found)")
    if count is not None:
        tensors = [tensors[i % len(tensors)] for i in range(count)] if count > len(tensors) else tensors[:count]
    return [np.ascontiguousarray(t, dtype=np.float32) for t in tensors]


def _sibling(store: Path, name: str) -> Path:
    path = store / f"{name}.onnx"
    if not path.is_file():
        raise CalibrationError(f"{path} is needed to find crops for the landmark model; run `edgescreen models fetch`")
    return path


def _resized(image: npt.NDArray[np.uint8], model: Path) -> npt.NDArray[np.float32]:
    """Whole frame resized to the model's NHWC input, RGB in [0, 1] (selfie segmentation's input)."""
    import cv2

    info = describe(model)
    height, width = (int(d or 256) for d in info.input_shape[1:3])
    patch = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return patch[None, :, :, ::-1].astype(np.float32) / 255.0


# ---------------------------------------------------------------- training tasks


@dataclass
class TaskSamples:
    inputs: npt.NDArray[np.float32]
    targets: npt.NDArray[Any] | None
    label_map: dict[str, int] | None


def task_samples(info: ModelInfo, spec: DataSpec, seed: int, count: int | None) -> TaskSamples:
    """Inputs (and targets) of the model's training task, from `training.data.load_task_data`."""
    if not info.task:
        raise CalibrationError(
            f"{info.path} names no task in its metadata and is not one of the perception models "
            f"({', '.join(PERCEPTION_MODELS)}); export it with `edgescreen export onnx`"
        )
    if spec.kind == "photos":
        raise CalibrationError(f"photos are for the perception models; {info.path} is a {info.task} model")
    try:
        from training.data import load_task_data
    except ImportError as exc:
        raise CalibrationError(f"{info.task} data needs the training code (the `train` extra): {exc}") from exc
    data_arg = spec.raw if spec.kind == "path" else (f"synthetic:{spec.count}" if spec.count else "synthetic")
    try:
        data = load_task_data(info.task, data_arg, seed)
    except (ValueError, OSError) as exc:
        raise CalibrationError(f"cannot load {info.task} data from {spec.raw!r}: {exc}") from exc
    inputs, targets = model_ready(data, info.input_shape)
    if count is not None:
        inputs = inputs[:count]
        targets = targets[:count] if targets is not None else None
    expected = [d for d in info.input_shape[1:]]
    if list(inputs.shape[1:]) != [d if d is not None else inputs.shape[i + 1] for i, d in enumerate(expected)]:
        raise CalibrationError(
            f"{info.task} data has sample shape {list(inputs.shape[1:])}, {info.path} expects {expected}"
        )
    return TaskSamples(inputs, targets, getattr(data, "label_map", None) or info.label_map)


def model_ready(data: Any, input_shape: list[int | None]) -> tuple[npt.NDArray[np.float32], npt.NDArray[Any] | None]:
    """Model inputs and targets from a TaskData, prepared exactly as training prepared them.

    `training.models.inputs.prepare` resizes, crops and normalises; its image size ("full" or "small") is
    the one whose output matches the model's input shape. Gait walks of different lengths are cut to the
    shortest so that they form one batch.
    """
    try:
        from training.models.inputs import prepare
    except ImportError:
        raw = np.asarray(data.inputs, dtype=np.float32)
        return raw, (np.asarray(data.targets) if getattr(data, "targets", None) is not None else None)
    tried = []
    for width in ("full", "small"):
        try:
            prepared = prepare(data, width=width)
        except ValueError as exc:
            raise CalibrationError(f"{data.task} data cannot be prepared for the model: {exc}") from exc
        x = prepared.x
        if isinstance(x, list):
            frames = min(len(walk) for walk in x)
            if len(input_shape) > 1 and input_shape[1] is not None and input_shape[1] <= frames:
                frames = input_shape[1]  # a model exported with a fixed number of frames
            array = np.stack([np.asarray(walk[:frames], dtype=np.float32) for walk in x])
        else:
            array = np.asarray(x, dtype=np.float32)
        fits = len(array.shape) == len(input_shape) and all(
            d is None or d == s for d, s in zip(input_shape[1:], array.shape[1:], strict=True)
        )
        if fits:
            return array, np.asarray(prepared.y)
        tried.append(list(array.shape[1:]))
    raise CalibrationError(f"{data.task} data prepares to sample shapes {tried}; the model expects {input_shape}")


class ArrayReader(CalibrationDataReader):
    """Feeds a list of batches to ONNX Runtime's calibrator, one at a time."""

    def __init__(self, input_name: str, batches: list[npt.NDArray[np.float32]]) -> None:
        self.input_name = input_name
        self.batches = batches
        self._iter: Iterator[npt.NDArray[np.float32]] = iter(batches)

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        batch = next(self._iter, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._iter = iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def calibration_batches(info: ModelInfo, spec: DataSpec, seed: int, count: int | None) -> list[npt.NDArray[np.float32]]:
    """Batches of one sample each for the calibrator."""
    if info.perception:
        return perception_inputs(info.perception, info.path, spec, "calibration", seed=seed, count=count)
    samples = task_samples(info, spec, seed, count or 64)
    return [samples.inputs[i : i + 1] for i in range(len(samples.inputs))]
