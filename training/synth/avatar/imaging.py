"""What a real camera does to a clean render: lens defocus, motion blur, exposure, sensor noise and JPEG.

Only the RGB image is degraded; the silhouette, depth and truth points stay exact, as labels should. Applied in the
order light meets them: optics (blur), exposure (gain), sensor (shot and read noise), then the encoder (JPEG).
Everything is seeded: the same image, settings and generator give the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Imaging:
    """Degradation settings. Noise is in 8-bit levels: `read_noise` is the signal-independent sd and shot noise has
    sd shot_noise * sqrt(level); their variances add. `jpeg_quality` None keeps the image unencoded."""

    blur_sigma_px: float = 0.0
    motion_px: float = 0.0
    motion_angle_deg: float = 0.0
    gain: float = 1.0
    read_noise: float = 0.0
    shot_noise: float = 0.0
    jpeg_quality: int | None = None

    def __post_init__(self) -> None:
        checks = (
            ("blur_sigma_px", self.blur_sigma_px, 0.0, 20.0),
            ("motion_px", self.motion_px, 0.0, 60.0),
            ("gain", self.gain, 0.1, 4.0),
            ("read_noise", self.read_noise, 0.0, 50.0),
            ("shot_noise", self.shot_noise, 0.0, 5.0),
        )
        for name, value, lo, hi in checks:
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"Imaging.{name}: expected {lo}..{hi}, got {value}")
        if self.jpeg_quality is not None and not (5 <= self.jpeg_quality <= 100):
            raise ValueError(f"Imaging.jpeg_quality: expected 5..100 or None, got {self.jpeg_quality}")


CLEAN = Imaging()


def sample_imaging(rng: np.random.Generator) -> Imaging:
    """Settings typical of webcams and small board cameras indoors: mostly sharp, some defocus or motion blur,
    exposure within about +-25 %, visible noise in dim rooms, JPEG quality 60-95."""
    return Imaging(
        blur_sigma_px=float(rng.uniform(0.0, 1.2)) if rng.random() < 0.6 else 0.0,
        motion_px=float(rng.uniform(1.0, 6.0)) if rng.random() < 0.25 else 0.0,
        motion_angle_deg=float(rng.uniform(0.0, 180.0)),
        gain=float(np.exp(rng.normal(0.0, 0.12))),
        read_noise=float(rng.uniform(0.5, 4.0)),
        shot_noise=float(rng.uniform(0.1, 0.6)),
        jpeg_quality=int(rng.integers(60, 96)) if rng.random() < 0.85 else None,
    )


def _motion_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    size = math.ceil(length_px) | 1  # odd, so the kernel is centred
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    # A line of `length_px` drawn with sub-pixel samples, so short streaks still blur by their true length.
    for t in np.linspace(-length_px / 2, length_px / 2, max(2, int(length_px * 4))):
        x, y = c + t * dx, c + t * dy
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        for xi, yi, w in ((x0, y0, (1 - fx) * (1 - fy)), (x0 + 1, y0, fx * (1 - fy)), (x0, y0 + 1, (1 - fx) * fy),
                          (x0 + 1, y0 + 1, fx * fy)):  # fmt: skip
            if 0 <= xi < size and 0 <= yi < size:
                kernel[yi, xi] += w
    return kernel / kernel.sum()


_IRWIN_HALL_SD = math.sqrt(4 * (256**2 - 1) / 12)


def _unit_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-variance, near-Gaussian float32 noise: the sum of four uniform random bytes (Irwin-Hall).
    Three times cheaper than numpy's normal sampler for a whole frame, and plenty for sensor noise."""
    n = int(np.prod(shape))
    raw = rng.integers(0, 256, (4, n), dtype=np.uint8)
    total = raw[0].astype(np.int16)
    for k in range(1, 4):
        total += raw[k]
    return ((total - 510).astype(np.float32) * np.float32(1.0 / _IRWIN_HALL_SD)).reshape(shape)


def apply_imaging(rgb: np.ndarray, imaging: Imaging, rng: np.random.Generator) -> np.ndarray:
    """A degraded copy of `rgb` (H, W, 3) uint8."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"apply_imaging: expected an (H, W, 3) uint8 image, got {rgb.dtype} {rgb.shape}")
    img: np.ndarray = rgb.astype(np.float32)
    if imaging.blur_sigma_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), imaging.blur_sigma_px, borderType=cv2.BORDER_REFLECT)
    if imaging.motion_px >= 1.0:
        img = cv2.filter2D(img, -1, _motion_kernel(imaging.motion_px, imaging.motion_angle_deg),
                           borderType=cv2.BORDER_REFLECT)  # fmt: skip
    if imaging.gain != 1.0:
        img *= np.float32(imaging.gain)
    out = cv2.convertScaleAbs(img)  # rounds and saturates to uint8 (nothing here is negative)
    if imaging.read_noise > 0 or imaging.shot_noise > 0:
        # Shot and read noise are independent, so their variances add; the sd per level comes from a table.
        levels = np.arange(256, dtype=np.float32)
        sd = np.sqrt(levels * np.float32(imaging.shot_noise**2) + np.float32(imaging.read_noise**2))
        noisy = out.astype(np.float32)
        noisy += _unit_noise(rng, out.shape) * cv2.LUT(out, sd)
        out = cv2.convertScaleAbs(np.maximum(noisy, 0.0, out=noisy))
    if imaging.jpeg_quality is not None:
        ok, data = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(imaging.jpeg_quality)])
        if not ok:
            raise RuntimeError("apply_imaging: OpenCV could not encode the JPEG")
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if decoded is None:
            raise RuntimeError("apply_imaging: OpenCV could not decode its own JPEG")
        out = np.ascontiguousarray(decoded[..., ::-1])
    return out
