"""Build TensorRT engines from ONNX on the device, cached by ONNX sha256 + TensorRT version + GPU + precision.

INT8 is explicit quantization: the Q/DQ nodes of an `export quantize` model carry the scales, so no
calibrator is set (the implicit calibrators are deprecated). A model without Q/DQ asked for as INT8 is
an error, never a silent FP16/FP32 engine.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from contract.errors import EdgeScreenError

if TYPE_CHECKING:
    import onnx

from contract.hashing import sha256_file
from edge.backends.engine_cache import (
    EngineKey,
    Precision,
    default_cache_dir,
    lookup,
    write_sidecar,
)

log = logging.getLogger(__name__)


class EngineBuildError(EdgeScreenError, RuntimeError):
    """An engine could not be built as asked."""


@dataclass(frozen=True)
class ShapeProfile:
    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass
class BuildResult:
    path: Path
    key: EngineKey
    reused: bool
    removed_stale: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    dla_gpu_fallback_layers: list[str] = field(default_factory=list)
    profiles: list[ShapeProfile] = field(default_factory=list)


def import_tensorrt() -> ModuleType:
    try:
        return importlib.import_module("tensorrt")
    except ImportError as exc:
        raise EngineBuildError(
            "TensorRT's Python package is not installed on this host (on a Jetson it comes with JetPack: "
            "`sudo apt install python3-libnvinfer`; see docs/jetson.md)"
        ) from exc


def onnx_inputs(model: onnx.ModelProto) -> list[tuple[str, list[int | None]]]:
    """Graph inputs (not initializers) with their dims; None for a dynamic dimension."""
    initializers = {i.name for i in model.graph.initializer}
    found = []
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        dims: list[int | None] = [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in graph_input.type.tensor_type.shape.dim
        ]
        found.append((graph_input.name, dims))
    return found


def shape_profiles(
    inputs: list[tuple[str, list[int | None]]], max_batch: int = 1, opt_batch: int = 1
) -> list[ShapeProfile]:
    """One optimization profile entry per input with a dynamic batch; other dynamic dims are an error."""
    if not 1 <= opt_batch <= max_batch:
        raise EngineBuildError(f"need 1 <= opt batch ({opt_batch}) <= max batch ({max_batch})")
    profiles = []
    for name, dims in inputs:
        if not dims or all(d is not None for d in dims):
            continue
        if any(d is None for d in dims[1:]):
            raise EngineBuildError(
                f"input {name!r} has dynamic dimensions beyond the batch ({dims}); export it with fixed sizes"
            )
        rest = tuple(int(d) for d in dims[1:] if d is not None)
        profiles.append(ShapeProfile(name, (1, *rest), (opt_batch, *rest), (max_batch, *rest)))
    return profiles


def _load_onnx(path: Path) -> onnx.ModelProto:
    # onnx is read only here, so the device's other commands never import it (it comes with the jetson extra).
    try:
        import onnx
    except ImportError as exc:
        raise EngineBuildError(
            "the onnx package is not installed on this host: pip install 'edgescreen[jetson]'"
        ) from exc
    return onnx.load(str(path), load_external_data=False)


def has_qdq(model: onnx.ModelProto) -> bool:
    ops = {n.op_type for n in model.graph.node}
    return {"QuantizeLinear", "DequantizeLinear"} <= ops


def _network_flags(trt: ModuleType) -> int:
    # TensorRT 10 networks are always explicit-batch (the flag is gone); 8.x needs it set.
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    return 0 if flag is None or _major(trt) >= 10 else 1 << int(flag)


def _major(trt: ModuleType) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:
        return 0


def _progress_monitor(trt: ModuleType) -> Any | None:
    """An IProgressMonitor that logs build phases (TensorRT ≥ 10.0), or None on older versions."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class LogProgress(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self._steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._steps[phase_name] = num_steps
            log.info(
                "engine build: %s%s (%d steps)", f"{parent_phase} / " if parent_phase else "", phase_name, num_steps
            )

        def step_complete(self, phase_name: str, step: int) -> bool:
            total = self._steps.get(phase_name, 0)
            log.debug("engine build: %s step %d/%d", phase_name, step + 1, total)
            return True  # returning False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            log.info("engine build: %s done", phase_name)

    return LogProgress()


def _timing_cache_path(cache_dir: Path, trt_version: str, gpu: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in f"{trt_version}-{gpu}")
    return cache_dir / f"timing-{safe}.cache"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def detect_gpu_name() -> str:
    from edge.backends.tensorrt_backend import gpu_name

    return gpu_name()


