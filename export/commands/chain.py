"""`export onnx | quantize | fp16 | verify | bundle | keygen`; handlers import their work lazily."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from contract.errors import EdgeScreenError
from contract.roles import role_names

if TYPE_CHECKING:
    from edgescreen.cli import Groups

log = logging.getLogger(__name__)


def register(groups: Groups) -> None:
    export = groups.group("export")

    p = export.add_parser("onnx", help="export a training checkpoint to ONNX, checked against PyTorch")
    p.add_argument("checkpoint", type=Path, help="checkpoint written by `edgescreen train`")
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference allowed vs PyTorch (FP32)")
    p.add_argument("--samples", type=int, default=16, help="held-out inputs to compare on")
    p.set_defaults(func=_onnx)

    p = export.add_parser("quantize", help="static INT8 (QDQ, per-channel weights) from calibration data")
    p.add_argument("model", type=Path, help="FP32 ONNX model")
    p.add_argument("--calibration", required=True, help="synthetic[:N] or a path (images for perception models)")
    p.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="minmax")
    p.add_argument("--samples", type=int, default=None, help="calibration samples (default: all / 64)")
    p.add_argument("--seed", type=int, default=1, help="seed of synthetic calibration data")
    p.add_argument(
        "--target",
        choices=["tensorrt", "cpu"],
        default="tensorrt",
        help="tensorrt: symmetric INT8 activations (TensorRT explicit quantization); cpu: UINT8 activations",
    )
    p.add_argument("--out", type=Path, required=True, help="INT8 ONNX file to write")
    p.set_defaults(func=_quantize)

    p = export.add_parser("fp16", help="convert weights and compute to FP16, keeping FP32 inputs/outputs")
    p.add_argument("model", type=Path, help="FP32 ONNX model")
    p.add_argument("--out", type=Path, required=True, help="FP16 ONNX file to write")
    p.set_defaults(func=_fp16)

    p = export.add_parser("verify", help="parity report of a quantised model against its FP32 model")
    p.add_argument("reference", type=Path, help="FP32 ONNX model")
    p.add_argument("candidate", type=Path, help="INT8 or FP16 ONNX model")
    p.add_argument("--data", default="synthetic", help="synthetic[:N] or a path (images for perception models)")
    p.add_argument("--samples", type=int, default=None, help="evaluation samples")
    p.add_argument("--seed", type=int, default=7, help="seed of synthetic evaluation data (not the calibration seed)")
    p.add_argument("--budget-auc", type=float, default=0.01, help="largest allowed AUC/accuracy drop (0.01 = 1 point)")
    p.add_argument("--budget-torso", type=float, default=0.01, help="largest mean keypoint error / torso size")
    p.add_argument("--budget-r", type=float, default=0.01, help="largest allowed drop of a regressor's r")
    p.add_argument("--budget-iou", type=float, default=0.02, help="largest allowed mask IoU loss (segmentation)")
    p.add_argument("--report", type=Path, default=None, help="report path stem (writes .json and .md)")
    p.set_defaults(func=_verify)

    p = export.add_parser("bundle", help="signed model bundle for one device role")
    p.add_argument("--role", choices=role_names(), required=True)
    p.add_argument("--models", type=Path, nargs="+", required=True, help="ONNX models (INT8 variants too)")
    p.add_argument("--parity", type=Path, nargs="*", default=[], help="parity reports (JSON) from `export verify`")
    p.add_argument("--key", type=Path, required=True, help="site signing key (from `export keygen`)")
    p.add_argument("--out", type=Path, required=True, help="bundle archive to write (.tar)")
    p.set_defaults(func=_bundle)

    p = export.add_parser("keygen", help="make an Ed25519 site signing key and its public key")
    p.add_argument("--out", type=Path, required=True, help="private key file (PEM, 0600); public key: .pub beside it")
    p.add_argument("--force", action="store_true", help="replace an existing key")
    p.set_defaults(func=_keygen)


def _onnx(args: argparse.Namespace) -> int:
    from export.onnx_export import ExportError, export_checkpoint

    try:
        result = export_checkpoint(args.checkpoint, args.out, tolerance=args.tolerance, samples=args.samples)
    except ExportError as exc:
        raise EdgeScreenError(str(exc)) from exc
    print(f"wrote {args.out}: max abs difference vs PyTorch {result.max_abs_diff:.3g} on {result.samples} inputs")
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from export.calibration import CalibrationError
    from export.quantize import QuantizationError, quantize_model

    try:
        result = quantize_model(
            args.model,
            args.out,
            args.calibration,
            method=args.method,
            samples=args.samples,
            seed=args.seed,
            target=args.target,
        )
    except (QuantizationError, CalibrationError) as exc:
        raise EdgeScreenError(str(exc)) from exc
    print(
        f"wrote {args.out}: INT8 QDQ, {result.quantized_weights}/{result.weight_ops} weight ops quantised "
        f"(per-channel), {result.activation_quantizers} activation quantizers, {result.calibration_samples} "
        f"calibration samples ({args.method})"
    )
    return 0


def _fp16(args: argparse.Namespace) -> int:
    from export.fp16 import convert_fp16
    from export.quantize import QuantizationError

    try:
        count = convert_fp16(args.model, args.out)
    except QuantizationError as exc:
        raise EdgeScreenError(str(exc)) from exc
    print(f"wrote {args.out}: {count} FP16 initializers, inputs/outputs kept FP32")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from export.calibration import CalibrationError
    from export.verify import Budget, VerifyError, verify_models, write_report

    budget = Budget(auc=args.budget_auc, torso=args.budget_torso, r=args.budget_r, iou=args.budget_iou)
    try:
        report = verify_models(args.reference, args.candidate, args.data, budget, samples=args.samples, seed=args.seed)
    except (VerifyError, CalibrationError) as exc:
        raise EdgeScreenError(str(exc)) from exc
    stem = args.report or args.candidate.parent / f"{args.candidate.name.removesuffix('.onnx')}.parity"
    json_path, md_path = write_report(report, stem)
    print(report.markdown())
    print(f"report: {json_path} {md_path}")
    if not report.passed:
        raise EdgeScreenError("parity budget exceeded: " + "; ".join(report.failures))
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from contract.bundle import BundleError
    from export.bundle import build_bundle

    try:
        manifest = build_bundle(args.role, args.models, args.key, args.out, parity_reports=args.parity)
    except BundleError as exc:
        raise EdgeScreenError(str(exc)) from exc
    print(f"wrote {args.out}: {args.role} bundle, key id {manifest.key_id}")
    print(json.dumps([{"name": m.name, "precision": m.precision, "sha256": m.sha256} for m in manifest.models]))
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from contract.bundle import BundleError
    from export.bundle import generate_keypair

    try:
        kid = generate_keypair(args.out, overwrite=args.force)
    except BundleError as exc:
        raise EdgeScreenError(str(exc)) from exc
    print(f"wrote signing key {args.out} (keep it off the devices) and public key {args.out.with_suffix('.pub')}")
    print(f"key id {kid}")
    return 0
