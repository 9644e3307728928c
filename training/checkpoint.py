"""Training checkpoints: one `torch.save` dict that export and evaluation load with `load_checkpoint`.

Format `edgescreen-checkpoint/1`: task, arch, model_kwargs, state_dict, label_map, input_spec {name, shape,
dtype, layout}, normalisation {mean, std} or None, data_sha256, git_commit, metrics.
"""

from __future__ import annotations

import pickle
import subprocess
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "edgescreen-checkpoint/1"
REQUIRED_KEYS = (
    "format", "task", "arch", "model_kwargs", "state_dict", "label_map", "input_spec", "normalisation",
    "data_sha256", "git_commit", "metrics",
)  # fmt: skip
INPUT_SPEC_KEYS = ("name", "shape", "dtype", "layout")


def git_commit() -> str | None:
    """The commit of the source tree this module lives in, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            check=False,
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    task: str,
    arch: str,
    model_kwargs: dict[str, Any],
    label_map: dict[str, int],
    input_spec: dict[str, Any],
    normalisation: dict[str, list[float]] | None,
    data_sha256: str,
    metrics: dict[str, Any],
) -> Path:
    missing = [k for k in INPUT_SPEC_KEYS if k not in input_spec]
    if missing:
        raise ValueError(f"input_spec lacks {missing}")
    payload = {
        "format": FORMAT,
        "task": task,
        "arch": arch,
        "model_kwargs": dict(model_kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "label_map": dict(label_map),
        "input_spec": dict(input_spec),
        "normalisation": normalisation,
        "data_sha256": data_sha256,
        "git_commit": git_commit(),
        "metrics": metrics,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint: (model in eval mode with its weights, metadata = the dict without the state dict).

    Raises ValueError naming the file and the problem for a missing/corrupt file, a foreign format or a state
    dict that does not fit the architecture.
    """
    from training.models.registry import build_model

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a readable checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: expected format {FORMAT!r}, found {found!r}")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {missing}")
    model = build_model(payload["arch"], **payload["model_kwargs"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: state dict does not fit {payload['arch']} {payload['model_kwargs']}: {exc}") from exc
    model.to(device).eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, meta
