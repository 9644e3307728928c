"""S-ResNet-34 (study 004): ResNet-34 whose residual blocks combine each convolution with a learnable weight
matrix, plus the cervical-region crop applied to an X-ray before the network.

The study describes "a learnable weight matrix integrated with convolutional operations within the residual
blocks to enhance the model's nonlinear representation"; here each 3x3 convolution output y is followed by
y + W·tanh(y), W a learnable C×C channel matrix initialised to zero (so training starts from plain ResNet-34 and
an ImageNet ResNet-34 state dict loads; the W matrices stay at zero).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.models.resnet import BasicBlock, ResNet, conv3x3


class WeightedConv(nn.Module):
    """3x3 convolution combined with a learnable C×C weight matrix: y + W·tanh(y)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = conv3x3(cin, cout, stride)
        self.weight_matrix = nn.Parameter(torch.zeros(cout, cout))

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        c = self.weight_matrix.shape[0]
        return y + F.conv2d(torch.tanh(y), self.weight_matrix.reshape(c, c, 1, 1))


class SBasicBlock(BasicBlock):
    """ResNet's basic block with both 3x3 convolutions weighted; same forward, same key names."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__(inplanes, planes, stride, downsample)
        self.conv1 = WeightedConv(inplanes, planes, stride)  # type: ignore[assignment]
        self.conv2 = WeightedConv(planes, planes)  # type: ignore[assignment]


def sresnet34(num_classes: int = 3, in_channels: int = 1, width: float = 1.0) -> ResNet:
    """S-ResNet-34; key layout of ResNet-34 with `convN.conv.weight` and `convN.weight_matrix` in the blocks."""
    return ResNet(
        BasicBlock, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, width=width,
        block_factory=SBasicBlock,
    )  # fmt: skip


def cervical_crop(image: np.ndarray, size: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Crop the cervical region of a grayscale X-ray [H, W] and resize it to [size, size] (float32, 0..1).

    `box` (x0, y0, x1, y1), e.g. from a detector or the labels file, is used when given. Otherwise the region is
    the bounding box of the bright (bone) pixels above the 75th intensity percentile, widened by 10 % and made
    square, which is where a detector would put it on a lateral cervical film.
    """
    import cv2

    if image.ndim != 2:
        raise ValueError(f"cervical_crop: expected a grayscale image [H, W], got shape {image.shape}")
    img = image.astype(np.float32)
    if img.max() > 1.0:
        img = img / 255.0
    h, w = img.shape
    if box is None:
        mask = img > np.percentile(img, 75)
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            x0, y0, x1, y1 = 0, 0, w, h
        else:
            x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    else:
        x0, y0, x1, y1 = box
    side = int(max(x1 - x0, y1 - y0) * 1.1) + 1
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
    x1, y1 = min(w, x0 + side), min(h, y0 + side)
    crop = img[y0:y1, x0:x1]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
