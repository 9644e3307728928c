"""Cross-validation across processes with PyTorch's own distributed engine (torch.distributed).

The fits of a cross-validation (its folds and the final fit) are independent, so they fan out over the
processes first; only when there are more processes than fits do several processes share one fit, as
data-parallel training: each takes its share of every batch, gradients are averaged over the group
(all-reduce), BatchNorm statistics too, and the group's first process decides early stopping for all.
Every process loads the same data with the same seed; the outcomes are gathered by every process and the
first one (rank 0) writes the report and the checkpoint.

Two ways in, one code path:
- `edgescreen train --nproc N` starts N processes on this machine with torch's elastic launcher (what
  `torchrun --standalone` runs) and returns rank 0's report;
- `torchrun ... -m edgescreen train ...` (any rendezvous: several nodes, SLURM) starts `edgescreen train`
  in every process with RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT set, and the command
  joins the process group from them.
gloo on CPU, NCCL on GPUs (one process per GPU, `cuda:LOCAL_RANK`). docs/training.md says what is and is
not bit-identical to a single-process run.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from contract.errors import EdgeScreenError
from training.progress import Progress
from training.train import (
    FitJob,
    FitOutcome,
    StepHooks,
    TrainConfig,
    Trainer,
    run_fit,
    run_training,
)

log = logging.getLogger(__name__)

# Set by torchrun and torch's elastic launcher in every process they start.
ENV_RANK, ENV_WORLD, ENV_LOCAL_RANK = "RANK", "WORLD_SIZE", "LOCAL_RANK"


class DistributedError(EdgeScreenError):
    """A distributed run cannot start as asked."""


def launched() -> bool:
    """True inside a process started by torchrun (or the elastic launcher) for a run of two or more processes."""
    try:
        return int(os.environ.get(ENV_WORLD, "1")) > 1
    except ValueError as exc:
        raise DistributedError(f"{ENV_WORLD}={os.environ[ENV_WORLD]!r} is not a number") from exc


def rank() -> int:
    """This process's rank in a launched run (0 when not launched)."""
    return int(os.environ.get(ENV_RANK, "0")) if launched() else 0


@dataclass(frozen=True)
class Group:
    """Processes (global ranks) that train the same fits, and the positions of those fits in the job list."""

    ranks: tuple[int, ...]
    jobs: tuple[int, ...]


def plan(world: int, jobs: int) -> list[Group]:
    """Who trains what. No more processes than fits: one process per group, fits dealt round-robin.
    More processes than fits: one group per fit, the processes split into contiguous groups whose sizes
    differ by at most one (data-parallel within each)."""
    if world < 1 or jobs < 1:
        raise DistributedError(f"need at least one process and one fit, got {world} process(es), {jobs} fit(s)")
    if world <= jobs:
        return [Group((r,), tuple(range(r, jobs, world))) for r in range(world)]
    bounds = [g * world // jobs for g in range(jobs + 1)]
    return [Group(tuple(range(bounds[g], bounds[g + 1])), (g,)) for g in range(jobs)]


class DataParallel(StepHooks):
    """One fit trained by several processes: shares of each batch, averaged gradients and BatchNorm statistics."""

    def __init__(self, group: Any, ranks: tuple[int, ...], rank: int, device: torch.device) -> None:
        self.group = group
        self.ranks = ranks
        self.size = len(ranks)
        self.position = ranks.index(rank)
        self.device = device
        self._weights: deque[float] = deque()

    def batches(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        # Every process of the group sees the same batches (same seed) and takes one contiguous share of each
        # (contiguous keeps a subject's walks together for the triplet loss). A batch too small to give every
        # share two samples (BatchNorm) is skipped by all of them alike, so their collectives stay in step.
        mine, self._weights = [], deque()
        for batch in batches:
            if len(batch) < 2 * self.size:
                continue
            share = np.array_split(batch, self.size)[self.position]
            mine.append(share)
            self._weights.append(len(share) / len(batch))
        return mine

    def after_backward(self, model: nn.Module) -> None:
        # Each share's loss is a mean over the share; weighting by the share's size makes the sum the
        # batch's mean gradient even when the shares differ by a sample.
        weight = self._weights.popleft() if self._weights else 1.0 / self.size
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads]) * weight
            dist.all_reduce(flat, group=self.group)
            _unflatten_into(flat, grads)

    def after_step(self, model: nn.Module) -> None:
        buffers = [b for b in model.buffers() if b.is_floating_point()]
        if buffers:
            flat = torch.cat([b.reshape(-1) for b in buffers]) / self.size
            dist.all_reduce(flat, group=self.group)
            _unflatten_into(flat, buffers)

    def agree(self, value: float) -> float:
        held = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(held, src=self.ranks[0], group=self.group)
        return float(held.item())


