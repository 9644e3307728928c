"""EfficientNet-B5 in torchvision's module and key layout (`features`, `avgpool`, `classifier`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never more than 10 % below `value` (the reference rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class ConvNormAct(nn.Sequential):
    """Conv (no bias) → BatchNorm → optional SiLU, keys `0`, `1` as torchvision's Conv2dNormActivation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, *, groups: int = 1, act: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3),
        ]
        if act:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class StochasticDepth(nn.Module):
    """Drops the residual branch per sample with probability `p` during training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, *, expand: int, kernel: int, stride: int, drop: float) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        hidden = make_divisible(cin * expand)
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(ConvNormAct(cin, hidden, 1))
        layers += [
            ConvNormAct(hidden, hidden, kernel, stride, groups=hidden),
            SqueezeExcitation(hidden, max(1, cin // 4)),
            ConvNormAct(hidden, cout, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


@dataclass(frozen=True)
class Stage:
    expand: int
    kernel: int
    stride: int
    cin: int
    cout: int
    layers: int


# EfficientNet-B0 stages; the compound scaling below widens and deepens them.
B0_STAGES: tuple[Stage, ...] = (
    Stage(1, 3, 1, 32, 16, 1),
    Stage(6, 3, 2, 16, 24, 2),
    Stage(6, 5, 2, 24, 40, 2),
    Stage(6, 3, 2, 40, 80, 3),
    Stage(6, 5, 1, 80, 112, 3),
    Stage(6, 5, 2, 112, 192, 4),
    Stage(6, 3, 1, 192, 320, 1),
)


class EfficientNet(nn.Module):
    def __init__(
        self,
        width_mult: float,
        depth_mult: float,
        dropout: float,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        stochastic_depth: float = 0.2,
    ) -> None:
        super().__init__()
        stem = make_divisible(32 * width_mult)
        features: list[nn.Module] = [ConvNormAct(in_channels, stem, 3, stride=2)]
        total = sum(math.ceil(s.layers * depth_mult) for s in B0_STAGES)
        index = 0
        cin = stem
        for stage in B0_STAGES:
            cout = make_divisible(stage.cout * width_mult)
            blocks: list[nn.Module] = []
            for i in range(math.ceil(stage.layers * depth_mult)):
                drop = stochastic_depth * index / total
                stride = stage.stride if i == 0 else 1
                blocks.append(MBConv(cin, cout, expand=stage.expand, kernel=stage.kernel, stride=stride, drop=drop))
                cin = cout
                index += 1
            features.append(nn.Sequential(*blocks))
        last = 4 * cin
        features.append(ConvNormAct(cin, last, 1))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = last
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[-1]


def efficientnet_b5(num_classes: int = 1000, in_channels: int = 3, width: float = 1.0) -> EfficientNet:
    """EfficientNet-B5 (width 1.6, depth 2.2, dropout 0.4). `width` < 1 shrinks it (and its depth) for CPU runs."""
    depth = 2.2 if width >= 1.0 else max(1.0, 2.2 * width)
    return EfficientNet(1.6 * width, depth, 0.4, num_classes=num_classes, in_channels=in_channels)
