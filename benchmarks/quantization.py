"""FP32 vs INT8 on ONNX Runtime (CPU): latency on 1 and 2 threads and the accuracy change.

Models: the pose landmark model (pose_landmark_full, converted from MediaPipe) and ScoNet-MT (from a
training checkpoint given with --sconet-checkpoint, else freshly initialised, which the table says).
INT8 is made by the export chain itself (`export.quantize`, static QDQ, per-channel weights) with the
CPU activation scheme and with the TensorRT one; accuracy is the parity report of `export.verify`.
`--trained FP32.onnx DATA` adds a trained export, calibrated and verified on held-out data of its task.
Prints a markdown table. Usage: python benchmarks/quantization.py [--runs N] [--sconet-checkpoint F]
[--trained FP32.onnx DATA ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.model_store import default_model_dir
from export.calibration import CalibrationError, describe, parse_data, perception_inputs
from export.quantize import quantize_model
from export.verify import ParityReport, verify_models

log = logging.getLogger("benchmarks.quantization")


def latency_ms(path: Path, feed: dict[str, np.ndarray], threads: int, runs: int) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    for _ in range(5):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def accuracy_cell(report: ParityReport) -> str:
    m = report.metrics
    if report.kind == "pose_landmarks":
        text = f"{m['keypoint_error_px_mean']:.2f} px = {100 * m['keypoint_error_torso_fraction']:.2f} % torso"
    elif report.kind == "classifier":
        text = (
            f"AUC {m['auc_fp32']:.3f}→{m['auc_candidate']:.3f}, acc {m['accuracy_fp32']:.3f}→"
            f"{m['accuracy_candidate']:.3f}, agreement {m['prediction_agreement']:.3f}"
        )
    else:
        text = ", ".join(f"{k} {v:.3g}" for k, v in m.items())
    return f"{text} ({'within' if report.passed else 'OVER'} budget)"


def sconet_fp32(folder: Path, checkpoint: Path | None) -> tuple[Path, str]:
    """ScoNet-MT as ONNX: from a checkpoint, or freshly initialised (then accuracy is not meaningful)."""
    import torch

    from contract.labels import GAIT_LABELS
    from export.onnx_export import export_checkpoint, export_module

    out = folder / "sconet_mt.onnx"
    if checkpoint is not None:
        export_checkpoint(checkpoint, out)
        return out, f"checkpoint {checkpoint.name}"
    from training.models.sconet import sconet_mt

    torch.manual_seed(0)
    model = sconet_mt()
    frames, height, width = 30, 64, 44
    rng = np.random.default_rng(0)
    held = (rng.random((4, frames, height, width)) > 0.5).astype(np.float32)
    meta = {
        "task": "gait",
        "arch": "sconet_mt",
        "label_map": GAIT_LABELS,
        "input_spec": {"name": "silhouettes", "shape": [None, frames, height, width], "dtype": "float32"},
    }
    export_module(model, meta, out, held)
    return out, "untrained (random init)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sconet-checkpoint", type=Path, default=None)
    parser.add_argument(
        "--trained", nargs=2, action="append", default=[], metavar=("FP32_ONNX", "DATA"),
        help="a trained FP32 export (e.g. from `edgescreen models train-device`) and held-out data of its task "
        "in its real format (e.g. an avatar head-shift image folder); repeatable",
    )  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgescreen-bench-") as tmp:
        folder = Path(tmp)
        pose = default_model_dir() / "pose_landmark_full.onnx"
        jobs: list[tuple[str, Path, str, str]] = [("pose_landmark_full", pose, "photos", "MediaPipe weights")]
        try:
            sconet, note = sconet_fp32(folder, args.sconet_checkpoint)
            jobs.append(("ScoNet-MT", sconet, "synthetic:24", note))
        except (ImportError, RuntimeError, ValueError) as exc:
            rows.append(f"| ScoNet-MT | - | - | - | - | - | - | not measured: {exc} |")
        for model, data in args.trained:
            jobs.append((Path(model).name.removesuffix(".onnx"), Path(model), data, "trained on avatars"))
        for label, fp32, data, note in jobs:
            info = describe(fp32)
            have_task_data = info.perception is not None or importlib.util.find_spec("training.data") is not None
            if info.perception:
                sample = perception_inputs(info.perception, fp32, parse_data("photos"), "evaluation", seed=7, count=1)[
                    0
                ]
            else:
                shape = [d if d is not None else 1 for d in info.input_shape]
                sample = (np.random.default_rng(1).random(shape) > 0.5).astype(np.float32)
            feed = {info.input_name: sample}
            base = {t: latency_ms(fp32, feed, t, args.runs) for t in (1, 2)}
            rows.append(f"| {label} | FP32 | {base[1]:.2f} | {base[2]:.2f} | 1.00× / 1.00× | - | {note} |")
            for target in ("cpu", "tensorrt"):
                int8 = folder / f"{fp32.stem}.{target}.int8.onnx"
                try:
                    if have_task_data:
                        quantize_model(fp32, int8, data, method="minmax", target=target, samples=16)
                        accuracy = accuracy_cell(verify_models(fp32, int8, data))
                    else:
                        # Latency only: INT8 speed does not depend on what the calibrator saw.
                        random_sils = [
                            (np.random.default_rng(i).random(sample.shape) > 0.5).astype(np.float32) for i in range(8)
                        ]
                        quantize_model(fp32, int8, "random silhouettes", target=target, batches=random_sils)
                        accuracy = (
                            "not measured: no gait data loader (`training.data`) in the tree; "
                            "calibrated on random silhouettes, latency only"
                        )
                except (CalibrationError, RuntimeError, ImportError) as exc:
                    rows.append(f"| {label} | INT8 ({target}) | - | - | - | - | failed: {exc} |")
                    continue
                lat = {t: latency_ms(int8, feed, t, args.runs) for t in (1, 2)}
                speed = f"{base[1] / lat[1]:.2f}× / {base[2] / lat[2]:.2f}×"
                rows.append(
                    f"| {label} | INT8 QDQ ({target} activations) | {lat[1]:.2f} | {lat[2]:.2f} | {speed} | "
                    f"{accuracy} | {note} |"
                )
    cpu = platform.processor() or platform.machine()
    print(f"Machine: {platform.node()} · {cpu} · {os.cpu_count()} logical CPUs · onnxruntime {ort.__version__}")
    print(f"Median of {args.runs} runs after 5 warm-up runs, batch 1, CPUExecutionProvider.\n")
    print(
        "| model | precision | 1 thread ms | 2 threads ms | speed-up (1 / 2 thr) | accuracy change vs FP32 | weights |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