def _unflatten_into(flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    offset = 0
    with torch.no_grad():
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()


class DistributedRunner:
    """A FitRunner for training.train.run_training over the current process group."""

    def __init__(self, device: torch.device, objects: Any) -> None:
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.device = device
        self.objects = objects  # a gloo group for gathering outcomes (NCCL only moves tensors on GPUs)

    def __call__(self, trainer: Trainer, jobs: list[FitJob], progress: Progress) -> list[FitOutcome]:
        groups = plan(self.world, len(jobs))
        mine: Group | None = None
        handle: Any = None
        for g in groups:
            # every process creates every group, in the same order (torch.distributed's rule)
            created = dist.new_group(list(g.ranks)) if len(g.ranks) > 1 else None
            if self.rank in g.ranks:
                mine, handle = g, created
        assert mine is not None
        trainer.hooks = DataParallel(handle, mine.ranks, self.rank, self.device) if len(mine.ranks) > 1 else StepHooks()
        progress.total = max(1, trainer.cfg.epochs * len(mine.jobs))
        log.info(
            "rank %d of %d: fit(s) %s%s",
            self.rank,
            self.world,
            ", ".join(_job_name(jobs[j]) for j in mine.jobs),
            f", data-parallel with ranks {list(mine.ranks)}" if len(mine.ranks) > 1 else "",
        )
        done = [run_fit(trainer, jobs[j], progress) for j in mine.jobs]
        leader = self.rank == mine.ranks[0]
        sent = [_portable(o) for o in done] if leader else []
        gathered: list[list[dict[str, Any]] | None] = [None] * self.world
        dist.all_gather_object(gathered, sent, group=self.objects)
        outcomes = [_restored(o, trainer) for part in gathered for o in (part or [])]
        found = sorted(o.index for o in outcomes)
        if found != sorted(job.index for job in jobs):
            raise DistributedError(f"fits gathered {found} do not match the fits asked for")
        return outcomes


def _job_name(job: FitJob) -> str:
    return f"fold {job.index + 1}" if job.test is not None else "final fit"


def _portable(outcome: FitOutcome) -> dict[str, Any]:
    state = None
    if outcome.model is not None:
        state = {k: v.detach().cpu() for k, v in outcome.model.state_dict().items()}
    return {
        "index": outcome.index,
        "info": outcome.info,
        "pred": outcome.pred,
        "state": state,
        "target_mean": outcome.target_mean,
        "target_std": outcome.target_std,
    }


def _restored(sent: dict[str, Any], trainer: Trainer) -> FitOutcome:
    model = None
    if sent["state"] is not None:
        from training.models.registry import build_model

        model = build_model(trainer.arch, **trainer.model_kwargs)
        model.load_state_dict(sent["state"])
        model = model.to(trainer.device).eval()
    return FitOutcome(sent["index"], sent["info"], sent["pred"], model, sent["target_mean"], sent["target_std"])


def run_distributed(cfg: TrainConfig, out_dir: str | Path) -> dict[str, Any]:
    """Join the process group described by the environment (torchrun's variables), run the cross-validation
    and return its report; rank 0 writes it. gloo on CPU, NCCL with `--device cuda`."""
    for name in (ENV_RANK, ENV_WORLD, "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise DistributedError(
                f"{name} is not set; start the processes with torchrun or `edgescreen train --nproc N`"
            )
    local_rank = int(os.environ.get(ENV_LOCAL_RANK, "0"))
    if cfg.device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for but torch sees no CUDA device")
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"local rank {local_rank} has no GPU of its own ({torch.cuda.device_count()} visible): "
                "start at most one process per GPU on each node"
            )
        torch.cuda.set_device(local_rank)
        backend, device = "nccl", torch.device("cuda", local_rank)
    else:
        backend, device = "gloo", torch.device("cpu")
    dist.init_process_group(backend=backend)
    try:
        rank = dist.get_rank()
        objects = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
        run_cfg = cfg if rank == 0 else cfg.model_copy(update={"progress": False})
        return run_training(run_cfg, out_dir, runner=DistributedRunner(device, objects), write=rank == 0)
    finally:
        dist.destroy_process_group()


def _worker(config: dict[str, Any], out_dir: str, verbose: bool) -> dict[str, Any]:
    """Entry point of each process started by `launch` (spawned: logging starts afresh)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"%(asctime)s %(levelname)s rank {os.environ.get(ENV_RANK, '?')} %(name)s: %(message)s",
    )
    return run_distributed(TrainConfig(**config), out_dir)


def _failure_text(message: Any) -> str:
    """The exception of a failed worker as one line ("DatasetError: ... does not exist"). The launcher keeps
    it as {"message": "Type: text", "extraInfo": {...}} when the worker raised, as a string otherwise."""
    if isinstance(message, dict):
        message = message.get("message", message)
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[-1] if lines else "no message (see the log above)"


def launch(cfg: TrainConfig, out_dir: str | Path, nproc: int, *, verbose: bool = False) -> dict[str, Any]:
    """Run the cross-validation in `nproc` processes on this machine (torchrun --standalone's launcher);
    returns rank 0's report. A failed process stops the others and raises DistributedError."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 2:
        raise DistributedError(f"--nproc must be at least 2 to start processes, got {nproc}")
    if cfg.device == "cuda" and nproc > torch.cuda.device_count():
        visible = torch.cuda.device_count()
        raise DistributedError(f"--nproc {nproc} with --device cuda needs {nproc} GPUs; {visible} visible")
    if cfg.threads is None and cfg.device == "cpu":
        # share the cores instead of every process taking all of them
        cfg = cfg.model_copy(update={"threads": max(1, (os.cpu_count() or 1) // nproc)})
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        start_method="spawn",
    )
    if not verbose:  # the launcher's own report of a failure repeats the traceback the worker logged
        logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
        logging.getLogger("torch.multiprocessing").setLevel(logging.ERROR)
    try:
        results = elastic_launch(config, _worker)(cfg.model_dump(), str(out_dir), verbose)
    except ChildFailedError as exc:
        failed_rank, failure = exc.get_first_failure()
        raise DistributedError(f"training process {failed_rank} failed: {_failure_text(failure.message)}") from exc
    report: dict[str, Any] = results[0]
    return report
