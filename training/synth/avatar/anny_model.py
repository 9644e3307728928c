"""The anny body model: one process-wide instance, its cache, and the few model calls the avatar needs.

anny (PyPI `anny`, Apache-2.0 code, CC0 MakeHuman assets) builds its model data from the MakeHuman files in its
wheel on first use and caches the result (about 50 MB kept) in a folder: here `$EDGESCREEN_ANNY_DIR`, else
`~/.cache/edgescreen/anny`, unless anny's own `ANNY_CACHE_DIR` is set. The first build takes minutes (about 1.5 min
on this project's 2-core x86-64 machine, no GPU) and logs one line saying so; later loads take a few seconds.
The warp skinning kernel is compiled once into `<cache>/warp`.

Every call into anny's internals lives in this module, so a new anny version touches one file (the `train` extra
pins the version). Frames: anny's model frame is x = the subject's left, y = back, z = up, origin at the root
joint (between the hips). `ANNY_TO_WORLD` turns it into the avatar world frame (mesh.py): x left, y up, z forward.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ANNY_DIR_ENV = "EDGESCREEN_ANNY_DIR"
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# world = ANNY_TO_WORLD @ anny: (x, y, z)_anny -> (x, z, -y): left stays left, up is anny's z, forward is anny's -y.
ANNY_TO_WORLD: F64 = np.array(((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)))


def cache_dir() -> Path:
    """Where anny's built model data lives."""
    if os.environ.get("ANNY_CACHE_DIR"):
        return Path(os.environ["ANNY_CACHE_DIR"])
    if os.environ.get(ANNY_DIR_ENV):
        return Path(os.environ[ANNY_DIR_ENV])
    return Path.home() / ".cache" / "edgescreen" / "anny"


@dataclass(frozen=True)
class AnnyModel:
    """The loaded model and the topology-level data every body shares."""

    model: Any  # anny.Anny, float32, warp skinning
    coco: Any  # anny.KeypointsRegressor with the COCO-WholeBody labels
    bone_index: dict[str, int]
    bone_parents: tuple[int, ...]
    faces: npt.NDArray[np.int32]  # (F, 3) triangles
    vertex_bone_weights: F32  # (V, K) skinning weights
    vertex_bone_indices: npt.NDArray[np.int64]  # (V, K)

    @property
    def n_bones(self) -> int:
        return len(self.bone_parents)

    @property
    def n_vertices(self) -> int:
        return int(self.vertex_bone_weights.shape[0])


_lock = threading.Lock()


@functools.cache
def _load() -> AnnyModel:
    import torch

    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    import warp as wp

    wp.config.log_level = wp.LOG_ERROR  # no banner, no "no CUDA driver" notice on CPU hosts
    wp.config.kernel_cache_dir = str(directory / "warp")
    import anny
    from anny.paths import set_anny_cache_path

    set_anny_cache_path(directory)
    first_build = not any(directory.glob("v*/build_compact_model_data_*.safetensors"))
    if first_build:
        log.warning("building the anny body model cache in %s (first use only; takes a few minutes)", directory)
    with torch.no_grad():
        model = anny.Anny().to(torch.float32)
    if first_build:
        _drop_intermediates(directory)
    coco = anny.KeypointsRegressor.coco(model)
    labels = list(model.bone_labels)
    return AnnyModel(
        model=model,
        coco=coco,
        bone_index={name: i for i, name in enumerate(labels)},
        bone_parents=tuple(int(p) for p in model.bone_parents),
        faces=model.faces.cpu().numpy().astype(np.int32),
        vertex_bone_weights=model.vertex_bone_weights.cpu().numpy().astype(np.float32),
        vertex_bone_indices=model.vertex_bone_indices.cpu().numpy().astype(np.int64),
    )


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """torch on one thread for anny's many small tensor operations: kinematics runs ~7x faster than on two
    threads of this project's 2-core machine. The previous setting is restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _drop_intermediates(directory: Path) -> None:
    """anny caches every stage of its first build (about 800 MB); a later load reads only the last, compact one
    (about 50 MB), so the stages this build just wrote go."""
    for stage in ("load_data_*.safetensors", "build_model_data_*.safetensors"):
        for path in directory.glob(f"v*/{stage}"):
            path.unlink(missing_ok=True)


def get_model() -> AnnyModel:
    """The process-wide anny model (built or loaded on first call)."""
    with _lock:
        return _load()


@dataclass(frozen=True)
class RestBodies:
    """Rest (unposed) state of a batch of bodies: what stays fixed while the same bodies take new poses."""

    vertices: torch.Tensor  # (B, V, 3) rest vertices, anny frame
    bone_poses: torch.Tensor  # (B, J, 4, 4) rest bone poses


def rest_bodies(phenotypes: list[dict[str, float]]) -> RestBodies:
    """The rest state of each body from its anny phenotype parameters (`Phenotype.anny_kwargs()`)."""
    import torch

    am = get_model()
    with torch.no_grad(), single_thread():
        return _rest_bodies(am, phenotypes)


def _rest_bodies(am: AnnyModel, phenotypes: list[dict[str, float]]) -> RestBodies:
    import torch

    m = am.model
    labels = list(m.phenotype_labels)
    params = torch.tensor([[p[label] for label in labels] for p in phenotypes], dtype=torch.float32)
    n = params.shape[0]
    empty_local = torch.zeros((n, len(m.local_change_labels)), dtype=torch.float32)
    empty_face = torch.zeros((n, len(m.facial_action_labels)), dtype=torch.float32)
    coeffs = m._get_phenotype_blendshape_coefficients(params, empty_local, empty_face)
    rest = m.get_rest_model(coeffs)
    return RestBodies(vertices=rest["rest_vertices"], bone_poses=rest["rest_bone_poses"])


def bone_transforms(
    rest: RestBodies, deltas: F32 | F64, translations: F32 | F64 | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics for local-ref deltas: (B, J, 3, 3) rotations in anny's world-aligned axes (a bone's
    posed orientation relative to rest is its parent's times its delta) and optional (B, J, 3) translations (in
    its parent's posed axes). Returns (skinning transforms, posed bone poses), both (B, J, 4, 4)."""
    import torch

    m = get_model().model
    d = torch.zeros((deltas.shape[0], deltas.shape[1], 4, 4), dtype=torch.float32)
    d[..., :3, :3] = torch.as_tensor(np.asarray(deltas), dtype=torch.float32)
    if translations is not None:
        d[..., :3, 3] = torch.as_tensor(np.asarray(translations), dtype=torch.float32)
    d[..., 3, 3] = 1.0
    with torch.no_grad(), single_thread():
        transforms, poses = m.get_bone_transforms(d, rest.bone_poses, pose_parameterization="local-ref")
    return transforms, poses


