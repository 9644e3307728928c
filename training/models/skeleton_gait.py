"""Skeleton gait model: a walk's COCO-17 keypoint sequence → negative / neutral / positive (beside ScoNet-MT).

Input [N, T, 17, 3]: image x, y in pixels and a score 0..1 per keypoint (ViTPose in Scoliosis1K-Pose, BlazePose
mapped by `contract.landmarks.blazepose_to_coco17` on the device; a keypoint with score 0 is missing). The
normalisation runs inside the network (plain tensor ops, exportable with static shapes), so the device feeds the
pixels it has: per frame the mid-hip is the origin; one scale per sequence, the score-weighted mean mid-shoulder
to mid-hip length, makes the walk's size and distance drop out while a frontal walk's approach stays visible as a
shrinking or growing trunk in the per-frame lengths. Per frame the network sees the 17 normalised points, their
scores, and the left-minus-right height and lateral difference of the eight COCO left/right pairs (shoulders,
hips, ... : where a scoliotic asymmetry shows), then three temporal convolutions (kernel 5, dilations 1/2/4),
mean and max pooling over time, and a linear layer. About 30 k parameters at width 48.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contract.landmarks import COCO17_LEFT_RIGHT

EPS = 1e-3
SEQUENCE_FRAMES = 32  # frames fed to the exported model, sampled evenly over the walk (static shape)
_LEFT = [a for a, _ in COCO17_LEFT_RIGHT]
_RIGHT = [b for _, b in COCO17_LEFT_RIGHT]
_SH, _HIP = (5, 6), (11, 12)
FEATURES = 17 * 3 + len(COCO17_LEFT_RIGHT) * 2


def skeleton_features(x: Tensor) -> Tensor:
    """[N, T, 17, 3] pixels + score → [N, T, FEATURES] normalised per-frame features."""
    xy, score = x[..., :2], x[..., 2:3].clamp(0.0, 1.0)
    seen = (score > 0).to(x.dtype)
    hip_w = seen[..., _HIP[0], :] * seen[..., _HIP[1], :]  # [N, T, 1]
    hip = 0.5 * (xy[..., _HIP[0], :] + xy[..., _HIP[1], :])
    sh = 0.5 * (xy[..., _SH[0], :] + xy[..., _SH[1], :])
    sh_w = seen[..., _SH[0], :] * seen[..., _SH[1], :] * hip_w
    trunk = torch.linalg.vector_norm(sh - hip, dim=-1, keepdim=True)  # [N, T, 1]
    scale = (trunk * sh_w).sum(dim=1, keepdim=True) / sh_w.sum(dim=1, keepdim=True).clamp(min=1.0)  # [N, 1, 1]
    scale = scale.clamp(min=EPS).unsqueeze(-1)  # [N, 1, 1, 1]
    rel = (xy - hip.unsqueeze(-2)) / scale * seen * hip_w.unsqueeze(-2)  # missing points and frames → 0
    pair_w = seen[..., _LEFT, :] * seen[..., _RIGHT, :]
    diff = (rel[..., _LEFT, :] - rel[..., _RIGHT, :]) * pair_w  # [N, T, 8, 2]
    # a pair's lateral difference flips sign between walking towards and away; its magnitude does not
    diff = torch.stack([diff[..., 0].abs(), diff[..., 1]], dim=-1)
    n, t = x.shape[0], x.shape[1]
    return torch.cat([rel.reshape(n, t, -1), score.reshape(n, t, -1), diff.reshape(n, t, -1)], dim=-1)


class SkeletonGaitNet(nn.Module):
    """Keypoint sequences [N, T, 17, 3] → class logits [N, num_classes]."""

    def __init__(self, num_classes: int = 3, width: int = 48, dropout: float = 0.2) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(FEATURES)
        layers: list[nn.Module] = []
        cin = FEATURES
        for dilation in (1, 2, 4):
            layers += [
                nn.Conv1d(cin, width, kernel_size=5, padding=2 * dilation, dilation=dilation, bias=False),
                nn.BatchNorm1d(width),
                nn.ReLU(inplace=True),
            ]
            cin = width
        self.temporal = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        f = skeleton_features(x).transpose(1, 2)  # [N, F, T]
        h = self.temporal(self.norm(f))
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return self.head(self.drop(pooled))


def skeleton_gait(num_classes: int = 3, width: int = 48) -> SkeletonGaitNet:
    return SkeletonGaitNet(num_classes=num_classes, width=width)
