"""`edgescreen synth KIND --n N --seed S --out DIR`: write synthetic data in the real formats the loaders read;
`edgescreen synth avatars --scene SCENE ...`: avatar images or clips with DIR/truth.jsonl (docs/synthetic.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from contract.errors import UsageError

if TYPE_CHECKING:
    from edgescreen.cli import Groups

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
AVATAR_SCENES = ("office-desk", "booth-walk", "head-station", "flexion")  # training.synth.avatar.scenes.SCENE_KINDS
AVATAR_HELP = "avatar images (or clips) of a role's scene with per-frame truth in DIR/truth.jsonl"


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """A bad argument ends with one line on stderr naming the command and the argument, and exit code 2."""

    def error(message: str) -> NoReturn:
        print(f"error: {parser.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise argparse.ArgumentTypeError(f"expected 16..4096 pixels a side, got {text!r}")
    return w, h


def register(groups: Groups) -> None:
    parser = groups.top.add_parser("synth", help="write synthetic training data in the real formats")
    _one_line_errors(parser)
    sub = parser.add_subparsers(metavar="KIND", required=True)
    for kind, help_text in HELP.items():
        p = sub.add_parser(kind, help=help_text, description=help_text)
        _one_line_errors(p)
        p.add_argument("--n", type=_positive_int, default=None, help="number of samples (default: the task's size)")
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
    _register_avatars(sub)
    _register_booth(sub)


def _register_avatars(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("avatars", help=AVATAR_HELP, description=AVATAR_HELP)
    _one_line_errors(p)
    p.add_argument("--scene", required=True, choices=AVATAR_SCENES, help="which role's scene")
    p.add_argument("--n", type=_positive_int, required=True, help="number of images (with --video: of clips)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, byte-identical images)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--video", action="store_true", help="one MPEG-4 clip per subject instead of still images")
    p.add_argument("--size", type=_size, default=(640, 480), help="image size WIDTHxHEIGHT (default 640x480)")
    p.add_argument(
        "--contact-sheet", type=Path, default=None, help="also write a PNG contact sheet: the first frame of 8 subjects"
    )
    p.add_argument(
        "--workers", type=_positive_int, default=1, help="stills: render on this many processes, one per core"
    )
    p.set_defaults(func=_avatars)


BOOTH_HELP = (
    "gait-booth avatar walks through the booth's own perception: Scoliosis1K silhouette and Scoliosis1K-Pose "
    "keypoint trees (training/synth/booth_dataset.py)"
)


def _register_booth(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("booth-walks", help=BOOTH_HELP, description=BOOTH_HELP)
    _one_line_errors(p)
    p.add_argument("--n", type=_positive_int, required=True, help="number of subjects (one walk each)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", type=Path, required=True, help="output directory (an interrupted run resumes)")
    p.add_argument("--geometry", choices=("along", "across", "all"), default="all",
                   help="walks towards/away from the camera (view 000_180), across it (090), or both")  # fmt: skip
    p.set_defaults(func=_booth_walks)


def _booth_walks(args: argparse.Namespace) -> int:
    from training.synth.booth_dataset import render_walks, write_trees

    try:
        lines = render_walks(args.out, args.n, args.seed, args.geometry)
        counts = write_trees(args.out, args.seed)
    except ValueError as exc:
        raise UsageError(f"synth booth-walks: {exc}") from exc
    print(f"perceived {len(lines)} walks; wrote {counts['subjects']} subjects to {args.out}/sil and {args.out}/pose")
    return 0


def _avatars(args: argparse.Namespace) -> int:
    from training.synth.avatar.dataset import write_avatar_set

    width, height = args.size
    try:
        summary = write_avatar_set(
            args.scene,
            args.out,
            n=args.n,
            seed=args.seed,
            video=args.video,
            width=width,
            height=height,
            contact_sheet=args.contact_sheet,
            workers=args.workers,
        )
    except ValueError as exc:
        raise UsageError(f"synth avatars: {exc}") from exc
    what = f"{summary.clips} clips" if args.video else f"{summary.images} images"
    print(f"wrote {what} of {args.scene} ({summary.lines} truth lines) to {summary.out}")
    return 0


def _handler(kind: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from training.synth.writers import write_synthetic

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
            raise UsageError(f"synth {kind}: {exc}") from exc
        print(f"wrote {kind} to {path}")
        return 0

    return run
