"""ScoNet and ScoNet-MT (Scoliosis1K): silhouette gait sequence → negative / neutral / positive.

Following OpenGait's ScoNet configuration: a ResNet-9-style per-frame backbone (3x3 stem, one BasicBlock per
stage, channels 64/128/256/512, strides 1/2/2/1, no max pool), temporal max pooling over the frames,
horizontal pooling into 16 parts (mean + max), separate per-part FCs (512 → 256), a BNNeck with per-part
classifiers on normalised features (cross-entropy with scale 16), and for ScoNet-MT a triplet loss (margin 0.2)
on the part embeddings. Input: silhouettes [N, T, 64, 44] in [0, 1]; 30 frames are sampled in training, the
whole sequence is used at test time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.models.resnet import BasicBlock, conv1x1

SIL_HEIGHT = 64
SIL_WIDTH = 44
TRAIN_FRAMES = 30
TEST_FRAME_LIMIT = 720  # as OpenGait's evaluator, so one very long walk cannot exhaust memory


class ResNet9(nn.Module):
    """Per-frame silhouette backbone: [B, 1, 64, 44] → [B, 512, 16, 11]."""

    def __init__(self, channels: tuple[int, ...] = (64, 128, 256, 512), strides: tuple[int, ...] = (1, 2, 2, 1)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.relu = nn.ReLU(inplace=True)
        stages: list[nn.Module] = []
        cin = channels[0]
        for cout, stride in zip(channels, strides, strict=True):
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
            stages.append(BasicBlock(cin, cout, stride, down))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = cin

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class SeparateFCs(nn.Module):
    """One linear map per horizontal part: [N, C, P] → [N, C_out, P]."""

    def __init__(self, parts: int, cin: int, cout: int) -> None:
        super().__init__()
        self.fc_bin = nn.Parameter(nn.init.xavier_uniform_(torch.empty(parts, cin, cout)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("ncp,pco->nop", x, self.fc_bin)


class SeparateBNNecks(nn.Module):
    """BNNeck: BatchNorm over all part features, then per-part cosine classifiers: → (features, logits [N, K, P])."""

    def __init__(self, parts: int, cin: int, classes: int) -> None:
        super().__init__()
        self.parts = parts
        self.bn1d = nn.BatchNorm1d(cin * parts)
        self.fc_bin = nn.Parameter(nn.init.xavier_uniform_(torch.empty(parts, cin, classes)))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n, c, p = x.shape
        feature = self.bn1d(x.reshape(n, c * p)).reshape(n, c, p)
        logits = torch.einsum("ncp,pck->nkp", F.normalize(feature, dim=1), F.normalize(self.fc_bin, dim=1))
        return feature, logits


class ScoNet(nn.Module):
    """ScoNet / ScoNet-MT network. `forward` returns class logits [N, 3] (mean over parts, scaled)."""

    def __init__(
        self,
        num_classes: int = 3,
        *,
        parts: int = 16,
        embed_dim: int = 256,
        channels: tuple[int, ...] = (64, 128, 256, 512),
        multitask: bool = False,
        logit_scale: float = 16.0,
    ) -> None:
        super().__init__()
        self.multitask = multitask
        self.parts = parts
        self.logit_scale = logit_scale
        self.backbone = ResNet9(tuple(channels))
        self.fcs = SeparateFCs(parts, self.backbone.out_channels, embed_dim)
        self.bnnecks = SeparateBNNecks(parts, embed_dim, num_classes)

    def embed(self, sils: Tensor) -> tuple[Tensor, Tensor]:
        """Silhouettes [N, T, H, W] → (part embeddings [N, 256, P], part logits [N, K, P])."""
        n, t, h, w = sils.shape
        frames = self.backbone(sils.reshape(n * t, 1, h, w))
        c, fh, fw = frames.shape[1:]
        pooled = frames.reshape(n, t, c, fh, fw).amax(dim=1)  # temporal max pooling
        strips = pooled.reshape(n, c, self.parts, -1)  # horizontal pooling: mean + max per part
        parts = strips.mean(dim=-1) + strips.amax(dim=-1)
        embeddings = self.fcs(parts)
        _, logits = self.bnnecks(embeddings)
        return embeddings, logits * self.logit_scale

    def forward(self, sils: Tensor) -> Tensor:
        return self.embed(sils)[1].mean(dim=-1)


def batch_all_triplet_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.2) -> Tensor:
    """OpenGait-style triplet loss per part, averaged over the non-zero triplets. embeddings: [N, C, P]."""
    x = embeddings.permute(2, 0, 1)  # [P, N, C]
    dist = torch.cdist(x, x)  # [P, N, N]
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos = same & ~eye
    neg = ~same
    valid = pos[:, :, None] & neg[:, None, :]  # anchor, positive, negative
    if not bool(valid.any()):
        return embeddings.sum() * 0.0
    ap = dist[:, :, :, None]
    an = dist[:, :, None, :]
    loss = F.relu(ap - an + margin)[:, valid]
    nonzero = (loss > 0).sum()
    return loss.sum() / nonzero.clamp(min=1)


def sample_frames(seq: Tensor, frames: int, generator: torch.Generator) -> Tensor:
    """Random `frames` frames of one sequence [T, H, W] (unordered, with replacement when T is short)."""
    t = seq.shape[0]
    if t >= frames:
        index = torch.randperm(t, generator=generator)[:frames]
    else:
        index = torch.randint(0, t, (frames,), generator=generator)
    return seq[index]


def sconet(num_classes: int = 3, width: float = 1.0) -> ScoNet:
    channels = tuple(max(8, round(c * width)) for c in (64, 128, 256, 512))
    return ScoNet(num_classes=num_classes, channels=channels, embed_dim=max(16, round(256 * width)))


def sconet_mt(num_classes: int = 3, width: float = 1.0) -> ScoNet:
    model = sconet(num_classes=num_classes, width=width)
    model.multitask = True
    return model
