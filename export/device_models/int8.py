"""INT8 for a trained device model: calibrate on one half of its held-out avatar inputs, check parity on the other
half with export/verify.py's gates (regressor: Pearson r may drop by at most Budget.r; classifier: AUC and accuracy
by at most Budget.auc), and keep the FP32 model when the gate fails.

The gate is that of `edgescreen export verify`, applied to the held-out arrays the training step hands over (a gait
walk or a keypoint window has no image folder to name), and the report is an export.verify.ParityReport that
`export bundle` reads."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from contract.hashing import sha256_file
from contract.labels import TASK_KINDS
from export.quantize import QuantizationError, quantize_model
from export.verify import Budget, ParityReport, macro_auc, write_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Int8Outcome:
    """`chosen`: the file the device runs (INT8 when it passed the gate, else the FP32 export); `report`: the parity
    report's JSON (None when quantisation itself failed); `note`: one line for the command's output and the card."""

    chosen: Path
    precision: str
    report: Path | None
    note: str


def _run(path: Path, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outs = [np.asarray(session.run(None, {name: x[i : i + 1]})[0], np.float64) for i in range(len(x))]
    return np.concatenate(outs).reshape(len(x), -1)


def _softmax(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _pearson(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else math.nan


def _check(metric: str, ref: float, cand: float, limit: float) -> dict[str, Any]:
    """A drop of at most `limit`; a figure that cannot be measured (NaN: constant output, one class) fails."""
    if math.isnan(ref) or math.isnan(cand):
        why = f"{metric} cannot be measured on these held-out samples (FP32 {ref:.4g}, INT8 {cand:.4g})"
        return {"metric": metric, "reference": ref, "candidate": cand, "change": None, "limit": f"≤ {limit:g}",
                "ok": False, "why": why}  # fmt: skip
    drop = ref - cand
    return {"metric": metric, "reference": ref, "candidate": cand, "change": cand - ref, "limit": f"≤ {limit:g}",
            "ok": bool(drop <= limit), "why": f"{metric} dropped by {drop:.4f} > budget {limit:g}"}  # fmt: skip


def parity(
    task: str, fp32: Path, candidate: Path, x: npt.NDArray[np.float32], y: npt.NDArray[Any], *, budget: Budget
) -> ParityReport:
    """The INT8 model against its FP32 model on held-out inputs `x` with targets `y`."""
    ref_out, cand_out = _run(fp32, x), _run(candidate, x)
    if TASK_KINDS[task] == "regression":  # type: ignore[index]
        t = np.asarray(y, np.float64).reshape(len(x), -1)
        r_ref = float(np.mean([_pearson(ref_out[:, k], t[:, k]) for k in range(t.shape[1])]))
        r_cand = float(np.mean([_pearson(cand_out[:, k], t[:, k]) for k in range(t.shape[1])]))
        metrics = {"r_fp32": r_ref, "r_candidate": r_cand, "mae_fp32": float(np.abs(ref_out - t).mean()),
                   "mae_candidate": float(np.abs(cand_out - t).mean()),
                   "output_max_abs_diff": float(np.abs(ref_out - cand_out).max())}  # fmt: skip
        checks, kind = [_check("r", r_ref, r_cand, budget.r)], "regressor"
    else:
        labels = np.asarray(y).astype(int).reshape(-1)
        p_ref, p_cand = _softmax(ref_out), _softmax(cand_out)
        auc_ref, auc_cand = macro_auc(labels, p_ref), macro_auc(labels, p_cand)
        acc_ref = float((p_ref.argmax(1) == labels).mean())
        acc_cand = float((p_cand.argmax(1) == labels).mean())
        metrics = {"auc_fp32": auc_ref, "auc_candidate": auc_cand, "accuracy_fp32": acc_ref,
                   "accuracy_candidate": acc_cand,
                   "prediction_agreement": float((p_ref.argmax(1) == p_cand.argmax(1)).mean()),
                   "probability_max_abs_diff": float(np.abs(p_ref - p_cand).max())}  # fmt: skip
        checks = [_check("auc", auc_ref, auc_cand, budget.auc), _check("accuracy", acc_ref, acc_cand, budget.auc)]
        kind = "classifier"
    failures = [c["why"] for c in checks if not c["ok"]]
    return ParityReport(
        kind=kind,
        reference={"path": str(fp32), "sha256": sha256_file(fp32), "precision": "fp32"},
        candidate={"path": str(candidate), "sha256": sha256_file(candidate), "precision": "int8"},
        data=f"held-out avatar inputs of {task} ({len(x)} samples)",
        samples=len(x), metrics=metrics, budget=asdict(budget), passed=not failures, failures=failures,
        checks=checks,
    )  # fmt: skip


# An AUC or r on fewer samples says nothing about whether INT8 kept the model's behaviour.
MIN_GATE_SAMPLES = 20


def quantize_with_gate(
    task: str,
    fp32: Path,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[Any],
    *,
    budget: Budget | None = None,
    min_samples: int = MIN_GATE_SAMPLES,
) -> Int8Outcome:
    """INT8 (static QDQ, ONNX Runtime CPU scheme) calibrated on the first half of `x`, gated on the second."""
    budget = budget or Budget()
    x = np.ascontiguousarray(x, np.float32)
    if len(x) < 2 * min_samples:
        return Int8Outcome(fp32, "fp32", None, f"stays FP32: {len(x)} held-out samples cannot both calibrate INT8 "
                           f"and judge it (at least {2 * min_samples})")  # fmt: skip
    half = max(1, len(x) // 2)
    calib, test_x, test_y = x[:half], x[half:], np.asarray(y)[half:]
    int8 = fp32.with_name(fp32.stem + ".int8.onnx")
    try:
        quantize_model(fp32, int8, f"held-out avatar {task} inputs", batches=[calib[i : i + 1] for i in
                       range(len(calib))], target="cpu")  # fmt: skip
    except QuantizationError as exc:
        return Int8Outcome(fp32, "fp32", None, f"stays FP32: INT8 quantisation failed ({exc})")
    report = parity(task, fp32, int8, test_x, test_y, budget=budget)
    json_path, _ = write_report(report, int8.with_name(int8.stem + ".parity"))
    if not report.passed:
        return Int8Outcome(fp32, "fp32", json_path, "stays FP32: INT8 failed the parity gate (" +
                           "; ".join(report.failures) + ")")  # fmt: skip
    m = report.metrics
    change = (f"r {m['r_fp32']:.3f} -> {m['r_candidate']:.3f}" if report.kind == "regressor" else
              f"AUC {m['auc_fp32']:.3f} -> {m['auc_candidate']:.3f}")  # fmt: skip
    return Int8Outcome(int8, "int8", json_path, f"INT8 passed the parity gate ({change} on {report.samples} "
                       "held-out samples)")  # fmt: skip
