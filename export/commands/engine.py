"""`engine build`: a TensorRT engine for this device's GPU and TensorRT version, cached by hash."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    engine = groups.group("engine", "build TensorRT engines on the device")
    p = engine.add_parser("build", help="build (or reuse) the TensorRT engine of an ONNX model")
    p.add_argument("model", type=Path, help="ONNX model (INT8 needs the QDQ model from `export quantize`)")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp16")
    p.add_argument("--dla", type=int, default=None, metavar="N", help="run on DLA core N (Jetson Orin), GPU fallback")
    p.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace limit in MB")
    p.add_argument("--cache", type=Path, default=None, help="engine cache folder (default: engines/ beside the model)")
    p.add_argument("--max-batch", type=int, default=1, help="largest batch of a dynamic-batch input")
    p.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from export.tensorrt_build import EngineBuildError, build_engine

    try:
        result = build_engine(
            args.model,
            args.precision,
            cache_dir=args.cache,
            workspace_mb=args.workspace_mb,
            dla_core=args.dla,
            max_batch=args.max_batch,
            opt_batch=1,
        )
    except EngineBuildError as exc:
        print(f"error: {exc}")
        return 1
    state = "reused" if result.reused else f"built in {result.seconds:.1f} s"
    print(f"{result.path}: {state} (TensorRT {result.key.tensorrt_version}, {result.key.gpu_name}, {args.precision})")
    if result.removed_stale:
        print("removed stale engines: " + ", ".join(p.name for p in result.removed_stale))
    if args.dla is not None:
        print(f"DLA core {args.dla}: {len(result.dla_gpu_fallback_layers)} layers fall back to the GPU")
    return 0
