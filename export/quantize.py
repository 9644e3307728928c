"""Static INT8 quantisation in QDQ form (per-channel weights), checked to really be INT8.

Two schemes:
- `tensorrt` (default): signed INT8 activations with zero point 0 and symmetric per-channel weights,
  the only form TensorRT's explicit quantization accepts, with Q/DQ placed on the inputs of the weighted
  layers only (NVIDIA's recommended placement: TensorRT fuses the activation after a convolution and
  picks the output precision itself). Quantising a convolution's output instead would use its range
  before the ReLU6 that follows (e.g. −40…31 for 0…6 kept), which the symmetric scheme cannot fold away.
- `cpu`: unsigned INT8 activations (asymmetric), signed 7-bit weights (`reduce_range`: x86 CPUs without
  VNNI saturate the 16-bit sums of U8×S8 products with full 8-bit weights), Q/DQ on every quantisable op,
  so that ONNX Runtime runs QLinear kernels end to end.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from contract.errors import EdgeScreenError
from contract.hashing import sha256_file
from export.calibration import ArrayReader, calibration_batches, describe, parse_data

log = logging.getLogger(__name__)

Method = Literal["minmax", "entropy", "percentile"]
Target = Literal["tensorrt", "cpu"]
METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


class QuantizationError(EdgeScreenError, RuntimeError):
    """The model could not be quantised as asked (never silently left in float)."""


@dataclass(frozen=True)
class QdqSummary:
    weight_ops: int  # Conv/ConvTranspose/Gemm/MatMul nodes with a constant weight
    quantized_weights: int  # of those, weights fed through DequantizeLinear of an INT8 initializer
    per_channel_weights: int  # of those, with one scale per output channel
    activation_quantizers: int  # QuantizeLinear nodes on activations


@dataclass(frozen=True)
class QuantizeResult(QdqSummary):
    calibration_samples: int
    method: str


def inspect_qdq(model: onnx.ModelProto) -> QdqSummary:
    """Count what is really quantised in a QDQ graph."""
    inits = {i.name: i for i in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    weight_ops = quantized = per_channel = 0
    for node in model.graph.node:
        if node.op_type not in WEIGHT_OPS or len(node.input) < 2:
            continue
        weight = node.input[1]
        source = producers.get(weight)
        if source is not None and source.op_type == "DequantizeLinear" and source.input[0] in inits:
            weight_ops += 1
            q_weight = inits[source.input[0]]
            if q_weight.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
                quantized += 1
                scale = inits.get(source.input[1])
                if scale is not None and numpy_helper.to_array(scale).size > 1:
                    per_channel += 1
        elif weight in inits or (source is not None and source.op_type in ("Constant", "Cast", "Transpose")):
            weight_ops += 1
    activation_q = sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits)
    return QdqSummary(weight_ops, quantized, per_channel, activation_q)


def require_int8(summary: QdqSummary, path: Path) -> None:
    """Fail unless weights and activations are both quantised."""
    if summary.quantized_weights == 0 or summary.activation_quantizers == 0:
        raise QuantizationError(
            f"{path} is not an INT8 model: {summary.quantized_weights}/{summary.weight_ops} weight ops quantised, "
            f"{summary.activation_quantizers} activation quantizers; INT8 was asked for, so this is an error"
        )
    if summary.quantized_weights < summary.weight_ops:
        log.warning(
            "%s: %d of %d weight ops stay in float",
            path,
            summary.weight_ops - summary.quantized_weights,
            summary.weight_ops,
        )


def quantize_model(
    model_path: Path,
    out: Path,
    calibration: str,
    *,
    method: Method = "minmax",
    samples: int | None = None,
    seed: int = 1,
    target: Target = "tensorrt",
    percentile: float = 99.999,
    batches: list[np.ndarray] | None = None,
) -> QuantizeResult:
    """Calibrate on `calibration` data of the model's task and write a static INT8 QDQ model to `out`.

    `batches` (inputs prepared by the caller) replaces reading `calibration`, which then only names them.
    """
    model_path, out = Path(model_path), Path(out)
    if method not in METHODS:
        raise QuantizationError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")
    info = describe(model_path)
    if info.metadata.get("edgescreen.precision") in ("int8", "fp16"):
        raise QuantizationError(
            f"{model_path} is already {info.metadata['edgescreen.precision']}; quantise the FP32 model"
        )
    if batches is None:
        spec = parse_data(calibration)
        count = samples if samples is not None else spec.count
        batches = calibration_batches(info, spec, seed, count)
    if len(batches) < 2:
        raise QuantizationError(f"only {len(batches)} calibration sample(s) from {calibration!r}; need at least 2")
    log.info("calibrating %s on %d samples (%s, %s)", model_path.name, len(batches), method, calibration)
    extra: dict[str, object] = {"CalibTensorRangeSymmetric": False}
    op_types: list[str] | None = None
    if target == "tensorrt":
        op_types = sorted(WEIGHT_OPS)
        extra.update(
            {"ActivationSymmetric": True, "WeightSymmetric": True, "OpTypesToExcludeOutputQuantization": op_types}
        )
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgescreen-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            # Folds constant casts/transposes onto the weights so that the quantiser sees them as weights.
            quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True)
        except Exception as exc:  # onnxruntime's optimizer raises untyped errors
            raise QuantizationError(f"cannot prepare {model_path} for quantisation: {exc}") from exc
        try:
            quantize_static(
                str(prepared),
                str(out),
                ArrayReader(info.input_name, batches),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=target == "cpu",
                op_types_to_quantize=op_types,
                activation_type=QuantType.QInt8 if target == "tensorrt" else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=METHODS[method],
                extra_options=extra,
            )
        except Exception as exc:  # the calibrators raise ValueError, RuntimeError and ORT errors
            raise QuantizationError(f"quantising {model_path} failed: {exc}") from exc
    quantized = onnx.load(str(out))
    summary = inspect_qdq(quantized)
    try:
        require_int8(summary, out)
    except QuantizationError:
        out.unlink(missing_ok=True)
        raise
    _stamp(
        quantized,
        info.metadata,
        {
            "edgescreen.precision": "int8",
            "edgescreen.quantization": f"static QDQ, per-channel weights, {method} calibration, {target} activations",
            "edgescreen.calibration": f"{calibration} ({len(batches)} samples, seed {seed})",
            "edgescreen.fp32_sha256": sha256_file(model_path),
            **({"edgescreen.perception_model": info.perception} if info.perception else {}),
        },
    )
    onnx.save(quantized, str(out))
    return QuantizeResult(
        summary.weight_ops,
        summary.quantized_weights,
        summary.per_channel_weights,
        summary.activation_quantizers,
        len(batches),
        method,
    )


def _stamp(model: onnx.ModelProto, inherited: dict[str, str], extra: dict[str, str]) -> None:
    """Carry the export metadata (label map, input spec, ...) over and add what this step did."""
    merged = {**inherited, **extra}
    del model.metadata_props[:]
    for key, value in merged.items():
        model.metadata_props.add(key=key, value=value)


def weight_dtype_counts(model: onnx.ModelProto) -> dict[str, int]:
    """How many initializers of each dtype (for reports)."""
    counts: dict[str, int] = {}
    for init in model.graph.initializer:
        name = str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)))
        counts[name] = counts.get(name, 0) + 1
    return counts
