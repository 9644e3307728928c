"""Turn a task's data (TaskData from training.data) into tensors for its model, with the input spec and
normalisation that the checkpoint records for export and the device."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contract.labels import HEAD_SHIFT_TARGETS, TASK_KINDS, check_task
from training.models.sconet import SIL_HEIGHT, SIL_WIDTH

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
GRAY_MEAN = [0.5]
GRAY_STD = [0.25]
FLEXION_FRAMES = 64
IMAGE_SIZE = {"full": {"posture-image": 224, "head-shift": 128, "xray": 224}, "small": {"posture-image": 64,
              "head-shift": 64, "xray": 64}}  # fmt: skip


@dataclass
class Prepared:
    """Model-ready data. `x` is one tensor, or a list of per-sample tensors for variable-length gait walks."""

    x: Tensor | list[Tensor]
    y: np.ndarray
    subjects: list[str]
    input_spec: dict[str, Any]
    normalisation: dict[str, list[float]] | None
    model_kwargs: dict[str, Any]
    data_sha256: str
    prom: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)


def _hash(*arrays: Any) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, list | tuple):
            for item in a:
                h.update(np.ascontiguousarray(np.asarray(item)).tobytes())
        else:
            h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
    return h.hexdigest()


def _as_list(inputs: Any) -> list[np.ndarray]:
    if isinstance(inputs, np.ndarray):
        return list(inputs)
    if isinstance(inputs, list | tuple):
        return [np.asarray(item) for item in inputs]
    raise ValueError(f"inputs must be an array or a list of arrays, got {type(inputs).__name__}")


def _images(inputs: Any, size: int, task: str) -> tuple[Tensor, int]:
    """Images (HWC uint8/float, CHW, or HW gray) → float tensor [N, C, size, size] in 0..1."""
    import cv2

    out = []
    channels = None
    for i, img in enumerate(_as_list(inputs)):
        a = np.asarray(img)
        if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
            a = np.transpose(a, (1, 2, 0))
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim not in (2, 3):
            raise ValueError(f"{task}: image {i} has shape {a.shape}; expected HxW, HxWx3 or 3xHxW")
        a = a.astype(np.float32)
        if a.max(initial=0.0) > 1.5:
            a = a / 255.0
        if a.shape[0] != size or a.shape[1] != size:
            a = cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA)
        c = 1 if a.ndim == 2 else 3
        if channels is None:
            channels = c
        elif c != channels:
            raise ValueError(f"{task}: image {i} has {c} channels, earlier images {channels}")
        out.append(a[None] if a.ndim == 2 else np.transpose(a, (2, 0, 1)))
    return torch.from_numpy(np.stack(out)), int(channels or 3)


def _normalise(x: Tensor, channels: int) -> tuple[Tensor, dict[str, list[float]]]:
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else (GRAY_MEAN, GRAY_STD)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (x - m) / s, {"mean": list(mean), "std": list(std)}


def _fill_nan_time(seq: np.ndarray) -> np.ndarray:
    """Interpolate missing (NaN) keypoint coordinates over time; all-missing tracks become 0."""
    seq = seq.astype(np.float32).copy()
    t = np.arange(seq.shape[0])
    flat = seq.reshape(seq.shape[0], -1)
    for j in range(flat.shape[1]):
        col = flat[:, j]
        bad = np.isnan(col)
        if bad.all():
            col[:] = 0.0
        elif bad.any():
            col[bad] = np.interp(t[bad], t[~bad], col[~bad])
    return flat.reshape(seq.shape)


def _resample(seq: np.ndarray, frames: int) -> np.ndarray:
    t_old = np.linspace(0.0, 1.0, seq.shape[0])
    t_new = np.linspace(0.0, 1.0, frames)
    flat = seq.reshape(seq.shape[0], -1)
    out = np.stack([np.interp(t_new, t_old, flat[:, j]) for j in range(flat.shape[1])], axis=1)
    return out.reshape((frames, *seq.shape[1:])).astype(np.float32)


def label_dict(label_map: Any) -> dict[str, int]:
    """A task's label map as {name: index}, from a mapping or a list of names in index order (or None)."""
    if not label_map:
        return {}
    if isinstance(label_map, dict):
        return {str(k): int(v) for k, v in label_map.items()}
    return {str(name): i for i, name in enumerate(label_map)}


def _targets(data: Any, kind: str) -> np.ndarray:
    y = np.asarray(data.targets)
    if kind == "regression":
        y = y.astype(np.float32)
        return y.reshape(len(y), -1)
    if y.dtype.kind in "US" or y.dtype == object:
        mapping = label_dict(data.label_map)
        try:
            return np.asarray([mapping[str(v)] for v in y], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"{data.task}: label {exc.args[0]!r} is not in the label map {mapping}") from exc
    return y.astype(np.int64)


