"""OUTDIR/gpu-report.json (every step's result and figures) and OUTDIR/gpu-report.md (the tables to read)."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgescreen.gpu_check.steps import STATUSES, StepResult

REPORT_FORMAT = 1
JSON_NAME, MD_NAME = "gpu-report.json", "gpu-report.md"


def report_data(results: Sequence[StepResult], *, started_utc: str, seconds: float, budget_s: float) -> dict[str, Any]:
    env = next((r.figures for r in results if r.kind == "environment" and r.status == "ok"), {})
    counts: Counter[str] = Counter(r.status for r in results)
    return {
        "format": REPORT_FORMAT,
        "started_utc": started_utc,
        "seconds": round(seconds, 1),
        "budget_s": budget_s,
        "machine": env,
        "counts": {s: counts[s] for s in STATUSES if counts[s]},
        "steps": [r.to_json() for r in results],
    }


def write_report(out_dir: Path, data: dict[str, Any]) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / JSON_NAME, out_dir / MD_NAME
    _atomic_write(json_path, json.dumps(data, indent=2, default=str) + "\n")
    _atomic_write(md_path, markdown(data))
    return json_path, md_path


def read_report(out_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(out_dir) / JSON_NAME).read_text())
    return data


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


# ---- markdown ---------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _machine(env: dict[str, Any]) -> str:
    if not env:
        return "Machine: not recorded (the environment step did not finish)."
    parts = [
        f"GPU {env.get('gpu') or '?'}" + (f" ({env['gpu_memory_mb']:.0f} MiB)" if env.get("gpu_memory_mb") else ""),
        f"driver {env.get('driver') or '?'}",
        f"CUDA {env.get('cuda') or '?'}",
        f"TensorRT {env.get('tensorrt') or 'absent'}",
        f"pycuda {env.get('pycuda') or 'absent'}",
        f"torch {env.get('torch') or '?'}",
        f"onnxruntime {env.get('onnxruntime') or '?'}",
        f"{env.get('cpu') or '?'} ({env.get('cpus') or '?'} CPUs, {env.get('arch') or '?'})",
    ]
    if env.get("jetson"):
        parts.append(f"Jetson {env['jetson']}")
    return "Machine: " + ", ".join(parts) + "."


def _parity(figures: dict[str, Any]) -> tuple[str, str]:
    parity = figures.get("parity") or {}
    if not parity:
        return "–", "–"
    state = "pass" if parity.get("passed") else "FAIL: " + "; ".join(parity.get("failures") or [])
    checks = parity.get("checks") or []
    measure = "; ".join(f"{c['metric']} {_cell(c.get('candidate'))} (limit {c['limit']})" for c in checks[:2])
    return state, measure


def markdown(data: dict[str, Any]) -> str:
    results = [StepResult.from_json(s) for s in data["steps"]]
    counts = ", ".join(f"{n} {s}" for s, n in data.get("counts", {}).items())
    lines = [
        "# GPU check report",
        "",
        _machine(data.get("machine") or {}),
        f"Started {data['started_utc']}; {data['seconds']:.0f} s of a {data['budget_s']:.0f} s budget; "
        f"{len(results)} steps: {counts or 'none'}.",
        "",
        "## Steps",
        "",
        *_table(
            ("step", "status", "seconds", "budget s", "detail"),
            [(r.name, r.status, round(r.seconds, 1), r.budget_s, r.error or "") for r in results],
        ),
    ]
    engines = [r for r in results if r.kind == "engine" and r.status == "ok"]
    if engines:
        rows = []
        for r in engines:
            f = r.figures
            latency = f.get("latency_ms") or {}
            state, measure = _parity(f)
            rows.append(
                (f.get("model"), f.get("precision"), f.get("build_s"), f.get("reused"), state, measure,
                 latency.get("median"), latency.get("p99"))
            )  # fmt: skip
        lines += ["", "## TensorRT engines: build, parity against ONNX Runtime (FP32), batch-1 latency", ""]
        lines += _table(("model", "precision", "build s", "reused", "parity", "measure", "median ms", "p99 ms"), rows)
    runtime = [r for r in results if r.kind == "runtime" and r.status == "ok"]
    if runtime:
        lines += ["", "## Device runtime: `edgescreen edge run` on the TensorRT backend", ""]
        lines += _table(
            ("role", "backend", "fps", "GPU memory MiB", "peak RSS MiB", "frames"),
            [
                (r.figures.get("role"), r.figures.get("backend"), r.figures.get("fps"), r.figures.get("gpu_mb"),
                 r.figures.get("peak_rss_mb"), r.figures.get("frames"))
                for r in runtime
            ],
        )  # fmt: skip
    training = [r for r in results if r.kind == "training" and r.status == "ok"]
    if training:
        lines += ["", "## Training at published sizes (generated tensors, the project's Trainer)", ""]
        lines += _table(
            ("network", "input", "batch", "steps", "samples/s", "epoch s", "peak GPU MiB", "device"),
            [
                (r.figures.get("network"), r.figures.get("input"), r.figures.get("batch_size"), r.figures.get("steps"),
                 r.figures.get("samples_per_s"), r.figures.get("epoch_s"), r.figures.get("peak_gpu_mb"),
                 r.figures.get("device"))
                for r in training
            ],
        )  # fmt: skip
    estimates = [row for r in results if r.kind == "estimate" and r.status == "ok" for row in r.figures["rows"]]
    if estimates:
        lines += ["", "## Full cross-validation of each task in docs/results.md, estimated", ""]
        lines += _table(
            ("task", "network", "data", "folds", "epochs", "final fit", "estimated h", "from"),
            [
                (
                    e["task"],
                    e["network"],
                    e["data"],
                    e["folds"],
                    e["epochs"],
                    e["final_fit"],
                    e["hours"],
                    f"`{e['command']}`" + (f" ({e['note']})" if e.get("note") else ""),
                )
                for e in estimates
            ],
        )
        lines += ["", "Upper bounds: every fold runs all its epochs (early stopping only shortens it)."]
    return "\n".join(lines) + "\n"
