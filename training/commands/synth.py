"""`edgescreen synth KIND --n N --seed S --out DIR`: write synthetic data in the real formats the loaders read."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups

log = logging.getLogger(__name__)

# One entry per `edgescreen synth` kind (training.synth.writers.TASK_OF_KIND maps them to tasks).
HELP = {
    "posture-images": "seated office workers, side/oblique photos; image folder + labels.csv (control/ch)",
    "keypoints": "posture keypoint windows (BlazePose CSV per sample) + labels.csv (control/ch)",
    "flexion": "forward-flexion keypoint sequences (CSV) + labels.csv (mci/mi, PROM columns)",
    "gait": "Scoliosis1K silhouette tree ID/Class/View/View.pkl + partition JSON",
    "head-shift": "head-and-shoulders photos; image folder + labels.csv (lateral_shift, sagittal_shift)",
    "xray": "lateral cervical X-ray-like images; grayscale image folder + labels.csv (normal/straightened/reversed)",
    "walkthroughs": "gait-booth walk-throughs as perception replays (.npz) + labels.json",
}


def register(groups: Groups) -> None:
    parser = groups.top.add_parser("synth", help="write synthetic training data in the real formats")
    sub = parser.add_subparsers(metavar="KIND", required=True)
    for kind, help_text in HELP.items():
        p = sub.add_parser(kind, help=help_text, description=help_text)
        p.add_argument("--n", type=int, default=None, help="number of samples (default: the task's default size)")
        p.add_argument("--seed", type=int, default=0, help="random seed (same seed, byte-identical output)")
        p.add_argument("--out", type=Path, required=True, help="output directory")
        if kind == "walkthroughs":
            p.add_argument(
                "--scenarios",
                default=None,
                help="comma-separated scenarios to cycle through (default: the standard mix); "
                "negative, positive, neutral, partial, two_people, standing, wrong_direction",
            )
        if kind in ("posture-images", "head-shift", "xray"):
            p.add_argument("--image-size", type=int, default=128, help="square image size in pixels")
        p.set_defaults(func=_handler(kind))


def _handler(kind: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from training.synth.writers import write_synthetic

        if args.n is not None and args.n < 1:
            log.error("--n must be >= 1")
            return 2
        scenarios = (
            tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
            if kind == "walkthroughs" and args.scenarios
            else None
        )
        try:
            path = write_synthetic(
                kind,
                args.out,
                n=args.n,
                seed=args.seed,
                image_size=getattr(args, "image_size", 128),
                scenarios=scenarios,
            )
        except ValueError as exc:
            log.error("%s", exc)
            return 2
        print(f"wrote {kind} to {path}")
        return 0

    return run
