"""Parity of a quantised (INT8/FP16) model against its FP32 model, with a gate on the metric drop.

What is measured depends on the model:
- classifiers (training tasks): AUC (macro one-vs-rest for 3 classes) and accuracy against the labels,
  FP32 vs candidate; gate: a drop of more than `budget.auc` (0.01 = 1 point) in either.
- regressor (head shift): Pearson r and MAE against the targets; gate: r drops by more than `budget.r`.
- pose landmark model: keypoint error of the candidate against FP32, in input pixels and as a fraction of
  torso size (shoulder midpoint to hip midpoint); gate: mean fraction above `budget.torso` (0.01 = 1 %).
- face landmark model: the same, as a fraction of face width.
- detectors: at each sample's best FP32 anchor, box-centre error as a fraction of box size (gate:
  `budget.torso`) and score agreement.
- selfie segmentation: IoU of the candidate's mask with the FP32 mask; gate: IoU below 1 - `budget.iou`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort

from contract.errors import EdgeScreenError
from contract.hashing import sha256_file
from export.calibration import ModelInfo, describe, parse_data, perception_inputs, task_samples

log = logging.getLogger(__name__)

# BlazePose body landmarks used for torso size.
_L_SHOULDER, _R_SHOULDER, _L_HIP, _R_HIP = 11, 12, 23, 24
_POSE_POINTS = 33


class VerifyError(EdgeScreenError, RuntimeError):
    """The models cannot be compared (different inputs, unknown task, unreadable)."""


@dataclass(frozen=True)
class Budget:
    auc: float = 0.01
    torso: float = 0.01
    r: float = 0.01
    iou: float = 0.02


@dataclass
class ParityReport:
    kind: str
    reference: dict[str, str]
    candidate: dict[str, str]
    data: str
    samples: int
    metrics: dict[str, float]
    budget: dict[str, float]
    passed: bool
    failures: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    def markdown(self) -> str:
        lines = [
            f"### Parity: {Path(self.candidate['path']).name} vs {Path(self.reference['path']).name}",
            "",
            f"- kind: {self.kind}; data: {self.data} ({self.samples} samples)",
            f"- candidate precision: {self.candidate['precision']}; sha256 {self.candidate['sha256'][:16]}",
            f"- result: {'PASS' if self.passed else 'FAIL: ' + '; '.join(self.failures)}",
            "",
            "| metric | FP32 | candidate | change | limit | ok |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for c in self.checks:
            lines.append(
                f"| {c['metric']} | {_fmt(c.get('reference'))} | {_fmt(c.get('candidate'))} | {_fmt(c.get('change'))} "
                f"| {c['limit']} | {'yes' if c['ok'] else 'no'} |"
            )
        others = {k: v for k, v in self.metrics.items() if not any(c["metric"] in k for c in self.checks)}
        if others:
            lines += ["", "| other measure | value |", "| --- | --- |"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in others.items()]
        return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Runner(Protocol):
    """What parity runs a model with: an ONNX Runtime session, or another runtime behind the same call
    (the GPU check runs TensorRT engines through it)."""

    def run(self, output_names: None, feeds: dict[str, Any]) -> list[Any]: ...


def _session(path: Path, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise VerifyError(f"ONNX Runtime cannot load {path}: {exc}") from exc


def _run_all(session: Runner, name: str, batches: list[npt.NDArray[np.float32]]) -> list[list[np.ndarray]]:
    return [[np.asarray(o) for o in session.run(None, {name: b})] for b in batches]


def _precision(path: Path) -> str:
    model = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    if {"QuantizeLinear", "DequantizeLinear"} & ops:
        return "int8"
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        return "fp16"
    return "fp32"


def _ref(path: Path) -> dict[str, str]:
    return {"path": str(path), "sha256": sha256_file(path), "precision": _precision(path)}


def verify_models(
    reference: Path,
    candidate: Path,
    data: str,
    budget: Budget | None = None,
    *,
    samples: int | None = None,
    seed: int = 7,
) -> ParityReport:
    """Run both models on held-out data of the model's task and compare; never raises on a failed gate."""
    reference, candidate = Path(reference), Path(candidate)
    ref_info, cand_info = describe(reference), describe(candidate)
    if ref_info.input_shape != cand_info.input_shape or ref_info.input_name != cand_info.input_name:
        raise VerifyError(
            f"{candidate} takes {cand_info.input_name}{cand_info.input_shape}, "
            f"{reference} takes {ref_info.input_name}{ref_info.input_shape}: not the same model"
        )
    return verify_runner(reference, _session(candidate), _ref(candidate), data, budget, samples=samples, seed=seed)


