"""What every model stage shares: one backend, its input name, a call counter, and tensor lookup by shape."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from edge.backends.base import Backend, BackendError


class ModelStage:
    """Base of the `preprocess → infer → postprocess` stage classes."""

    model_name: str = ""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        specs = backend.inputs
        if len(specs) != 1:
            raise BackendError(f"{self.model_name}: expected one input tensor, the model has {len(specs)}")
        self.input_name = specs[0].name
        self.calls = 0  # inferences run; lets callers (and tests) see when a stage was skipped

    def infer(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        self.calls += 1
        return [np.asarray(o, dtype=np.float32) for o in self.backend.infer({self.input_name: tensor})]


def pick(outputs: list[npt.NDArray[np.float32]], what: str, test: Callable[[tuple[int, ...]], bool]) -> npt.NDArray:
    """The one output whose shape passes `test` (models are matched by output shapes, not names)."""
    found = [o for o in outputs if test(tuple(o.shape))]
    if len(found) != 1:
        shapes = [tuple(o.shape) for o in outputs]
        raise BackendError(f"cannot find the {what} output among output shapes {shapes}")
    return found[0]


def bgr_to_tensor(patch: npt.NDArray[np.uint8], low: float, high: float) -> npt.NDArray[np.float32]:
    """A BGR uint8 crop as the (1, H, W, 3) RGB float tensor the models take, values mapped to [low, high]."""
    rgb = cv2.cvtColor(patch, cv2.COLOR_BGR2RGB).astype(np.float32)
    rgb *= np.float32((high - low) / 255.0)
    if low:
        rgb += np.float32(low)
    return rgb[None]
