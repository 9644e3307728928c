"""Training checkpoint → ONNX (opset 17, dynamic batch) with its metadata, checked against PyTorch.

The metadata carries what the device and the later export steps need (label map, input spec,
normalisation, task) and where the model came from (checkpoint sha256, git commit, data sha256). The
exported graph is run in ONNX Runtime on held-out inputs of the model's task (a seed that training
does not use) and compared with PyTorch; FP32 must agree to within `tolerance` (1e-4) or the export
fails and no file is left behind.
"""

from __future__ import annotations

import json
import logging
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort

from contract.errors import EdgeScreenError
from contract.hashing import sha256_file

log = logging.getLogger(__name__)

OPSET = 17
HELD_OUT_SEED = 90_210  # never a training/CV seed: parity is checked on inputs the model did not see


class ExportError(EdgeScreenError, RuntimeError):
    """The checkpoint could not be exported, or the export does not match PyTorch."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_diff: float
    samples: int
    metadata: dict[str, str]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def build_metadata(meta: dict[str, Any], checkpoint_sha256: str | None) -> dict[str, str]:
    """ONNX metadata_props from a checkpoint's meta (all values JSON or plain strings)."""
    spec = meta.get("input_spec") or {}
    props = {
        "task": str(meta.get("task", "")),
        "arch": str(meta.get("arch", "")),
        "label_map": _json(meta.get("label_map") or {}),
        "input_spec": _json(spec),
        "normalisation": _json(meta.get("normalisation") or {}),
        "source_checkpoint_sha256": checkpoint_sha256 or "",
        "git_commit": str(meta.get("git_commit") or "unknown"),
        "data_sha256": str(meta.get("data_sha256") or ""),
        "model_kwargs": _json(meta.get("model_kwargs") or {}),
        "edgescreen.precision": "fp32",
    }
    return {k: v for k, v in props.items() if v != ""}


def _dynamic_dims(spec: dict[str, Any]) -> dict[int, str]:
    """Batch, plus every dimension the input spec leaves open (-1/None: e.g. the frames of a gait walk)."""
    dims = {0: "batch"}
    for i, d in enumerate(spec.get("shape") or []):
        if i > 0 and not (isinstance(d, int) and d > 0):
            dims[i] = f"dim{i}"
    return dims


def _output_names(sample_out: Any) -> list[str]:
    if isinstance(sample_out, tuple | list):
        return [f"output_{i}" for i in range(len(sample_out))]
    return ["output"]


def export_module(
    model: Any,
    meta: dict[str, Any],
    out: Path,
    held_out: npt.NDArray[np.float32],
    *,
    checkpoint_sha256: str | None = None,
    tolerance: float = 1e-4,
) -> ExportResult:
    """Export a torch module and check it against PyTorch on `held_out` (batch of real task inputs)."""
    import torch

    out = Path(out)
    spec = meta.get("input_spec") or {}
    input_name = str(spec.get("name") or "input")
    if held_out.ndim < 2 or len(held_out) < 2:
        raise ExportError(f"need a batch of at least 2 held-out inputs, got shape {held_out.shape}")
    expected = spec.get("shape")
    if (
        expected
        and len(expected) == held_out.ndim
        and any(isinstance(e, int) and e > 0 and e != s for e, s in zip(expected[1:], held_out.shape[1:], strict=True))
    ):
        raise ExportError(f"held-out inputs have shape {held_out.shape[1:]}, the input spec says {expected}")
    model = model.eval()
    example = torch.from_numpy(np.ascontiguousarray(held_out[:2], dtype=np.float32))
    with torch.no_grad():
        names = _output_names(model(example))
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="edgescreen-onnx-", dir=out.parent) as tmp:
            raw = Path(tmp) / "model.onnx"
            try:
                torch.onnx.export(
                    model,
                    (example,),
                    str(raw),
                    input_names=[input_name],
                    output_names=names,
                    opset_version=OPSET,
                    dynamic_axes={input_name: _dynamic_dims(spec), **{n: {0: "batch"} for n in names}},
                    do_constant_folding=True,
                    dynamo=False,
                )
            except Exception as exc:  # torch.onnx raises many unrelated types (UnsupportedOperatorError, ...)
                raise ExportError(
                    f"torch.onnx.export failed for {meta.get('arch', type(model).__name__)}: {exc}"
                ) from exc
            proto = onnx.load(str(raw))
            props = build_metadata(meta, checkpoint_sha256)
            del proto.metadata_props[:]
            for key, value in props.items():
                proto.metadata_props.add(key=key, value=value)
            proto.producer_name = "edgescreen"
            onnx.checker.check_model(proto)
            onnx.save(proto, str(raw))
            diff = _max_abs_diff(model, raw, input_name, held_out)
            if not np.isfinite(diff) or diff > tolerance:
                raise ExportError(
                    f"ONNX output differs from PyTorch by {diff:.3g} (max abs) on {len(held_out)} held-out inputs, "
                    f"above the FP32 tolerance {tolerance:g}; nothing written"
                )
            raw.replace(out)
    log.info("exported %s (max abs diff %.3g on %d inputs)", out, diff, len(held_out))
    return ExportResult(out, diff, len(held_out), props)


