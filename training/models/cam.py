"""Grad-CAM class activation maps for the image models, saved as overlay PNGs (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def grad_cam(model: nn.Module, images: Tensor, target: Tensor | None = None, layer: nn.Module | None = None) -> Tensor:
    """Grad-CAM maps [N, H, W] in 0..1 for `images` [N, C, H, W], for class `target` (default: predicted).

    `layer` defaults to the model's `cam_layer` (its last convolutional stage).
    """
    layer = layer if layer is not None else getattr(model, "cam_layer", None)
    if layer is None:
        raise ValueError(f"{type(model).__name__} has no cam_layer; pass the layer to use")
    activations: list[Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: activations.append(out))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = images.detach().clone().requires_grad_(True)
            logits = model(x)
            if target is None:
                target = logits.argmax(dim=1)
            score = logits.gather(1, target.view(-1, 1)).sum()
            act = activations[-1]
            (grads,) = torch.autograd.grad(score, act)
    finally:
        handle.remove()
        model.train(was_training)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    flat = cam.flatten(1)
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    return ((cam - lo[:, None, None]) / (hi - lo).clamp(min=1e-8)[:, None, None]).detach()


def save_overlay(image: np.ndarray, cam: np.ndarray, path: str | Path, title: str = "", alpha: float = 0.45) -> Path:
    """Write `image` ([H, W] or [H, W, 3], any range) with the `cam` heat map on top to the PNG `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = image.astype(np.float32)
    img = (img - img.min()) / max(float(img.max() - img.min()), 1e-8)
    fig, ax = plt.subplots(figsize=(3.2, 3.2), dpi=100)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    ax.imshow(cam, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    path = Path(path)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
