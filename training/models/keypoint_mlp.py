"""Keypoint posture classifier: posture metrics from 33 BlazePose keypoints → small MLP.

The metrics are computed inside the model (plain tensor ops, exportable to ONNX), so a device feeds the
keypoints of one frame (or a window average) and gets class logits: the light alternative to the image models.
All metrics are scale-free (lengths over the torso length) and mirrored so that "forward" is positive whichever
way the person faces in a side view.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contract.landmarks import Landmark

EPS = 1e-6
POSTURE_METRICS: tuple[str, ...] = (
    "trunk_lean",
    "neck_inclination",
    "craniovertebral_angle",
    "head_forward_offset",
    "head_height",
    "nose_forward_offset",
    "head_tilt",
    "shoulder_asymmetry",
    "ear_lateral_offset",
    "shoulder_width",
    "hip_width",
    "head_pitch",
)


def _mid(kp: Tensor, a: int, b: int) -> Tensor:
    return 0.5 * (kp[..., a, :] + kp[..., b, :])


def _incline(top: Tensor, bottom: Tensor, facing: Tensor) -> Tensor:
    """Angle (rad) of bottom→top from the image vertical (y down), forward positive."""
    d = top - bottom
    return torch.atan2(d[..., 0] * facing, -d[..., 1])


def posture_metrics(keypoints: Tensor) -> Tensor:
    """Keypoints [..., 33, C>=2] (x, y image coordinates, y down) → metrics [..., len(POSTURE_METRICS)]."""
    kp = keypoints[..., :2]
    shoulders = _mid(kp, Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER)
    hips = _mid(kp, Landmark.LEFT_HIP, Landmark.RIGHT_HIP)
    ears = _mid(kp, Landmark.LEFT_EAR, Landmark.RIGHT_EAR)
    nose = kp[..., Landmark.NOSE, :]
    torso = torch.linalg.vector_norm(shoulders - hips, dim=-1).clamp(min=EPS)
    # Facing direction: the nose lies in front of the ears in a side view (sign of the x difference).
    dx = nose[..., 0] - ears[..., 0]
    facing = torch.where(dx >= 0, torch.ones_like(dx), -torch.ones_like(dx))
    trunk = _incline(shoulders, hips, facing)
    neck = _incline(ears, shoulders, facing)
    # Craniovertebral angle: ear–C7 line against the horizontal (smaller = more forward head).
    d = ears - shoulders
    cva = torch.atan2(-d[..., 1], (d[..., 0] * facing).abs() + EPS)
    head_forward = d[..., 0] * facing / torso
    head_height = -d[..., 1] / torso
    nose_forward = (nose[..., 0] - shoulders[..., 0]) * facing / torso
    le, re = kp[..., Landmark.LEFT_EAR, :], kp[..., Landmark.RIGHT_EAR, :]
    tilt = torch.atan2(re[..., 1] - le[..., 1], (re[..., 0] - le[..., 0]).abs() + EPS)
    ls, rs = kp[..., Landmark.LEFT_SHOULDER, :], kp[..., Landmark.RIGHT_SHOULDER, :]
    shoulder_asym = (ls[..., 1] - rs[..., 1]) / torso
    ear_lateral = (ears[..., 0] - shoulders[..., 0]) / torso
    shoulder_width = torch.linalg.vector_norm(ls - rs, dim=-1) / torso
    lh, rh = kp[..., Landmark.LEFT_HIP, :], kp[..., Landmark.RIGHT_HIP, :]
    hip_width = torch.linalg.vector_norm(lh - rh, dim=-1) / torso
    pitch = _incline(nose, ears, facing)
    return torch.stack(
        [trunk, neck, cva, head_forward, head_height, nose_forward, tilt, shoulder_asym, ear_lateral,
         shoulder_width, hip_width, pitch],
        dim=-1,
    )  # fmt: skip


class KeypointMLP(nn.Module):
    """Keypoints [N, 33, C] → posture metrics → BatchNorm (learned standardisation) → MLP → logits [N, K]."""

    def __init__(self, num_classes: int = 2, hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        n = len(POSTURE_METRICS)
        self.norm = nn.BatchNorm1d(n)
        self.mlp = nn.Sequential(
            nn.Linear(n, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2),
            nn.ReLU(inplace=True),
            nn.Linear(hidden // 2, num_classes),
        )

    def forward(self, keypoints: Tensor) -> Tensor:
        return self.mlp(self.norm(posture_metrics(keypoints)))


def keypoint_mlp(num_classes: int = 2, hidden: int = 64) -> KeypointMLP:
    return KeypointMLP(num_classes=num_classes, hidden=hidden)
