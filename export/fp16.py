"""FP16 conversion with onnxconverter-common, inputs and outputs kept FP32 so callers do not change."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from contract.hashing import sha256_file
from export.calibration import perception_name
from export.quantize import QuantizationError

log = logging.getLogger(__name__)

# Ops whose FP16 form loses too much or that ONNX Runtime/TensorRT run in FP32 anyway.
KEEP_FP32_OPS = ["Resize", "TopK", "NonMaxSuppression", "RoiAlign", "Range"]


def convert_fp16(model_path: Path, out: Path) -> int:
    """Write an FP16 copy of `model_path` to `out`; returns the number of FP16 initializers."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise QuantizationError("FP16 conversion needs onnxconverter-common (the `export` extra)") from exc
    model_path, out = Path(model_path), Path(out)
    try:
        model = onnx.load(str(model_path))
    except Exception as exc:  # onnx raises DecodeError and others with no common base
        raise QuantizationError(f"{model_path} is not a readable ONNX model: {exc}") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("edgescreen.precision") in ("int8", "fp16") or any(
        n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node
    ):
        raise QuantizationError(f"{model_path} is not an FP32 model; convert the FP32 export to FP16")
    converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=KEEP_FP32_OPS)
    count = sum(1 for i in converted.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16)
    if count == 0:
        raise QuantizationError(f"{model_path}: no weight became FP16; FP16 was asked for, so this is an error")
    del converted.metadata_props[:]
    meta.update({"edgescreen.precision": "fp16", "edgescreen.fp32_sha256": sha256_file(model_path)})
    perception = perception_name(model_path.name)
    if perception and "edgescreen.perception_model" not in meta:
        meta["edgescreen.perception_model"] = perception
    for key, value in meta.items():
        converted.metadata_props.add(key=key, value=value)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(converted, str(out))
    log.info("wrote %s with %d FP16 initializers", out, count)
    return count
