"""`edgescreen train --nproc N`: cross-validation under torch.distributed (gloo on CPU), real processes.

The fits fan out over the processes, and a fit shared by several processes is trained data-parallel; either
way the result matches the single-process run on the same seed within tolerance (docs/training.md says what
is bit-identical).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from training.distributed import DataParallel, Group, plan

TRAIN = ["train", "--task", "flexion", "--data", "synthetic:120", "--folds", "2", "--epochs", "3", "--seed", "1"]
AUC_TOLERANCE = 0.05


def _train(out: Path, *extra: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    cmd = [sys.executable, "-m", "edgescreen", *TRAIN, "--no-progress", "--out", str(out), *extra]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((out / "report.json").read_text()), run


# ---- who trains what --------------------------------------------------------------------------------------


def test_fewer_processes_than_fits_deal_the_fits_round_robin() -> None:
    assert plan(2, 3) == [Group((0,), (0, 2)), Group((1,), (1,))]
    assert plan(3, 3) == [Group((0,), (0,)), Group((1,), (1,)), Group((2,), (2,))]
    assert plan(1, 5) == [Group((0,), (0, 1, 2, 3, 4))]


def test_more_processes_than_fits_share_each_fit_in_groups_that_differ_by_at_most_one() -> None:
    for world, jobs in [(3, 2), (4, 3), (8, 3), (5, 2), (16, 5)]:
        groups = plan(world, jobs)
        assert [g.jobs for g in groups] == [(j,) for j in range(jobs)]
        ranks = [r for g in groups for r in g.ranks]
        assert ranks == list(range(world)), (world, jobs)  # every process in exactly one group, contiguous
        sizes = [len(g.ranks) for g in groups]
        assert max(sizes) - min(sizes) <= 1, (world, jobs, sizes)


# ---- data-parallel step: two real gloo processes ----------------------------------------------------------


def _dp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
        x, y = torch.randn(5, 4, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 1, 0, 1])
        hooks = DataParallel(dist.group.WORLD, (0, 1), rank, torch.device("cpu"))
        batches = hooks.batches([torch.arange(5).numpy(), torch.arange(3).numpy()])  # the 3-sample batch is skipped
        share = torch.as_tensor(batches[0])
        model.train()
        nn.functional.cross_entropy(model(x[share]), y[share]).backward()
        hooks.after_backward(model)
        hooks.after_step(model)
        agreed = hooks.agree(float(rank + 10))
        torch.save(
            {
                "shares": [b.tolist() for b in batches],
                "grads": [p.grad.clone() for p in model.parameters() if p.grad is not None],
                "running_mean": model.get_buffer("1.running_mean").clone(),
                "agreed": agreed,
            },
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_data_parallel_step_averages_gradients_and_batchnorm_statistics_over_the_group(tmp_path: Path) -> None:
    mp.spawn(_dp_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    # contiguous, unequal shares of the one batch big enough to split
    assert r0["shares"] == [[0, 1, 2]] and r1["shares"] == [[3, 4]]
    # the gradients every process applies are the same, and are the size-weighted mean of the shares' gradients
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    x, y = torch.randn(5, 4, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 1, 0, 1])
    expected: list[torch.Tensor] = []
    means = []
    for share, weight in ((slice(0, 3), 3 / 5), (slice(3, 5), 2 / 5)):
        copy = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
        copy.load_state_dict(reference.state_dict())
        nn.functional.cross_entropy(copy(x[share]), y[share]).backward()
        grads = [weight * p.grad for p in copy.parameters() if p.grad is not None]
        expected = grads if not expected else [a + b for a, b in zip(expected, grads, strict=True)]
        means.append(copy.get_buffer("1.running_mean").clone())
    for a, b, e in zip(r0["grads"], r1["grads"], expected, strict=True):
        assert torch.equal(a, b)
        assert torch.allclose(a, e, atol=1e-6)
    assert torch.equal(r0["running_mean"], r1["running_mean"])
    assert torch.allclose(r0["running_mean"], (means[0] + means[1]) / 2, atol=1e-6)
    # early stopping acts on the group leader's validation loss in every process
    assert r0["agreed"] == r1["agreed"] == 10.0


# ---- the command ------------------------------------------------------------------------------------------


def test_two_processes_match_the_single_process_result(tmp_path: Path) -> None:
    single, _ = _train(tmp_path / "single", "--threads", "1")
    multi, run = _train(tmp_path / "multi", "--nproc", "2")
    # the fits fanned out: rank 0 the first fold and the final fit, rank 1 the second fold
    assert "rank 0 of 2: fit(s) fold 1, final fit" in run.stderr and "rank 1 of 2: fit(s) fold 2" in run.stderr
    assert abs(multi["pooled"]["auc"] - single["pooled"]["auc"]) <= AUC_TOLERANCE
    assert [f["n_test"] for f in multi["folds"]] == [f["n_test"] for f in single["folds"]]
    assert multi["data"]["sha256"] == single["data"]["sha256"] and "final_fit" in multi
    assert (tmp_path / "multi" / "model.pt").is_file()
    assert run.stdout.count("report.md") == 1, run.stdout  # one process tells
    # each fit trained whole by one process: at the single run's thread count, the very same numbers
    same, _ = _train(tmp_path / "same-threads", "--nproc", "2", "--threads", "1")
    assert same["pooled"] == single["pooled"]
    assert [f["history"] for f in same["folds"]] == [f["history"] for f in single["folds"]]
    assert same["final_fit"] == single["final_fit"]


def test_more_processes_than_fits_train_a_fold_data_parallel(tmp_path: Path) -> None:
    single, _ = _train(tmp_path / "single", "--no-final-fit")
    multi, run = _train(tmp_path / "multi", "--no-final-fit", "--nproc", "3")
    assert "fit(s) fold 2, data-parallel with ranks [1, 2]" in run.stderr, run.stderr[-3000:]
    assert abs(multi["pooled"]["auc"] - single["pooled"]["auc"]) <= AUC_TOLERANCE


def test_a_failing_process_stops_the_run_with_one_line_naming_the_cause(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-data"
    cmd = [sys.executable, "-m", "edgescreen", *TRAIN[:4], str(missing), "--nproc", "2", "--out", str(tmp_path / "o")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "DatasetError" in errors[0] and str(missing) in errors[0], run.stderr[-2000:]
    assert not (tmp_path / "o" / "report.json").exists()


def test_a_bad_world_size_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from training.distributed import DistributedError, launched

    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(DistributedError, match="WORLD_SIZE='two'"):
        launched()
