"""SSD anchors as MediaPipe's SsdAnchorsCalculator generates them for the BlazePose / BlazeFace detectors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SsdAnchorOptions:
    """The anchor options of one detector graph (values in the MediaPipe graph of that model)."""

    input_width: int
    input_height: int
    num_layers: int
    min_scale: float
    max_scale: float
    strides: tuple[int, ...]
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


# pose_detection_cpu: 224×224, 5 layers, strides 8/16/32/32/32 → 28²·2 + 14²·2 + 7²·6 = 2254 anchors.
POSE_DETECTION_ANCHORS = SsdAnchorOptions(
    input_width=224,
    input_height=224,
    num_layers=5,
    min_scale=0.1484375,
    max_scale=0.75,
    strides=(8, 16, 32, 32, 32),
)

# face_detection_short_range: 128×128, 4 layers, strides 8/16/16/16 → 16²·2 + 8²·6 = 896 anchors.
FACE_SHORT_RANGE_ANCHORS = SsdAnchorOptions(
    input_width=128,
    input_height=128,
    num_layers=4,
    min_scale=0.1484375,
    max_scale=0.75,
    strides=(8, 16, 16, 16),
)


def _scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) / 2
    return min_scale + (max_scale - min_scale) * index / (count - 1)


def generate_anchors(opts: SsdAnchorOptions) -> npt.NDArray[np.float32]:
    """Anchors as an (N, 4) array of x_center, y_center, width, height, normalised to the input size.

    Layers with the same stride share one feature map; each position carries one anchor per aspect
    ratio of each merged layer plus the interpolated-scale anchor.
    """
    if len(opts.strides) != opts.num_layers:
        raise ValueError(f"{opts.num_layers} layers but {len(opts.strides)} strides")
    rows: list[tuple[float, float, float, float]] = []
    layer = 0
    while layer < opts.num_layers:
        sizes: list[tuple[float, float]] = []  # (width, height) of each anchor at one position
        last = layer
        while last < opts.num_layers and opts.strides[last] == opts.strides[layer]:
            scale = _scale(opts.min_scale, opts.max_scale, last, opts.num_layers)
            for ratio in opts.aspect_ratios:
                sizes.append((scale * math.sqrt(ratio), scale / math.sqrt(ratio)))
            if opts.interpolated_scale_aspect_ratio > 0:
                scale_next = (
                    1.0
                    if last == opts.num_layers - 1
                    else _scale(opts.min_scale, opts.max_scale, last + 1, opts.num_layers)
                )
                interpolated = math.sqrt(scale * scale_next)
                ratio = opts.interpolated_scale_aspect_ratio
                sizes.append((interpolated * math.sqrt(ratio), interpolated / math.sqrt(ratio)))
            last += 1
        stride = opts.strides[layer]
        rows_h = math.ceil(opts.input_height / stride)
        cols_w = math.ceil(opts.input_width / stride)
        for y in range(rows_h):
            for x in range(cols_w):
                cx = (x + opts.anchor_offset_x) / cols_w
                cy = (y + opts.anchor_offset_y) / rows_h
                for width, height in sizes:
                    if opts.fixed_anchor_size:
                        rows.append((cx, cy, 1.0, 1.0))
                    else:
                        rows.append((cx, cy, width, height))
        layer = last
    return np.asarray(rows, dtype=np.float32)
