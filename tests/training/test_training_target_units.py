"""A regressor is trained on standardised targets; what it saves (and every export of it) outputs the target's
own units, so a device reading the exported model gets head widths, not z-scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from training.checkpoint import load_checkpoint
from training.models.head_shift import head_shift_cnn
from training.models.inputs import prepare
from training.train import TrainConfig, in_target_units, run_training

torch.set_num_threads(1)


def test_folding_equals_unstandardising_the_output() -> None:
    torch.manual_seed(0)
    model = head_shift_cnn(outputs=2, width=0.25).eval()
    x = torch.rand(4, 3, 64, 64)
    mean, std = np.array([0.1, -0.3], np.float32), np.array([0.2, 0.05], np.float32)
    folded = in_target_units(model, mean, std, x)
    with torch.no_grad():
        expected = model(x) * torch.from_numpy(std) + torch.from_numpy(mean)
        torch.testing.assert_close(folded(x), expected, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(model(x), expected)  # the original is left as it was
    assert type(folded) is type(model)  # same architecture: the checkpoint reloads with its own arch name


def test_a_model_whose_last_linear_is_not_the_output_is_refused() -> None:
    model = nn.Sequential(nn.Linear(4, 2), nn.Sigmoid())
    with pytest.raises(ValueError, match="last linear layer is not its output"):
        in_target_units(model, np.array([1.0, 2.0]), np.array([3.0, 4.0]), torch.rand(2, 4))


def test_trained_head_shift_checkpoint_predicts_in_head_widths(tmp_path: Path) -> None:
    from training.data import load_task_data

    cfg = TrainConfig(
        task="head-shift", data="synthetic:24", folds=2, epochs=1, width="small", batch_size=8,
        bootstrap_rounds=50, final_fit=True, progress=False, threads=1, cam_examples=0,
    )  # fmt: skip
    data = load_task_data("head-shift", cfg.data, cfg.seed)
    run_training(cfg, tmp_path, data=data)
    model, _meta = load_checkpoint(tmp_path / "model.pt")
    prepared = prepare(data, width=cfg.width)
    y = np.asarray(prepared.y, np.float64)
    # One epoch barely moves a freshly initialised network: standardised outputs would sit near 0 with spread
    # ~1 and the saved model would be off by the targets' mean; in head widths the outputs sit on the targets.
    assert isinstance(prepared.x, torch.Tensor)
    with torch.no_grad():
        out = model.eval()(prepared.x).numpy()
    assert out.shape == y.shape
    assert np.abs(out.mean(axis=0) - y.mean(axis=0)).max() < 0.5 * y.std(axis=0).max() + 1e-3
    assert out.std(axis=0).max() < 3 * y.std(axis=0).max()
