"""Gait silhouettes in the Scoliosis1K / OpenGait format, from a person's segmentation mask.

The mask is thresholded at 0.5, cropped to the person's rows, resized to 64 px high (aspect kept), centred on
the column that splits the silhouette's area in half, padded and cut to 64 x 64, then the 10 columns at each
side are dropped: 64 x 44, uint8 0/255 (the model divides by 255). Silhouettes live in memory only.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

SIL_HEIGHT = 64
SIL_WIDTH = 44
_SQUARE = 64
_SIDE_CUT = (_SQUARE - SIL_WIDTH) // 2
MIN_MASK_PIXELS = 200  # smaller blobs are not a usable silhouette

Silhouette = npt.NDArray[np.uint8]


def silhouette_from_mask(mask: npt.NDArray[np.floating] | None, threshold: float = 0.5) -> Silhouette | None:
    """The (64, 44) silhouette of one person's mask, or None when the mask is missing or too small."""
    if mask is None or mask.ndim != 2:
        return None
    binary = mask >= threshold
    rows = np.flatnonzero(binary.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(binary.any(axis=0))
    crop = binary[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    if int(crop.sum()) < MIN_MASK_PIXELS:
        return None
    h, w = crop.shape
    new_w = max(1, round(w * SIL_HEIGHT / h))
    resized = cv2.resize(crop.astype(np.uint8) * 255, (new_w, SIL_HEIGHT), interpolation=cv2.INTER_CUBIC)
    # centre on the column holding half the silhouette's area (OpenGait's pretreatment), pad, cut to 64 wide
    cumulative = np.cumsum(resized.sum(axis=0, dtype=np.float64))
    centre = int(np.searchsorted(cumulative, cumulative[-1] / 2.0))
    padded = np.zeros((SIL_HEIGHT, new_w + 2 * _SQUARE), np.uint8)
    padded[:, _SQUARE : _SQUARE + new_w] = resized
    left = centre + _SQUARE - _SQUARE // 2
    square = padded[:, left : left + _SQUARE]
    return np.ascontiguousarray(square[:, _SIDE_CUT : _SIDE_CUT + SIL_WIDTH])


def model_input(silhouettes: list[Silhouette], max_frames: int) -> npt.NDArray[np.float32]:
    """[1, T, 64, 44] float32 in 0..1, T <= max_frames sampled evenly over the walk."""
    if not silhouettes:
        raise ValueError("no silhouettes to feed the gait model")
    index = np.linspace(0, len(silhouettes) - 1, min(max_frames, len(silhouettes))).round().astype(int)
    stack = np.stack([silhouettes[i] for i in index]).astype(np.float32) / 255.0
    return stack[None]
