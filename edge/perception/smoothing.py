"""Temporal smoothing of landmark tracks: the one-euro filter as MediaPipe's LandmarksSmoothingCalculator uses it.

The velocity that opens the filter's cutoff is measured relative to the object's size (`value_scale` =
1 / object scale), so that the same motion of a near and a far person is smoothed alike.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


class _LowPass:
    def __init__(self) -> None:
        self.value: Array | None = None

    def apply(self, value: Array, alpha: Array | float) -> Array:
        self.value = value.copy() if self.value is None else alpha * value + (1.0 - alpha) * self.value
        return self.value


def _alpha(cutoff: Array | float, rate: float) -> Array | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau * rate)


class OneEuroFilter:
    """Vectorised one-euro filter over an array of values (e.g. (N, 3) landmarks)."""

    def __init__(self, min_cutoff: float, beta: float, derivative_cutoff: float = 1.0) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.derivative_cutoff = derivative_cutoff
        self.reset()

    def reset(self) -> None:
        self._x = _LowPass()
        self._dx = _LowPass()
        self._last_t: float | None = None

    def apply(self, value: npt.ArrayLike, timestamp: float, value_scale: float = 1.0) -> Array:
        x = np.asarray(value, dtype=np.float64)
        if self._last_t is None or self._x.value is None or timestamp <= self._last_t:
            # First sample, or time did not advance (a repeated frame): start afresh from this value.
            self._x.value, self._dx.value = x.copy(), np.zeros_like(x)
            self._last_t = timestamp
            return x.copy()
        rate = 1.0 / (timestamp - self._last_t)
        self._last_t = timestamp
        dx = (x - self._x.value) * value_scale * rate
        edx = self._dx.apply(dx, _alpha(self.derivative_cutoff, rate))
        cutoff = self.min_cutoff + self.beta * np.abs(edx)
        return self._x.apply(x, _alpha(cutoff, rate))


class LandmarkSmoother:
    """Smooths one person's landmarks (x, y, z in pixels) and their visibility across frames."""

    def __init__(self, min_cutoff: float, beta: float, derivative_cutoff: float, visibility_alpha: float) -> None:
        self._coords = OneEuroFilter(min_cutoff, beta, derivative_cutoff)
        self._visibility = _LowPass()
        self.visibility_alpha = visibility_alpha

    def reset(self) -> None:
        self._coords.reset()
        self._visibility = _LowPass()

    def apply(self, xyz: npt.ArrayLike, visibility: npt.ArrayLike, timestamp: float) -> tuple[Array, Array]:
        pts = np.asarray(xyz, dtype=np.float64)
        size = pts[:, :2].max(axis=0) - pts[:, :2].min(axis=0)
        scale = float(size.mean())
        value_scale = 1.0 / scale if scale > 0 else 1.0
        smoothed = self._coords.apply(pts, timestamp, value_scale)
        vis = self._visibility.apply(np.asarray(visibility, dtype=np.float64), self.visibility_alpha)
        return smoothed, vis