def skin(rest: RestBodies, transforms: torch.Tensor) -> torch.Tensor:
    """Posed vertices (B, V, 3), anny frame."""
    import torch

    m = get_model().model
    vertices = rest.vertices.expand(transforms.shape[0], -1, -1)
    with torch.no_grad():
        return m.get_skinned_vertices(vertices.contiguous(), transforms)


def skin_points(rest: RestBodies, transforms: torch.Tensor, vertex_ids: npt.NDArray[np.int64]) -> F64:
    """Posed positions (B, N, 3) of a few vertices by the same linear blend skinning, without skinning the rest."""
    am = get_model()
    w = am.vertex_bone_weights[vertex_ids]  # (N, K)
    idx = am.vertex_bone_indices[vertex_ids]  # (N, K)
    rest_v = rest.vertices[:, vertex_ids].double().numpy()  # (B or 1, N, 3)
    t = transforms.double().numpy()[:, idx]  # (B, N, K, 4, 4)
    blended = np.einsum("nk,bnkij->bnij", w.astype(np.float64), t)
    out = np.einsum("bnij,bnj->bni", blended[..., :3, :3], np.broadcast_to(rest_v, (t.shape[0], *rest_v.shape[1:])))
    return np.asarray(out + blended[..., :3, 3])


def regress_coco(vertices: torch.Tensor) -> F64:
    """The COCO-WholeBody keypoints anny regresses from the mesh, (B, 23, 3), anny frame; labels in COCO_LABELS."""
    import torch

    with torch.no_grad():
        return np.asarray(get_model().coco({"vertices": vertices}).double().numpy())


def coco_labels() -> list[str]:
    return list(get_model().coco.labels)


def texture_coordinates() -> tuple[F32, npt.NDArray[np.int64]]:
    """anny's UV coordinates (T, 2) and the UV index of each face corner (F, 3)."""
    m = get_model().model
    return (
        m.texture_coordinates.cpu().numpy().astype(np.float32),
        m.face_texture_coordinate_indices.cpu().numpy().astype(np.int64),
    )


def face_parts(labels: list[str]) -> npt.NDArray[np.bool_]:
    """Faces (F,) that anny's UV body-part segmentation puts in any of `labels` (e.g. "eye_front.L", "mouth_cavity")."""
    from anny.face_segmentation import get_face_segmentation_mask

    return np.asarray(get_face_segmentation_mask(get_model().model, labels).cpu().numpy(), bool)


def to_world(points_anny: F64 | F32) -> F64:
    """anny-frame points (..., 3) in the avatar world frame (before the body is placed)."""
    return np.asarray(points_anny, np.float64) @ ANNY_TO_WORLD.T


def world_rotation_to_anny(r_world: F64) -> F64:
    """A rotation (..., 3, 3) written in world axes, re-written in anny's axes."""
    return np.asarray(ANNY_TO_WORLD.T @ r_world @ ANNY_TO_WORLD)


@functools.cache
def coco_support(labels: tuple[str, ...], mass: float = 0.999) -> tuple[npt.NDArray[np.int64], F64]:
    """The vertices anny's COCO regressor blends for `labels` and the (K, N) weights, so a few keypoints can be
    regressed from `skin_points` alone. Each keypoint keeps its largest weights up to `mass` of the total
    (renormalised): an ear blends some 4000 vertices, 99.9 % of its weight sits on about 200."""
    coco = get_model().coco
    w = coco.regression_weights[[coco.labels.index(label) for label in labels]].double().cpu().numpy()
    kept = np.zeros_like(w, dtype=bool)
    for k, row in enumerate(w):
        order = np.argsort(-np.abs(row))
        share = np.cumsum(np.abs(row[order])) / np.abs(row).sum()
        kept[k, order[: int(np.searchsorted(share, mass)) + 1]] = True
    w = np.where(kept, w, 0.0)
    w /= w.sum(axis=1, keepdims=True)
    support = np.flatnonzero(kept.any(axis=0))
    return support.astype(np.int64), np.asarray(w[:, support])
