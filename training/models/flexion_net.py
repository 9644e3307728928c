"""BACK-to-MOVE (study 001): spinal flexion kinematics from a keypoint sequence → feed-forward net, MCI vs MI.

Input: a forward-flexion sequence [N, T, K, C>=2] of image keypoints (33 BlazePose points, optionally followed
by the generator's spine chain pelvis, lumbar, thoracic, C7, head), resampled to a fixed T. Per frame the model
measures segment angles in the sagittal plane (thigh, trunk, neck, and with the spine chain the lumbar and
thoracic segments); per sequence it derives range of motion, peak angle, mean and peak angular velocity and
time to peak of each, and the lumbar / thoracic / hip contributions to the trunk range. Optional patient-reported
outcome measures (PROMs) are appended to the kinematic features.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contract.landmarks import NUM_LANDMARKS, Landmark

EPS = 1e-6
SPINE_CHAIN = ("pelvis", "lumbar", "thoracic", "c7", "head")
SERIES_FEATURES = ("rom", "peak", "mean_velocity", "peak_velocity", "time_to_peak")


def _mid(kp: Tensor, a: int, b: int) -> Tensor:
    return 0.5 * (kp[..., a, :] + kp[..., b, :])


def _incline(top: Tensor, bottom: Tensor, facing: Tensor) -> Tensor:
    d = top - bottom
    return torch.atan2(d[..., 0] * facing, -d[..., 1])


def angle_series(seq: Tensor) -> Tensor:
    """[N, T, K, C] → sagittal angles [N, T, A] (rad): thigh, trunk, hip, neck (+ lumbar, thoracic with the spine)."""
    kp = seq[..., :2]
    shoulders = _mid(kp, Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER)
    hips = _mid(kp, Landmark.LEFT_HIP, Landmark.RIGHT_HIP)
    knees = _mid(kp, Landmark.LEFT_KNEE, Landmark.RIGHT_KNEE)
    ears = _mid(kp, Landmark.LEFT_EAR, Landmark.RIGHT_EAR)
    # Facing from the first frame (upright): toes point forward of the heels.
    toes = _mid(kp, Landmark.LEFT_FOOT_INDEX, Landmark.RIGHT_FOOT_INDEX)[:, 0, 0]
    heels = _mid(kp, Landmark.LEFT_HEEL, Landmark.RIGHT_HEEL)[:, 0, 0]
    d = toes - heels
    facing = torch.where(d >= 0, torch.ones_like(d), -torch.ones_like(d))[:, None]
    thigh = _incline(hips, knees, facing)
    trunk = _incline(shoulders, hips, facing)
    neck = _incline(ears, shoulders, facing)
    angles = [thigh, trunk, trunk - thigh, neck - trunk]
    if seq.shape[-2] >= NUM_LANDMARKS + len(SPINE_CHAIN):
        pelvis, lumbar, thoracic, c7 = (kp[..., NUM_LANDMARKS + i, :] for i in range(4))
        lumbar_seg = _incline(lumbar, pelvis, facing)
        thoracic_seg = _incline(c7, thoracic, facing)
        angles += [lumbar_seg - thigh, thoracic_seg - lumbar_seg, _incline(thoracic, lumbar, facing) - lumbar_seg]
    return torch.stack(angles, dim=-1)


def kinematic_features(seq: Tensor, fps: float = 30.0) -> Tensor:
    """[N, T, K, C] → [N, F]: per angle ROM, peak, mean/peak velocity, time to peak; then contribution ratios."""
    a = angle_series(seq)  # [N, T, A]
    t = a.shape[1]
    rom = a.amax(dim=1) - a.amin(dim=1)
    peak = a.amax(dim=1)
    vel = (a[:, 1:] - a[:, :-1]) * fps
    mean_vel = vel.abs().mean(dim=1)
    peak_vel = vel.abs().amax(dim=1)
    time_to_peak = a.argmax(dim=1).to(a.dtype) / max(t - 1, 1)
    trunk_rom = rom[:, 1:2].clamp(min=EPS)
    ratios = rom[:, 2:] / (rom[:, 2:].abs() + trunk_rom)  # hip, neck (+ lumbar, thoracic) share of the movement
    return torch.cat([rom, peak, mean_vel, peak_vel, time_to_peak, ratios], dim=1)


def feature_count(keypoints: int) -> int:
    angles = 7 if keypoints >= NUM_LANDMARKS + len(SPINE_CHAIN) else 4
    return angles * len(SERIES_FEATURES) + (angles - 2)


class FlexionNet(nn.Module):
    """Keypoint sequence [N, T, K, C] (+ PROMs [N, P]) → logits [N, 2] (MCI, MI)."""

    def __init__(
        self, num_classes: int = 2, keypoints: int = NUM_LANDMARKS, prom_inputs: int = 0, hidden: int = 64
    ) -> None:
        super().__init__()
        self.prom_inputs = prom_inputs
        n = feature_count(keypoints) + prom_inputs
        self.norm = nn.BatchNorm1d(n)
        self.net = nn.Sequential(
            nn.Linear(n, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, seq: Tensor, prom: Tensor | None = None) -> Tensor:
        features = kinematic_features(seq)
        if self.prom_inputs:
            if prom is None:
                raise ValueError(f"this FlexionNet was built with {self.prom_inputs} PROM inputs; none were given")
            features = torch.cat([features, prom], dim=1)
        return self.net(self.norm(features))


def flexion_net(num_classes: int = 2, keypoints: int = NUM_LANDMARKS, prom_inputs: int = 0) -> FlexionNet:
    return FlexionNet(num_classes=num_classes, keypoints=keypoints, prom_inputs=prom_inputs)
