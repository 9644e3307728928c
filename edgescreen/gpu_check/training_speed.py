"""Step `training`: each published-size network trained for a few epochs on generated tensors by the project's
own Trainer (training.train: the same batching, augmentation, losses, AdamW and per-epoch validation as a
cross-validation fold), to measure samples per second and peak GPU memory.

The data are random tensors of the task's input shape with random labels: speed and memory do not depend on
the values. One epoch visits every sample of the fit once (80 % trained, 20 % validated, as in a fold); the
first epoch (allocations, kernel selection) is left out of the rate.
"""

from __future__ import annotations

import resource
import time
from typing import Any

import numpy as np

# network → (task, channels, classes); images at the task's published size (training.models.inputs)
NETWORKS: dict[str, tuple[str, int, int]] = {
    "resnet50": ("posture-image", 3, 2),
    "vgg19": ("posture-image", 3, 2),
    "efficientnet_b5": ("posture-image", 3, 2),
    "sconet_mt": ("gait", 1, 3),
    "sresnet34": ("xray", 1, 3),
}
WALK_FRAMES = 60  # generated walks: two seconds at 30 fps, of which training samples `frames`


def _generated(network: str, samples: int, size: int, frames: int, seed: int) -> Any:
    import torch

    from training.models.inputs import Prepared
    from training.models.sconet import SIL_HEIGHT, SIL_WIDTH

    task, channels, classes = NETWORKS[network]
    gen = torch.Generator().manual_seed(seed)
    y = np.random.default_rng(seed).integers(0, classes, samples).astype(np.int64)
    if task == "gait":
        walks = [
            (torch.rand(max(frames, WALK_FRAMES), SIL_HEIGHT, SIL_WIDTH, generator=gen) > 0.5).float()
            for _ in range(samples)
        ]
        subjects = [f"s{i // 2}" for i in range(samples)]  # two walks a subject, as the triplet loss needs
        spec = {"name": "silhouettes", "shape": [-1, -1, SIL_HEIGHT, SIL_WIDTH], "layout": "NTHW"}
        return Prepared(walks, y, subjects, spec, None, {"num_classes": classes}, "generated"), f"{frames}×64×44"
    x = torch.rand(samples, channels, size, size, generator=gen)
    spec = {"name": "image", "shape": [-1, channels, size, size], "layout": "NCHW"}
    kwargs = {"num_classes": classes, "in_channels": channels}
    return Prepared(
        x, y, [f"s{i}" for i in range(samples)], spec, None, kwargs, "generated"
    ), f"{channels}×{size}×{size}"


def train_speed(
    network: str,
    *,
    device: str = "cuda",
    epochs: int = 3,
    samples: int = 192,
    batch_size: int = 32,
    size: int = 224,
    frames: int = 30,
    width: float = 1.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Train `network` for `epochs` epochs on `samples` generated inputs; samples/s over the epochs after the first."""
    import torch

    from training.progress import Progress
    from training.train import TrainConfig, Trainer

    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; networks: {', '.join(NETWORKS)}")
    if epochs < 2:
        raise ValueError("at least 2 epochs: the first one is left out of the rate")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"torch {torch.__version__} sees no CUDA device (a CPU-only torch wheel?)")
    task = NETWORKS[network][0]
    prepared, input_shape = _generated(network, samples, size, frames, seed)
    kwargs = {**prepared.model_kwargs, "width": width}
    cfg = TrainConfig(
        task=task, data="synthetic", arch=network, epochs=epochs, batch_size=batch_size, device=device,
        patience=epochs + 1, seed=seed, progress=False, train_frames=frames, width_factor=width,
    )  # fmt: skip

    class EpochClock(Progress):
        """The Trainer reports each finished epoch here; keep the time."""

        def __init__(self) -> None:
            super().__init__(epochs, network, enabled=False)
            self.marks: list[float] = []

        def update(self, steps: int = 1, note: str = "") -> None:
            if steps == 1:
                self.marks.append(time.perf_counter())

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(cfg, network, prepared, kwargs)
    clock = EpochClock()
    fit_idx = np.arange(samples)
    started = time.perf_counter()
    trainer.fit(fit_idx, seed, clock)
    if device == "cuda":
        torch.cuda.synchronize()
    if len(clock.marks) < 2:
        raise RuntimeError(f"{network}: only {len(clock.marks)} epoch(s) finished")
    epoch_s = float(np.mean(np.diff(clock.marks)))
    # the fit's inner split trains on about 80 % of the samples, in batches of two or more (BatchNorm)
    trained = int(samples * 0.8)
    steps_per_epoch = sum(1 for start in range(0, trained, batch_size) if min(batch_size, trained - start) > 1)
    figures: dict[str, Any] = {
        "network": network,
        "task": task,
        "input": input_shape,
        "width": width,
        "batch_size": batch_size,
        "samples": samples,
        "epochs": epochs,
        "steps": steps_per_epoch * epochs,
        "first_epoch_s": round(clock.marks[0] - started, 2),
        "epoch_s": epoch_s,
        "samples_per_s": samples / epoch_s,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
    }
    if device == "cuda":
        figures["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        figures["peak_gpu_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures
