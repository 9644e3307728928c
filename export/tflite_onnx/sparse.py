"""Expand a TFLite sparse tensor (the format DENSIFY reads) into a dense numpy array.

The values are stored in traversal order; each traversal level is either dense (a size) or CSR
(segments into the indices of the next level). Levels beyond the tensor's rank are block dimensions,
mapped to original dimensions by `block_map`. This is the layout TFLite's FormatConverter reads.
"""

from __future__ import annotations

import numpy as np

from export.tflite_onnx.reader import Sparsity


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity: Sparsity) -> np.ndarray:
    """Dense array of `shape` with `values` placed where the sparse metadata says."""
    rank = len(shape)
    levels = len(sparsity.dims)
    order = sparsity.traversal_order or tuple(range(levels))
    if len(order) != levels:
        raise ValueError(f"sparse tensor: traversal order has {len(order)} levels, metadata {levels}")
    if levels < rank:
        raise ValueError(f"sparse tensor: {levels} traversal levels for a rank-{rank} tensor")
    # As TFLite's FormatConverter: block b's size is the dense size of traversal level order[rank + b].
    block_sizes = [sparsity.dims[order[rank + b]].dense_size for b in range(levels - rank)]
    # Walk the levels breadth-first; rows stay in traversal (lexicographic) order, i.e. the order of `values`.
    coords = np.zeros((1, 0), dtype=np.int64)
    prev = np.zeros(1, dtype=np.int64)
    for level in range(levels):
        dim = sparsity.dims[level]
        if dim.dense:
            n = dim.dense_size
            level_idx = np.tile(np.arange(n, dtype=np.int64), len(prev))
            coords = np.repeat(coords, n, axis=0)
            prev = (np.repeat(prev, n) * n) + level_idx
        else:
            if len(dim.segments) < int(prev.max(initial=0)) + 2:
                raise ValueError(f"sparse tensor: level {level} has too few segments")
            starts = dim.segments[prev]
            counts = dim.segments[prev + 1] - starts
            if np.any(counts < 0):
                raise ValueError(f"sparse tensor: level {level} segments are not increasing")
            positions = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts) + np.arange(
                int(counts.sum()), dtype=np.int64
            )
            if positions.size and positions.max() >= len(dim.indices):
                raise ValueError(f"sparse tensor: level {level} segments point past its indices")
            level_idx = dim.indices[positions]
            coords = np.repeat(coords, counts, axis=0)
            prev = positions
        coords = np.concatenate([coords, level_idx[:, None]], axis=1)
    if coords.shape[0] != values.size:
        raise ValueError(f"sparse tensor: metadata describes {coords.shape[0]} values, the buffer holds {values.size}")
    original = np.zeros((coords.shape[0], rank), dtype=np.int64)
    for level in range(rank):
        original[:, order[level]] = coords[:, level]
    for level in range(rank, levels):
        block = order[level] - rank
        dim_index = sparsity.block_map[block]
        original[:, dim_index] = original[:, dim_index] * block_sizes[block] + coords[:, level]
    for d in range(rank):
        if original.shape[0] and (original[:, d].max() >= shape[d] or original[:, d].min() < 0):
            raise ValueError(f"sparse tensor: an index of dimension {d} is outside the shape {shape}")
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(original.T)] = values.reshape(-1)
    return dense
