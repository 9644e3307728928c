"""Architectures: published parameter counts, forward shapes, checkpoint and ImageNet state-dict loading, Grad-CAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.checkpoint import load_checkpoint, save_checkpoint
from training.models.registry import build_model

torch.set_num_threads(1)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("arch", "expected"),
    [("resnet50", 25_557_032), ("vgg19", 143_667_240), ("efficientnet_b5", 30_389_784), ("resnet34", 21_797_672)],
)
def test_published_parameter_counts_at_1000_classes(arch: str, expected: int) -> None:
    assert count(build_model(arch, num_classes=1000)) == expected


def test_task_head_replaces_only_the_classifier() -> None:
    full = count(build_model("resnet50", num_classes=1000))
    two = count(build_model("resnet50", num_classes=2))
    assert full - two == 998 * 2048 + 998


@pytest.mark.parametrize(
    ("arch", "kwargs", "x", "out"),
    [
        ("resnet34", {"num_classes": 2, "width": 0.125}, (2, 3, 32, 32), (2, 2)),
        ("resnet50", {"num_classes": 3, "width": 0.125}, (2, 3, 32, 32), (2, 3)),
        ("vgg19", {"num_classes": 2, "width": 0.125}, (2, 3, 32, 32), (2, 2)),
        ("efficientnet_b5", {"num_classes": 2, "width": 0.125}, (2, 3, 32, 32), (2, 2)),
        ("sresnet34", {"num_classes": 3, "in_channels": 1, "width": 0.125}, (2, 1, 32, 32), (2, 3)),
        ("head_shift_cnn", {"outputs": 2, "width": 0.25}, (2, 3, 32, 32), (2, 2)),
        ("keypoint_mlp", {"num_classes": 2}, (4, 33, 3), (4, 2)),
        ("flexion_net", {"num_classes": 2}, (3, 16, 33, 2), (3, 2)),
        ("flexion_net", {"num_classes": 2, "keypoints": 38}, (3, 16, 38, 2), (3, 2)),
        ("sconet", {"num_classes": 3, "width": 0.125}, (2, 5, 64, 44), (2, 3)),
        ("sconet_mt", {"num_classes": 3, "width": 0.125}, (2, 7, 64, 44), (2, 3)),
    ],
)
def test_forward_shapes(arch: str, kwargs: dict, x: tuple[int, ...], out: tuple[int, ...]) -> None:
    model = build_model(arch, **kwargs).eval()
    with torch.no_grad():
        y = model(torch.rand(*x))
    assert tuple(y.shape) == out
    assert torch.isfinite(y).all()


def test_sconet_takes_any_sequence_length_and_has_16_parts() -> None:
    from training.models.sconet import sconet_mt

    model = sconet_mt(num_classes=3, width=0.125).eval()
    with torch.no_grad():
        emb, logits = model.embed(torch.rand(1, 3, 64, 44))
        long = model(torch.rand(1, 50, 64, 44))
    assert emb.shape[-1] == 16 and logits.shape == (1, 3, 16)
    assert long.shape == (1, 3)


def test_flexion_net_requires_prom_when_built_with_it() -> None:
    model = build_model("flexion_net", num_classes=2, prom_inputs=3).eval()
    seq = torch.rand(2, 16, 33, 2)
    assert model(seq, torch.rand(2, 3)).shape == (2, 2)
    with pytest.raises(ValueError, match="PROM"):
        model(seq)


def test_unknown_arch_suggests_a_name() -> None:
    with pytest.raises(ValueError, match="did you mean 'resnet50'"):
        build_model("resnet-50")


def test_checkpoint_round_trip_reproduces_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    kwargs = {"num_classes": 3, "in_channels": 1, "width": 0.125}
    model = build_model("sresnet34", **kwargs).eval()
    spec = {"name": "image", "shape": [-1, 1, 32, 32], "dtype": "float32", "layout": "NCHW"}
    path = save_checkpoint(
        tmp_path / "m.pt", model=model, task="xray", arch="sresnet34", model_kwargs=kwargs,
        label_map={"normal": 0, "straightened": 1, "reversed": 2}, input_spec=spec,
        normalisation={"mean": [0.5], "std": [0.25]}, data_sha256="0" * 64, metrics={"auc": 0.9},
    )  # fmt: skip
    loaded, meta = load_checkpoint(path)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert meta["format"] == "edgescreen-checkpoint/1"
    assert meta["label_map"]["reversed"] == 2 and meta["input_spec"] == spec
    assert "state_dict" not in meta


def test_load_checkpoint_rejects_foreign_and_corrupt_files(tmp_path: Path) -> None:
    torch.save({"format": "other/1"}, tmp_path / "a.pt")
    with pytest.raises(ValueError, match="expected format"):
        load_checkpoint(tmp_path / "a.pt")
    (tmp_path / "b.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"b\.pt"):
        load_checkpoint(tmp_path / "b.pt")
    with pytest.raises(ValueError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_imagenet_state_dict_loads_into_task_sized_models(tmp_path: Path) -> None:
    from training.models.resnet import load_imagenet, resnet34, resnet50
    from training.models.sresnet import sresnet34

    torch.manual_seed(1)
    imagenet = resnet34(num_classes=1000, width=0.25)
    torch.save(imagenet.state_dict(), tmp_path / "resnet34.pth")
    task = resnet34(num_classes=2, width=0.25)
    skipped = load_imagenet(task, tmp_path / "resnet34.pth")
    assert set(skipped) == {"fc.weight", "fc.bias"}
    assert torch.equal(task.state_dict()["layer3.1.conv2.weight"], imagenet.state_dict()["layer3.1.conv2.weight"])
    # S-ResNet-34 (grayscale) takes the same file: block convs map over, the stem is averaged to one channel
    sres = sresnet34(num_classes=3, in_channels=1, width=0.25)
    load_imagenet(sres, tmp_path / "resnet34.pth")
    assert torch.equal(sres.state_dict()["layer2.0.conv1.conv.weight"], imagenet.state_dict()["layer2.0.conv1.weight"])
    stem = imagenet.state_dict()["conv1.weight"].mean(1, keepdim=True)
    assert torch.allclose(sres.state_dict()["conv1.weight"], stem)
    wrong = resnet50(num_classes=2, width=0.25)
    with pytest.raises(ValueError, match=r"resnet34\.pth"):
        load_imagenet(wrong, tmp_path / "resnet34.pth")


def test_grad_cam_highlights_the_region_the_class_depends_on(tmp_path: Path) -> None:
    """Feature channel 0 sees the image's left half, channel 1 the right; class 1 reads channel 0 only."""
    from torch import nn

    from training.models.cam import grad_cam, save_overlay

    class Halves(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            left = torch.zeros_like(x)
            left[..., : x.shape[-1] // 2] = 1
            return torch.cat([x * left, x * (1 - left)], dim=1)

    class TwoHalfNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cam_layer = Halves()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.cam_layer(x).mean(dim=(2, 3))
            return torch.stack([f[:, 1], f[:, 0]], dim=1)

    img = torch.rand(1, 1, 16, 16) + 0.1
    cam = grad_cam(TwoHalfNet(), img, target=torch.tensor([1]))[0]
    assert cam[:, :8].mean() > 0.5 and cam[:, 8:].max() == 0
    path = save_overlay(img[0, 0].numpy(), cam.numpy(), tmp_path / "cam.png", title="left")
    import matplotlib.image as mpimg

    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 50
    assert np.ptp(pixels[..., 0]) > 0.2