def verify_runner(
    reference: Path,
    candidate: Runner,
    described: dict[str, str],
    data: str,
    budget: Budget | None = None,
    *,
    samples: int | None = None,
    seed: int = 7,
) -> ParityReport:
    """The parity of `candidate`, anything that runs the model of `reference` (`described`: its path, sha256
    and precision for the report), against the FP32 `reference` on ONNX Runtime, with the gates of
    `verify_models`."""
    budget = budget or Budget()
    reference = Path(reference)
    ref_info = describe(reference)
    if _precision(reference) != "fp32":
        raise VerifyError(f"{reference} is not an FP32 model; the reference must be the FP32 export")
    spec = parse_data(data)
    ref_sess, cand_sess = _session(reference), candidate
    if ref_info.perception:
        inputs = perception_inputs(ref_info.perception, reference, spec, "evaluation", seed=seed, count=samples)
        ref_out = _run_all(ref_sess, ref_info.input_name, inputs)
        cand_out = _run_all(cand_sess, ref_info.input_name, inputs)
        kind, metrics, checks = _perception_parity(ref_info.perception, ref_out, cand_out, budget)
        used = f"{spec.raw} (evaluation photos)" if spec.kind != "path" else spec.raw
        count = len(inputs)
    else:
        kind, metrics, checks, count = _task_parity(
            ref_info, ref_sess, cand_sess, spec, seed=seed, samples=samples, budget=budget
        )
        used = spec.raw
    failures = [c["why"] for c in checks if not c["ok"]]
    report = ParityReport(
        kind=kind,
        reference=_ref(reference),
        candidate=described,
        data=used,
        samples=count,
        metrics=metrics,
        budget=asdict(budget),
        passed=not failures,
        failures=failures,
        checks=checks,
    )
    log.info("parity %s: %s", Path(described["path"]).name, "pass" if report.passed else "FAIL " + "; ".join(failures))
    return report


