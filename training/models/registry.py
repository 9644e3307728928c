"""Model registry: `build_model(arch, **kwargs)` and the architectures of each task (first = default)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from torch import nn

from contract.labels import TaskName, check_task


def _factories() -> dict[str, Callable[..., nn.Module]]:
    from training.models.efficientnet import efficientnet_b5
    from training.models.flexion_net import flexion_net
    from training.models.head_shift import head_shift_cnn
    from training.models.keypoint_mlp import keypoint_mlp
    from training.models.resnet import resnet34, resnet50
    from training.models.sconet import sconet, sconet_mt
    from training.models.skeleton_gait import skeleton_gait
    from training.models.sresnet import sresnet34
    from training.models.vgg import vgg19

    return {
        "resnet50": resnet50,
        "vgg19": vgg19,
        "efficientnet_b5": efficientnet_b5,
        "resnet34": resnet34,
        "keypoint_mlp": keypoint_mlp,
        "flexion_net": flexion_net,
        "sconet": sconet,
        "sconet_mt": sconet_mt,
        "skeleton_gait": skeleton_gait,
        "head_shift_cnn": head_shift_cnn,
        "sresnet34": sresnet34,
    }


ARCHS: tuple[str, ...] = (
    "resnet50", "vgg19", "efficientnet_b5", "resnet34", "keypoint_mlp", "flexion_net", "sconet", "sconet_mt",
    "head_shift_cnn", "sresnet34", "skeleton_gait",
)  # fmt: skip

TASK_ARCHS: dict[TaskName, tuple[str, ...]] = {
    "posture-image": ("resnet50", "vgg19", "efficientnet_b5", "resnet34"),
    "posture-keypoints": ("keypoint_mlp",),
    "flexion": ("flexion_net",),
    "gait": ("sconet_mt", "sconet"),  # silhouettes; skeleton_gait trains on keypoints (training/skeleton.py)
    "head-shift": ("head_shift_cnn", "resnet34"),
    "xray": ("sresnet34", "resnet34"),
}

# Image backbones that take `in_channels` and expose `cam_layer` (Grad-CAM).
IMAGE_ARCHS: frozenset[str] = frozenset({"resnet50", "vgg19", "efficientnet_b5", "resnet34", "sresnet34"})


def check_arch(arch: str, task: str | None = None) -> str:
    """Return `arch` if known (and valid for `task`), else raise ValueError with a suggestion."""
    allowed = TASK_ARCHS[check_task(task)] if task is not None else ARCHS
    if arch not in allowed:
        close = difflib.get_close_matches(arch, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = f" for task {task!r}" if task is not None else ""
        raise ValueError(f"unknown architecture {arch!r}{where}{hint}; choose from: {', '.join(allowed)}")
    return arch


def default_arch(task: str) -> str:
    return TASK_ARCHS[check_task(task)][0]


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    """Build architecture `arch` with its keyword arguments (e.g. num_classes, in_channels, width)."""
    factory = _factories()[check_arch(arch)]
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad arguments for architecture {arch!r}: {kwargs} ({exc})") from exc
