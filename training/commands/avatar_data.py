"""`edgescreen models avatar-data`: the avatar data sets the device models learn from (`models train-device`, in
export/commands/device_models.py, trains and ships them)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from contract.errors import UsageError

if TYPE_CHECKING:
    from edgescreen.cli import Groups

log = logging.getLogger(__name__)

DATA_KINDS = ("head-shift", "posture", "flexion")


def register(groups: Groups) -> None:
    models = groups.group("models")
    d = models.add_parser(
        "avatar-data",
        help="render an avatar training set (head-shift images, posture keypoints and images, or flexion "
        "keypoint sequences)",
        description="head-shift: the station's square crops with lateral/sagittal shift targets (an image "
        "folder); posture: office-desk frames run through the device's perception (a keypoint folder) and the "
        "frames themselves (an image folder); flexion: forward-flexion trials (two per subject, MCI/MI) run frame "
        "by frame through the device's perception (a keypoint folder for `train --task flexion`). All carry sex "
        "and age group for breakdowns.",
    )
    d.add_argument("--kind", choices=DATA_KINDS, required=True, help="which set")
    d.add_argument("--n", type=int, required=True, help="number of images (flexion: of trials)")
    d.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    d.add_argument("--out", type=Path, required=True, help="output folder")
    d.set_defaults(func=_avatar_data)


def _avatar_data(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    if args.kind == "head-shift":
        from training.datasets.avatar_head_shift import write_head_shift_set

        made = write_head_shift_set(args.out, args.n, args.seed)
    elif args.kind == "flexion":
        from training.datasets.avatar_flexion import write_flexion_set

        made = write_flexion_set(args.out, args.n, args.seed)
    else:
        from training.datasets.avatar_posture import write_posture_sets

        made = write_posture_sets(args.out, args.n, args.seed)
    print(f"{args.kind}: {made} -> {args.out}")
    return 0