def write_report(report: ParityReport, stem: Path) -> tuple[Path, Path]:
    stem = Path(stem)
    if stem.suffix in (".json", ".md"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = stem.parent / f"{stem.name}.json", stem.parent / f"{stem.name}.md"
    json_path.write_text(report.to_json())
    md_path.write_text(report.markdown())
    return json_path, md_path


# ---------------------------------------------------------------- perception models


def _check(
    metric: str,
    reference: float | None,
    candidate: float | None,
    value: float,
    limit: float,
    *,
    why: str,
    higher_is_worse: bool = True,
) -> dict[str, Any]:
    ok = value <= limit if higher_is_worse else value >= limit
    change = None if reference is None or candidate is None else candidate - reference
    return {
        "metric": metric,
        "reference": reference,
        "candidate": candidate if candidate is not None else value,
        "change": change,
        "limit": f"{'≤' if higher_is_worse else '≥'} {limit:g}",
        "ok": bool(ok),
        "why": why.format(value=value, limit=limit),
    }


def _find(outputs: list[np.ndarray], size: int) -> np.ndarray:
    for out in outputs:
        if out.size == size:
            return out.reshape(-1)
    raise VerifyError(f"no output with {size} values among shapes {[o.shape for o in outputs]}")


def _keypoint_errors(
    ref: list[list[np.ndarray]], cand: list[list[np.ndarray]], size: int, stride: int, count: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-sample keypoint errors (px), plus the reference points and visibility logits."""
    errors, points, vis = [], [], []
    for r, c in zip(ref, cand, strict=True):
        rp = _find(r, size).reshape(-1, stride)[:count]
        cp = _find(c, size).reshape(-1, stride)[:count]
        errors.append(np.linalg.norm(rp[:, :2] - cp[:, :2], axis=1))
        points.append(rp[:, :2])
        vis.append(rp[:, 3] if stride >= 4 else np.full(count, 10.0))
    return np.array(errors), np.array(points), np.array(vis)


def _perception_parity(
    name: str, ref: list[list[np.ndarray]], cand: list[list[np.ndarray]], budget: Budget
) -> tuple[str, dict[str, float], list[dict[str, Any]]]:
    if name == "pose_landmark_full":
        errors, points, vis = _keypoint_errors(ref, cand, 195, 5, _POSE_POINTS)
        torso = np.linalg.norm(
            (points[:, _L_SHOULDER] + points[:, _R_SHOULDER]) / 2 - (points[:, _L_HIP] + points[:, _R_HIP]) / 2, axis=1
        )
        visible = vis > 0.0  # visibility logit > 0 ⇔ probability > 0.5
        frac = errors.mean(axis=1) / np.maximum(torso, 1e-6)
        frac_visible = np.array(
            [e[v].mean() if v.any() else 0.0 for e, v in zip(errors, visible, strict=True)]
        ) / np.maximum(torso, 1e-6)
        metrics = {
            "keypoint_error_px_mean": float(errors.mean()),
            "keypoint_error_px_p95": float(np.percentile(errors, 95)),
            "keypoint_error_px_max": float(errors.max()),
            "torso_px_mean": float(torso.mean()),
            "keypoint_error_torso_fraction": float(frac.mean()),
            "keypoint_error_torso_fraction_visible": float(frac_visible.mean()),
        }
        value = metrics["keypoint_error_torso_fraction"]
        return (
            "pose_landmarks",
            metrics,
            [
                _check(
                    "keypoint_error_torso_fraction",
                    None,
                    None,
                    value,
                    budget.torso,
                    why="mean keypoint error {value:.4f} of torso size > budget {limit:g}",
                )
            ],
        )
    if name == "face_landmark":
        errors, points, _ = _keypoint_errors(ref, cand, 1404, 3, 468)
        width = points[:, :, 0].max(axis=1) - points[:, :, 0].min(axis=1)
        frac = errors.mean(axis=1) / np.maximum(width, 1e-6)
        metrics = {
            "keypoint_error_px_mean": float(errors.mean()),
            "keypoint_error_px_max": float(errors.max()),
            "face_width_px_mean": float(width.mean()),
            "keypoint_error_face_fraction": float(frac.mean()),
        }
        return (
            "face_landmarks",
            metrics,
            [
                _check(
                    "keypoint_error_face_fraction",
                    None,
                    None,
                    float(frac.mean()),
                    budget.torso,
                    why="mean face keypoint error {value:.4f} of face width > budget {limit:g}",
                )
            ],
        )
    if name == "selfie_segmentation":
        ious = []
        for r, c in zip(ref, cand, strict=True):
            rm, cm = r[0] > 0.5, c[0] > 0.5
            union = np.logical_or(rm, cm).sum()
            ious.append(1.0 if union == 0 else float(np.logical_and(rm, cm).sum() / union))
        iou = float(np.mean(ious))
        return (
            "segmentation",
            {"mask_iou_mean": iou, "mask_iou_min": float(np.min(ious))},
            [
                _check(
                    "mask_iou_mean",
                    None,
                    None,
                    iou,
                    1.0 - budget.iou,
                    why="mask IoU {value:.4f} < {limit:g}",
                    higher_is_worse=False,
                )
            ],
        )
    if name in ("pose_detection", "face_detection_short_range"):
        return _detector_parity(ref, cand, budget)
    raise VerifyError(f"no parity measure for perception model {name!r}")


def _detector_parity(
    ref: list[list[np.ndarray]], cand: list[list[np.ndarray]], budget: Budget
) -> tuple[str, dict[str, float], list[dict[str, Any]]]:
    box_err, score_diff, agree = [], [], []
    for r, c in zip(ref, cand, strict=True):
        r_scores = next(o for o in r if o.shape[-1] == 1).reshape(-1)
        c_scores = next(o for o in c if o.shape[-1] == 1).reshape(-1)
        r_boxes = next(o for o in r if o.shape[-1] > 1).reshape(len(r_scores), -1)
        c_boxes = next(o for o in c if o.shape[-1] > 1).reshape(len(c_scores), -1)
        top = int(np.argmax(r_scores))
        size = max(float(np.mean(np.abs(r_boxes[top, 2:4]))), 1.0)
        box_err.append(float(np.linalg.norm(r_boxes[top, :2] - c_boxes[top, :2]) / size))
        rs, cs = (1 / (1 + np.exp(-np.clip(s, -60, 60))) for s in (r_scores, c_scores))
        score_diff.append(float(abs(rs[top] - cs[top])))
        best = np.argsort(-rs)[:10]
        agree.append(float(np.mean((rs[best] > 0.5) == (cs[best] > 0.5))))
    err = float(np.mean(box_err))
    metrics = {
        "top_box_centre_error_fraction": err,
        "top_score_abs_diff_mean": float(np.mean(score_diff)),
        "top10_decision_agreement": float(np.mean(agree)),
    }
    return (
        "detector",
        metrics,
        [
            _check(
                "top_box_centre_error_fraction",
                None,
                None,
                err,
                budget.torso,
                why="best box centre moved {value:.4f} of box size > budget {limit:g}",
            )
        ],
    )


# ---------------------------------------------------------------- training tasks


def _probabilities(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if logits.ndim == 1 or logits.shape[1] == 1:
        flat = logits.reshape(-1)
        p = flat if (flat.min() >= 0 and flat.max() <= 1) else 1 / (1 + np.exp(-flat))
        return np.stack([1 - p, p], axis=1)
    rows = logits.sum(axis=1)
    if logits.min() >= 0 and np.allclose(rows, 1, atol=1e-3):
        return logits
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def roc_auc(labels: npt.NDArray[Any], scores: npt.NDArray[np.float64]) -> float:
    """Binary ROC AUC via the rank-sum (ties get average ranks); NaN when one class is absent."""
    labels = np.asarray(labels).astype(bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def macro_auc(targets: npt.NDArray[Any], probs: npt.NDArray[np.float64]) -> float:
    if probs.shape[1] == 2:
        return roc_auc(targets == 1, probs[:, 1])
    values = [roc_auc(targets == k, probs[:, k]) for k in range(probs.shape[1])]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _classifier_output(outputs: list[np.ndarray], classes: int) -> np.ndarray:
    for out in outputs:
        if out.ndim == 2 and out.shape[1] == classes:
            return out
    for out in outputs:
        if classes == 2 and out.ndim <= 2 and out.reshape(len(out), -1).shape[1] == 1:
            return out.reshape(len(out), 1)
    raise VerifyError(f"no output with {classes} classes among shapes {[o.shape for o in outputs]}")


def _task_parity(
    info: ModelInfo,
    ref: Runner,
    cand: Runner,
    spec: Any,
    *,
    seed: int,
    samples: int | None,
    budget: Budget,
) -> tuple[str, dict[str, float], list[dict[str, Any]], int]:
    from contract.labels import TASK_KINDS

    data = task_samples(info, spec, seed, samples)
    if data.targets is None:
        raise VerifyError(f"{spec.raw!r} has no targets; parity of a {info.task} model needs labelled data")
    batch = 32
    ref_out: list[list[np.ndarray]] = []
    cand_out: list[list[np.ndarray]] = []
    for start in range(0, len(data.inputs), batch):
        chunk = data.inputs[start : start + batch]
        try:
            ref_out.append([np.asarray(o) for o in ref.run(None, {info.input_name: chunk})])
            cand_out.append([np.asarray(o) for o in cand.run(None, {info.input_name: chunk})])
        except Exception:  # a model exported with a fixed batch of 1: run one by one
            ref_out += [
                [np.asarray(o) for o in ref.run(None, {info.input_name: chunk[i : i + 1]})] for i in range(len(chunk))
            ]
            cand_out += [
                [np.asarray(o) for o in cand.run(None, {info.input_name: chunk[i : i + 1]})] for i in range(len(chunk))
            ]

    def stacked(outs: list[list[np.ndarray]]) -> list[np.ndarray]:
        return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]

    r_all, c_all = stacked(ref_out), stacked(cand_out)
    kind = TASK_KINDS.get(info.task)  # type: ignore[call-overload]
    if kind is None:
        raise VerifyError(f"unknown task {info.task!r} in {info.path}'s metadata")
    if kind == "regression":
        target = np.asarray(data.targets, dtype=np.float64).reshape(len(data.inputs), -1)
        rp = next(o for o in r_all if o.reshape(len(o), -1).shape[1] == target.shape[1]).reshape(target.shape)
        cp = next(o for o in c_all if o.reshape(len(o), -1).shape[1] == target.shape[1]).reshape(target.shape)
        r_ref = float(np.mean([np.corrcoef(rp[:, k], target[:, k])[0, 1] for k in range(target.shape[1])]))
        r_cand = float(np.mean([np.corrcoef(cp[:, k], target[:, k])[0, 1] for k in range(target.shape[1])]))
        mae_ref, mae_cand = float(np.abs(rp - target).mean()), float(np.abs(cp - target).mean())
        metrics = {
            "r_fp32": r_ref,
            "r_candidate": r_cand,
            "mae_fp32": mae_ref,
            "mae_candidate": mae_cand,
            "output_max_abs_diff": float(np.abs(rp - cp).max()),
        }
        checks = [
            _check("r", r_ref, r_cand, r_ref - r_cand, budget.r, why="r dropped by {value:.4f} > budget {limit:g}"),
            {
                "metric": "mae",
                "reference": mae_ref,
                "candidate": mae_cand,
                "change": mae_cand - mae_ref,
                "limit": "reported",
                "ok": True,
                "why": "",
            },
        ]
        return "regressor", metrics, checks, len(data.inputs)
    classes = len(data.label_map) if data.label_map else 2
    targets = np.asarray(data.targets).astype(int).reshape(-1)
    p_ref = _probabilities(_classifier_output(r_all, classes).astype(np.float64))
    p_cand = _probabilities(_classifier_output(c_all, classes).astype(np.float64))
    auc_ref, auc_cand = macro_auc(targets, p_ref), macro_auc(targets, p_cand)
    acc_ref = float((p_ref.argmax(1) == targets).mean())
    acc_cand = float((p_cand.argmax(1) == targets).mean())
    metrics = {
        "auc_fp32": auc_ref,
        "auc_candidate": auc_cand,
        "accuracy_fp32": acc_ref,
        "accuracy_candidate": acc_cand,
        "prediction_agreement": float((p_ref.argmax(1) == p_cand.argmax(1)).mean()),
        "probability_max_abs_diff": float(np.abs(p_ref - p_cand).max()),
    }
    auc_drop = auc_ref - auc_cand if not (math.isnan(auc_ref) or math.isnan(auc_cand)) else 0.0
    checks = [
        _check("auc", auc_ref, auc_cand, auc_drop, budget.auc, why="AUC dropped by {value:.4f} > budget {limit:g}"),
        _check(
            "accuracy",
            acc_ref,
            acc_cand,
            acc_ref - acc_cand,
            budget.auc,
            why="accuracy dropped by {value:.4f} > budget {limit:g}",
        ),
    ]
    return "classifier", metrics, checks, len(data.inputs)