def prepare(data: Any, width: str = "full", use_prom: bool = False) -> Prepared:
    """Tensors for `data.task` from a TaskData (inputs, targets, subjects, label_map, task, input_spec)."""
    task = check_task(data.task)
    kind = TASK_KINDS[task]
    y = _targets(data, kind)
    subjects = [str(s) for s in data.subjects]
    if len(subjects) != len(y):
        raise ValueError(f"{task}: {len(y)} targets but {len(subjects)} subject ids")
    classes = len(label_dict(data.label_map)) if kind != "regression" else 0
    inputs = data.inputs
    prom = None
    if isinstance(inputs, dict):
        prom_arr = inputs.get("prom", inputs.get("proms"))
        prom = torch.as_tensor(np.asarray(prom_arr, dtype=np.float32)) if (use_prom and prom_arr is not None) else None
        inputs = inputs.get("keypoints", inputs.get("images", inputs.get("inputs")))
    if use_prom and prom is None:
        # PROMs may travel beside the keypoints (TaskData.extras / meta) rather than inside the inputs
        for holder in ("extras", "meta", "extra"):
            found = (getattr(data, holder, None) or {}).get("proms")
            if found is not None:
                prom = torch.as_tensor(np.asarray(found, dtype=np.float32))
                break
        else:
            raise ValueError(f"{task}: --prom was asked for but the data carries no PROMs")
    digest = _hash(inputs, y, np.asarray(subjects))
    if task in ("posture-image", "head-shift", "xray"):
        size = IMAGE_SIZE[width][task]
        if task == "xray":
            from training.models.sresnet import cervical_crop

            grays = [np.asarray(a, dtype=np.float32) for a in _as_list(inputs)]
            grays = [g.mean(axis=-1) if g.ndim == 3 and g.shape[-1] == 3 else g.squeeze() for g in grays]
            x, channels = _images([cervical_crop(g, size) for g in grays], size, task)
        else:
            x, channels = _images(inputs, size, task)
        x, norm = _normalise(x, channels)
        spec = {"name": "image", "shape": [-1, channels, size, size], "dtype": "float32", "layout": "NCHW"}
        kwargs: dict[str, Any] = {"in_channels": channels}
        if kind == "regression":
            kwargs["outputs"] = y.shape[1]
        else:
            kwargs["num_classes"] = classes
        return Prepared(x, y, subjects, spec, norm, kwargs, digest, extra={"targets": list(HEAD_SHIFT_TARGETS)})
    if task == "posture-keypoints":
        arrs = [np.asarray(a, dtype=np.float32) for a in _as_list(inputs)]
        frames = [np.nanmean(a, axis=0) if a.ndim == 3 else a for a in arrs]
        kp = np.nan_to_num(np.stack(frames))
        if kp.ndim != 3 or kp.shape[1] < 33 or kp.shape[2] < 2:
            raise ValueError(f"{task}: keypoints must be [N, 33, C>=2] (or [N, T, 33, C]); got {kp.shape}")
        spec = {"name": "keypoints", "shape": [-1, kp.shape[1], kp.shape[2]], "dtype": "float32", "layout": "NKC"}
        return Prepared(torch.from_numpy(kp), y, subjects, spec, None, {"num_classes": classes}, digest)
    if task == "flexion":
        seqs = [_resample(_fill_nan_time(np.asarray(a)), FLEXION_FRAMES) for a in _as_list(inputs)]
        kp = np.stack(seqs)
        if kp.ndim != 4 or kp.shape[2] < 33:
            raise ValueError(f"{task}: keypoint sequences must be [T, K>=33, C>=2] each; got {kp.shape[1:]}")
        spec = {"name": "keypoints", "shape": [-1, FLEXION_FRAMES, kp.shape[2], kp.shape[3]], "dtype": "float32",
                "layout": "NTKC"}  # fmt: skip
        kwargs = {"num_classes": classes, "keypoints": int(kp.shape[2])}
        if prom is not None:
            kwargs["prom_inputs"] = int(prom.shape[1])
        return Prepared(torch.from_numpy(kp), y, subjects, spec, None, kwargs, digest, prom=prom)
    # gait: one uint8/float silhouette sequence [T, 64, 64 or 44] per walk, cut to 64x44 as OpenGait does
    walks = []
    for i, a in enumerate(_as_list(inputs)):
        s = np.asarray(a)
        if s.ndim != 3 or s.shape[1] != SIL_HEIGHT or s.shape[2] not in (SIL_WIDTH, 64):
            raise ValueError(f"gait: walk {i} has shape {s.shape}; expected [T, 64, 64] or [T, 64, 44]")
        if s.shape[2] == 64:
            s = s[:, :, 10:-10]
        s = s.astype(np.float32)
        if s.max(initial=0.0) > 1.5:
            s = s / 255.0
        walks.append(torch.from_numpy(np.ascontiguousarray(s)))
    spec = {"name": "silhouettes", "shape": [-1, -1, SIL_HEIGHT, SIL_WIDTH], "dtype": "float32", "layout": "NTHW"}
    return Prepared(walks, y, subjects, spec, None, {"num_classes": classes}, digest)