def build_engine(
    onnx_path: Path,
    precision: Precision,
    cache_dir: Path | None = None,
    *,
    workspace_mb: int = 1024,
    dla_core: int | None = None,
    max_batch: int = 1,
    opt_batch: int = 1,
    gpu: str | None = None,
    trt: ModuleType | None = None,
) -> BuildResult:
    """Return the cached engine for this model/GPU/TensorRT/precision, building (and replacing stale) if needed."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EngineBuildError(f"ONNX model {onnx_path} does not exist")
    if workspace_mb < 16:
        raise EngineBuildError(f"workspace limit {workspace_mb} MB is too small (at least 16 MB)")
    if dla_core is not None and precision == "fp32":
        raise EngineBuildError("DLA runs FP16 or INT8 layers only; ask for --precision fp16 or int8 with --dla")
    trt = trt or import_tensorrt()
    gpu = gpu or detect_gpu_name()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(onnx_path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = EngineKey(sha256_file(onnx_path), str(trt.__version__), gpu, precision, dla_core)
    name = onnx_path.name.removesuffix(".onnx")
    found = lookup(cache_dir, name, key)
    if found.found:
        log.info(
            "engine %s matches %s (TensorRT %s, %s, %s); reusing it",
            found.path,
            name,
            key.tensorrt_version,
            gpu,
            precision,
        )
        return BuildResult(path=found.path, key=key, reused=True)

    model = _load_onnx(onnx_path)
    if precision == "int8" and not has_qdq(model):
        raise EngineBuildError(
            f"INT8 asked for {onnx_path}, but it has no QuantizeLinear/DequantizeLinear nodes; "
            "make an INT8 model first with `edgescreen export quantize` (explicit quantization only)"
        )
    profiles = shape_profiles(onnx_inputs(model), max_batch, opt_batch)

    started = time.monotonic()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # scales come from the Q/DQ nodes; no calibrator
    if profiles:
        profile = builder.create_optimization_profile()
        for p in profiles:
            profile.set_shape(p.name, p.min, p.opt, p.max)
        config.add_optimization_profile(profile)
    fallback_layers: list[str] = []
    if dla_core is not None:
        fallback_layers = _configure_dla(trt, builder, network, config, dla_core)
    timing_path = _timing_cache_path(cache_dir, key.tensorrt_version, gpu)
    timing_cache = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    log.info(
        "building %s engine for %s on %s (TensorRT %s, workspace %d MB%s)",
        precision,
        onnx_path.name,
        gpu,
        key.tensorrt_version,
        workspace_mb,
        f", DLA core {dla_core}" if dla_core is not None else "",
    )
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT could not build a {precision} engine for {onnx_path} (see the log above)")
    _atomic_write(found.path, bytes(serialized))
    _atomic_write(timing_path, bytes(config.get_timing_cache().serialize()))
    seconds = time.monotonic() - started
    write_sidecar(
        found.path,
        key,
        {
            "onnx": str(onnx_path),
            "built_s": round(seconds, 1),
            "workspace_mb": workspace_mb,
            "profiles": [p.__dict__ for p in profiles],
            "dla_gpu_fallback_layers": fallback_layers,
        },
    )
    for stale in found.stale:
        log.info("removing stale engine %s (%s)", stale, _stale_reason(stale, key))
        stale.unlink(missing_ok=True)
        stale.with_suffix(".json").unlink(missing_ok=True)
    log.info("built %s in %.1f s", found.path, seconds)
    return BuildResult(found.path, key, False, found.stale, seconds, fallback_layers, profiles)


def _stale_reason(stale: Path, key: EngineKey) -> str:
    try:
        old = json.loads(stale.with_suffix(".json").read_text())["key"]
    except (OSError, ValueError, KeyError):
        return "no sidecar"
    changed = [k for k, v in key.to_json().items() if old.get(k) != v]
    return "changed: " + ", ".join(changed) if changed else "unknown"


def _configure_dla(trt: ModuleType, builder: Any, network: Any, config: Any, dla_core: int) -> list[str]:
    """Put the network on DLA core `dla_core` with GPU fallback; return the layers that stay on the GPU."""
    cores = int(builder.num_DLA_cores)
    if cores == 0:
        raise EngineBuildError(f"DLA core {dla_core} asked for, but this device has no DLA (Orin NX/AGX have 1-2)")
    if not 0 <= dla_core < cores:
        raise EngineBuildError(f"DLA core {dla_core} does not exist; this device has cores 0..{cores - 1}")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = dla_core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    fallback = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not config.can_run_on_DLA(layer):
            fallback.append(str(layer.name))
    if fallback:
        log.warning(
            "%d of %d layers cannot run on DLA core %d and fall back to the GPU: %s",
            len(fallback),
            network.num_layers,
            dla_core,
            ", ".join(fallback[:10]) + (" ..." if len(fallback) > 10 else ""),
        )
    else:
        log.info("all %d layers run on DLA core %d", network.num_layers, dla_core)
    return fallback
