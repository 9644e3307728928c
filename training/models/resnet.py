"""ResNet-34 and ResNet-50 in torchvision's module and key layout, so an ImageNet state dict loads as is."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)  # stride on the 3x3 (ResNet v1.5, as torchvision)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BlockFactory = Callable[..., nn.Module]


class ResNet(nn.Module):
    """torchvision-compatible ResNet. `width` scales every channel count (1.0 = the published network)."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        width: float = 1.0,
        block_factory: BlockFactory | None = None,
    ) -> None:
        super().__init__()
        base = max(8, round(64 * width))
        self.inplanes = base
        self._block = block
        self._factory: BlockFactory = block_factory or block
        self.conv1 = nn.Conv2d(in_channels, base, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(base, layers[0])
        self.layer2 = self._make_layer(base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(base * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = base * 8 * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        expansion = self._block.expansion
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != planes * expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * expansion, stride), nn.BatchNorm2d(planes * expansion)
            )
        layers = [self._factory(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * expansion
        layers.extend(self._factory(self.inplanes, planes) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """Feature map of the last stage (the Grad-CAM target)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))

    @property
    def cam_layer(self) -> nn.Module:
        return self.layer4


def resnet34(num_classes: int = 1000, in_channels: int = 3, width: float = 1.0) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, width=width)


def resnet50(num_classes: int = 1000, in_channels: int = 3, width: float = 1.0) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, width=width)


def load_imagenet(model: nn.Module, path: str | Path, head_name: str = "fc") -> list[str]:
    """Load an ImageNet state dict (torchvision key layout) from the local file `path` into `model`.

    The classification head is kept from `model` when its shape differs (task-sized head); a 3-channel stem is
    averaged to one channel for grayscale models. Returns the keys that were not loaded. Raises ValueError
    naming the file when it is not a state dict or when a backbone key is missing or mis-shaped.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: cannot read an ImageNet state dict: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (mapping of tensor names), got {type(state).__name__}")
    own = model.state_dict()
    skipped: list[str] = []
    to_load: dict[str, Tensor] = {}
    for key, value in own.items():
        if key.endswith("weight_matrix"):  # S-ResNet additions: not in an ImageNet ResNet, start at zero
            skipped.append(key)
            continue
        source_key = key.replace(".conv.weight", ".weight")  # S-ResNet wraps each block conv
        if source_key in state:
            state[key] = state[source_key]
        if key not in state:
            if key.startswith(head_name + ".") or key.endswith("num_batches_tracked"):
                skipped.append(key)
                continue
            raise ValueError(f"{path}: key {key!r} missing (is this a state dict of the same architecture?)")
        src = state[key]
        if src.shape != value.shape:
            if key.startswith(head_name + "."):
                skipped.append(key)
                continue
            if src.dim() == 4 and value.dim() == 4 and value.shape[1] == 1 and src.shape[1] == 3:
                src = src.mean(dim=1, keepdim=True)
            else:
                raise ValueError(f"{path}: {key!r} has shape {tuple(src.shape)}, model needs {tuple(value.shape)}")
        to_load[key] = src
    model.load_state_dict(to_load, strict=False)
    log.info("loaded %d tensors from %s (kept %d task-sized head tensors)", len(to_load), path, len(skipped))
    return skipped
