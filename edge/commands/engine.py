"""`engine build`: a TensorRT engine for this device's GPU and TensorRT version, cached by hash."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from contract.errors import EdgeScreenError, UsageError, one_line

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    engine = groups.group("engine")
    p = engine.add_parser("build", help="build (or reuse) the TensorRT engine of an ONNX model")
    p.add_argument("model", type=Path, nargs="?", help="ONNX model (INT8 needs the QDQ model from `export quantize`)")
    p.add_argument(
        "--profile",
        type=Path,
        help="device profile: build every perception model it runs, at its backend's precision and engine cache",
    )
    p.add_argument(
        "--precision", choices=["fp32", "fp16", "int8"], default=None, help="default fp16 (or the profile's)"
    )
    p.add_argument("--dla", type=int, default=None, metavar="N", help="run on DLA core N (Jetson Orin), GPU fallback")
    p.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace limit in MB")
    p.add_argument("--cache", type=Path, default=None, help="engine cache folder (default: engines/ beside the model)")
    p.add_argument("--max-batch", type=int, default=1, help="largest batch of a dynamic-batch input")
    p.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    if (args.model is None) == (args.profile is None):
        raise UsageError("give an ONNX model or --profile PROFILE (one of them)")
    if args.profile is not None:
        return _build_profile(args)
    return _build_one(args, args.model, args.precision or "fp16", args.cache)


def _build_profile(args: argparse.Namespace) -> int:
    """The engines `edgescreen edge run --profile P` will look up (the unit runs this before the runtime)."""
    from edge.config import ProfileError, load_profile
    from edge.model_store import ModelStore, ModelStoreError, default_model_dir
    from edge.perception.face_detector import FaceDetector
    from edge.perception.face_landmarker import FaceLandmarker
    from edge.perception.pose_detector import PoseDetector
    from edge.perception.pose_landmarker import PoseLandmarker

    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        raise UsageError(str(exc)) from exc
    perception = profile.perception
    backend = perception.backend
    if backend.type != "tensorrt":
        print(f"{args.profile}: backend {backend.type}: no TensorRT engine is needed")
        return 0
    names: list[str] = []
    if perception.pose:
        names += [PoseDetector.model_name, PoseLandmarker.model_name]
    if perception.face:
        names += [FaceDetector.model_name, FaceLandmarker.model_name]
    precision = args.precision or backend.precision
    cache = args.cache or backend.engine_cache
    store = ModelStore(default_model_dir())
    failed = 0
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ({precision})", flush=True)
        try:
            model = store.path(name)
        except ModelStoreError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        try:
            _build_one(args, model, precision, cache)
        except EdgeScreenError as exc:
            print(one_line(exc), file=sys.stderr)  # go on with the other models; fail at the end
            failed += 1
    # Role models (posture risk, gait) run on ONNX Runtime on the CPU: they need no engine.
    if failed:
        raise EdgeScreenError(f"{failed} of {len(names)} engines could not be built")
    return 0


def _build_one(args: argparse.Namespace, model: Path, precision: str, cache: Path | None) -> int:
    from edge.backends.tensorrt_build import EngineBuildError, build_engine

    try:
        result = build_engine(
            model,
            precision,  # type: ignore[arg-type]
            cache_dir=cache,
            workspace_mb=args.workspace_mb,
            dla_core=args.dla,
            max_batch=args.max_batch,
            opt_batch=1,
        )
    except EngineBuildError as exc:
        raise EdgeScreenError(f"{model}: {exc}") from exc
    state = "reused" if result.reused else f"built in {result.seconds:.1f} s"
    print(f"{result.path}: {state} (TensorRT {result.key.tensorrt_version}, {result.key.gpu_name}, {precision})")
    if result.removed_stale:
        print("removed stale engines: " + ", ".join(p.name for p in result.removed_stale))
    if args.dla is not None:
        print(f"DLA core {args.dla}: {len(result.dla_gpu_fallback_layers)} layers fall back to the GPU")
    return 0