def _max_abs_diff(model: Any, onnx_path: Path, input_name: str, held_out: npt.NDArray[np.float32]) -> float:
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    worst = 0.0
    # odd batch sizes on purpose: the batch axis must really be dynamic
    for start in range(0, len(held_out), 7):
        batch = np.ascontiguousarray(held_out[start : start + 7], dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(batch))
        refs = [t.numpy() for t in (ref if isinstance(ref, tuple | list) else [ref])]
        got = session.run(None, {input_name: batch})
        for r, g in zip(refs, got, strict=True):
            if r.shape != g.shape:
                raise ExportError(f"ONNX output shape {g.shape} differs from PyTorch's {r.shape}")
            worst = max(worst, float(np.max(np.abs(r - g))) if r.size else 0.0)
    return worst


def _meta_dict(meta: Any) -> dict[str, Any]:
    if isinstance(meta, dict):
        return dict(meta)
    if hasattr(meta, "model_dump"):
        return dict(meta.model_dump(mode="json"))
    return dict(vars(meta))


def export_checkpoint(checkpoint: Path, out: Path, tolerance: float = 1e-4, samples: int = 16) -> ExportResult:
    """Load a training checkpoint, export it, and check it on held-out synthetic inputs of its task."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ExportError(f"checkpoint {checkpoint} does not exist")
    try:
        from training.checkpoint import load_checkpoint
    except ImportError as exc:
        raise ExportError(f"exporting a checkpoint needs the training code (the `train` extra): {exc}") from exc
    try:
        model, meta = load_checkpoint(checkpoint)
    except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as exc:
        raise ExportError(f"cannot load checkpoint {checkpoint}: {str(exc).splitlines()[0]}") from exc
    meta = _meta_dict(meta)
    task = meta.get("task")
    if not task:
        raise ExportError(f"checkpoint {checkpoint} names no task; cannot pick held-out inputs")
    try:
        from training.data import load_task_data

        data = load_task_data(task, f"synthetic:{max(samples, 2)}", HELD_OUT_SEED)
    except ImportError as exc:
        raise ExportError(f"held-out {task} inputs need the training data loaders: {exc}") from exc
    except (ValueError, OSError) as exc:
        raise ExportError(f"cannot make held-out {task} inputs: {exc}") from exc
    from export.calibration import CalibrationError, model_ready

    spec_shape = (meta.get("input_spec") or {}).get("shape") or []
    shape: list[int | None] = [d if isinstance(d, int) and d > 0 else None for d in spec_shape]
    try:
        held_out = model_ready(data, shape)[0][: max(samples, 2)]
    except CalibrationError as exc:
        raise ExportError(f"held-out {task} inputs do not fit checkpoint {checkpoint}: {exc}") from exc
    return export_module(model, meta, out, held_out, checkpoint_sha256=sha256_file(checkpoint), tolerance=tolerance)
