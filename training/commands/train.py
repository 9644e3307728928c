"""`edgescreen train`: cross-validated training of one task; torch is imported only inside the handler."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups

log = logging.getLogger(__name__)

TASKS = ("posture-image", "posture-keypoints", "flexion", "gait", "head-shift", "xray")


def register(groups: Groups) -> None:
    p = groups.top.add_parser(
        "train",
        help="train and cross-validate a task's model",
        description="Subject-grouped stratified k-fold training with early stopping; writes report.json, "
        "report.md, plots and model.pt (the checkpoint export reads) into --out.",
    )
    p.add_argument("--task", required=True, choices=TASKS, help="which study's task to train")
    p.add_argument("--data", required=True, help="'synthetic' or 'synthetic:N' (N samples), or a dataset path")
    p.add_argument("--arch", default=None, help="architecture (default: the task's first; see training.models)")
    p.add_argument("--folds", type=int, default=4, help="cross-validation folds (default 4)")
    p.add_argument("--epochs", type=int, default=20, help="maximum epochs per fold (default 20)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, folds and training (default 0)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--width", choices=("small", "full"), default="full", help="network width (small for CPU)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default per architecture)")
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs (default 8)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--frames", type=int, default=30, help="gait: frames sampled per walk in training (default 30)")
    p.add_argument("--prom", action="store_true", help="flexion: add patient-reported outcome measures as inputs")
    p.add_argument(
        "--no-final-fit", action="store_true", help="skip the final fit on all subjects (model.pt: last fold's model)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--nproc", type=int, default=1, metavar="N",
        help="processes on this machine (torch.distributed; gloo on CPU, NCCL and one GPU each with --device cuda): "
        "folds fan out, data-parallel within a fold when processes outnumber fits. Under torchrun, leave it out",
    )  # fmt: skip
    p.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from training.distributed import launch, launched, rank, run_distributed
    from training.train import TrainConfig, run_training

    try:
        cfg = TrainConfig(
            task=args.task, data=args.data, arch=args.arch, folds=args.folds, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, patience=args.patience, seed=args.seed, device=args.device,
            width=args.width, use_prom=args.prom, final_fit=not args.no_final_fit, progress=not args.no_progress,
            train_frames=args.frames, threads=args.threads,
        )  # fmt: skip
        if launched():  # one of the processes torchrun started
            report = run_distributed(cfg, args.out)
        elif args.nproc > 1:
            report = launch(cfg, args.out, args.nproc, verbose=bool(args.verbose))
        else:
            report = run_training(cfg, args.out)
    except (ValidationError, ValueError, FileNotFoundError, ImportError) as exc:
        log.error("train: %s", exc)
        return 2
    if rank() != 0:  # another process of a distributed run: rank 0 writes the report and tells
        return 0
    pooled = report["pooled"]
    if report["kind"] == "regression":
        summary = ", ".join(f"{k} r={v['pearson_r']:.3f} MAE={v['mae']:.3f}" for k, v in pooled.items() if k != "n")
    else:
        summary = f"AUC {pooled['auc']:.3f} accuracy {pooled['accuracy']:.3f} F1 {pooled['f1']:.3f}"
    print(f"{report['task']} {report['arch']}: {summary} -> {args.out}/report.md")
    return 0
