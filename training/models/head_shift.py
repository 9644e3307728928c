"""Head lateral / sagittal shift regressor: a small CNN trained on synthetic images (study 002).

The shift is a position (the head's place in a square the trunk frames), so the head keeps where things are: the
last feature map is pooled to a POOLED x POOLED grid and flattened, not averaged to one vector, which would leave
position only to the padding's edge effects (a first version did, and reached r 0.26 on 600 avatar images)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

POOLED = 4  # side of the pooled grid the regression head reads


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class HeadShiftCNN(nn.Module):
    """Image [N, 3, H, W] → [N, 2]: lateral and sagittal head shift (units of the training targets)."""

    def __init__(self, outputs: int = 2, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        chans = [max(8, round(c * width)) for c in (32, 64, 128, 256)]
        layers: list[nn.Module] = []
        cin = in_channels
        for cout in chans:
            layers.append(_block(cin, cout))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(POOLED)
        self.head = nn.Sequential(
            nn.Dropout(0.2), nn.Linear(cin * POOLED * POOLED, 64), nn.ReLU(inplace=True), nn.Linear(64, outputs)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.flatten(self.avgpool(self.features(x)), 1))

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[-1]


def head_shift_cnn(outputs: int = 2, in_channels: int = 3, width: float = 1.0) -> HeadShiftCNN:
    return HeadShiftCNN(outputs=outputs, in_channels=in_channels, width=width)
