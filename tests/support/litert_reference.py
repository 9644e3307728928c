"""Reference runs of the original TFLite models with the LiteRT interpreter (the runtime MediaPipe uses).

Test-only: `ai-edge-litert` is in the `dev` extra. The .tflite files are read from the pinned wheel
kept in the model store (`<store>/.wheels/`), checked against their pinned sha256.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from export.mediapipe_models import MODEL_SOURCES, find_wheel, read_model

# How MediaPipe's graphs scale pixels for each model (ImageToTensorCalculator output_tensor_float_range).
INPUT_RANGE: dict[str, tuple[float, float]] = {
    "pose_detection": (-1.0, 1.0),
    "pose_landmark_full": (0.0, 1.0),
    "face_detection_short_range": (-1.0, 1.0),
    "face_landmark": (0.0, 1.0),
    "selfie_segmentation": (0.0, 1.0),
}


def tflite_bytes(name: str, model_dir: Path) -> bytes:
    """The original .tflite of model `name`, from the wheel the store was fetched from."""
    source = next(s for s in MODEL_SOURCES if s.name == name)
    wheel = find_wheel(model_dir)
    with zipfile.ZipFile(wheel) as archive:
        return read_model(archive, source, wheel)


@dataclass
class LiteRTModel:
    """One TFLite model on the LiteRT interpreter (XNNPACK, `num_threads` threads)."""

    interpreter: Interpreter

    @classmethod
    def load(cls, data: bytes, num_threads: int = 1) -> LiteRTModel:
        interpreter = Interpreter(model_content=data, num_threads=num_threads)
        interpreter.allocate_tensors()
        return cls(interpreter)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.interpreter.get_input_details()[0]["shape"])

    def run(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by tensor name, copied out of the interpreter."""
        for detail, value in zip(self.interpreter.get_input_details(), inputs, strict=True):
            self.interpreter.set_tensor(detail["index"], np.ascontiguousarray(value, dtype=detail["dtype"]))
        self.interpreter.invoke()
        return {
            d["name"]: self.interpreter.get_tensor(d["index"]).copy() for d in self.interpreter.get_output_details()
        }

    def invoke(self) -> None:
        """Run again on the inputs already set (for timing)."""
        self.interpreter.invoke()


def letterbox(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fit an RGB uint8 image into height×width keeping its aspect ratio, zero-padded (as MediaPipe's detectors)."""
    scale = min(height / image.shape[0], width / image.shape[1])
    new_h, new_w = round(image.shape[0] * scale), round(image.shape[1] * scale)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def model_input(name: str, image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A [1, H, W, 3] float32 input for model `name` from an RGB uint8 image, normalised as MediaPipe does."""
    low, high = INPUT_RANGE[name]
    fitted = letterbox(image, shape[1], shape[2]).astype(np.float32) / 255.0
    return (fitted * (high - low) + low)[None].astype(np.float32)


def random_input(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    low, high = INPUT_RANGE[name]
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)
