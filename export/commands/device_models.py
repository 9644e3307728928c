"""`edgescreen models train-device`: the device models trained on avatars and shipped to the model store in one
command (training/device_models/ trains, export/device_models/ exports, quantises, cards, signs and installs).
torch is imported only inside the handler."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from contract.errors import UsageError

if TYPE_CHECKING:
    from edgescreen.cli import Groups

log = logging.getLogger(__name__)

ROLE_CHOICES = ("booth", "station", "posture")


def register(groups: Groups) -> None:
    models = groups.group("models")
    p = models.add_parser(
        "train-device",
        help="train the booth, station and posture models on avatars; export, INT8, card, sign, install",
        description="Renders avatar data, trains each device role's model with subject-disjoint cross-validation, "
        "exports it to ONNX with its model card, quantises it to INT8 behind the parity gate (a model that fails "
        "stays FP32), signs one bundle per role and installs it into the model store's bundles/ folder, where "
        "the shipped profiles name the files. A model whose CV is not clear of chance at 95 % (AUC CI above 0.5, "
        "r CI above 0 for every target) is not installed: its card is written marked not shipped and the command "
        "exits 1.",
    )
    p.add_argument("--out", type=Path, required=True, help="work folder: data, checkpoints, ONNX files, bundles")
    p.add_argument("--budget-min", type=float, default=30.0, help="time budget in minutes (default 30); "
                   "under 2 the sets are tiny (a smoke test)")  # fmt: skip
    p.add_argument("--roles", default=",".join(ROLE_CHOICES), help="comma-separated roles (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, folds and training (default 0)")
    p.add_argument("--signing-key", type=Path, default=None, help="site signing key (PEM); default: a new key "
                   "under OUT/keys")  # fmt: skip
    p.add_argument("--bundle-dir", type=Path, default=None, help="bundle store (default: <model dir>/bundles)")
    p.add_argument("--head-shift-data", type=Path, default=None, help="an avatar head-shift set to train the "
                   "station on instead of rendering one (`models avatar-data --kind head-shift`)")  # fmt: skip
    p.add_argument("--posture-data", type=Path, default=None, help="an avatar posture keypoint folder "
                   "(`models avatar-data --kind posture`, its keypoints/ folder)")  # fmt: skip
    p.add_argument("--cards", type=Path, default=None, help="markdown file the model cards go into "
                   "(default OUT/models.md; docs/models.md updates the repository's docs)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=_train_device)


def _roles(text: str) -> tuple[str, ...]:
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    bad = [r for r in roles if r not in ROLE_CHOICES]
    if bad or not roles:
        raise UsageError(f"--roles {text!r}: expected a comma-separated subset of {', '.join(ROLE_CHOICES)}")
    return roles


def _train_device(args: argparse.Namespace) -> int:
    roles = _roles(args.roles)
    if args.budget_min <= 0:
        raise UsageError(f"--budget-min must be positive, got {args.budget_min}")
    import torch

    from export.device_models.pipeline import train_device_models

    if args.threads:
        torch.set_num_threads(args.threads)
    data = {k: v for k, v in (("station", args.head_shift_data), ("posture", args.posture_data)) if v is not None}
    run = train_device_models(
        args.out, budget_s=args.budget_min * 60.0, seed=args.seed, roles=roles, key=args.signing_key,  # type: ignore[arg-type]
        bundle_dir=args.bundle_dir, data=data, cards=args.cards,
    )  # fmt: skip
    from training.device_models.cards import headline

    for s in run.shipped:
        print(f"{s.role:9s} {s.name}: {headline(s.card)}")
        print(f"{'':9s} {s.precision.upper()}: {s.note}")
    for role, whys in run.skipped.items():
        for why in whys:
            print(f"{role:9s} {why}")
    for role, release in run.releases.items():
        print(f"{role:9s} installed {release}")
    print(f"done in {run.seconds:.0f} s; model cards in {args.cards or args.out / 'models.md'}")
    return 1 if run.skipped else 0
