"""Make signed model bundles for a device role, and the site signing key that signs them."""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import onnx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.bundle import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BundleError,
    BundleManifest,
    BundleModel,
    InputSpec,
    key_id,
    load_private_key,
)
from contract.hashing import sha256_file

log = logging.getLogger(__name__)

_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


def generate_keypair(private_path: Path, public_path: Path | None = None, overwrite: bool = False) -> str:
    """Write a new Ed25519 site signing key (PEM, mode 0600) and its public key; returns the key id."""
    private_path = Path(private_path)
    public_path = Path(public_path) if public_path is not None else private_path.with_suffix(".pub")
    for path in (private_path, public_path):
        if path.exists() and not overwrite:
            raise BundleError(f"{path} exists; refusing to overwrite a key (pass --force to replace it)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    return key_id(key.public_key())


def _dtype_name(elem_type: int) -> str:
    return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def describe_onnx(path: Path) -> dict[str, Any]:
    """Precision, inputs and the export metadata of an ONNX file, as the manifest records them."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others with no common base
        raise BundleError(f"{path} is not a readable ONNX model: {exc}") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    ops = {node.op_type for node in model.graph.node}
    initializer_names = {init.name for init in model.graph.initializer}
    fp16 = any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer)
    precision = "int8" if ops & _QDQ_OPS else ("fp16" if fp16 else "fp32")
    spec = json.loads(meta["input_spec"]) if "input_spec" in meta else {}
    inputs = []
    for graph_input in model.graph.input:
        if graph_input.name in initializer_names:
            continue
        tensor = graph_input.type.tensor_type
        shape: list[int | str | None] = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim
        ]
        layout = spec.get("layout") if spec.get("name") == graph_input.name else meta.get("layout")
        inputs.append(InputSpec(name=graph_input.name, shape=shape, dtype=_dtype_name(tensor.elem_type), layout=layout))
    return {
        "precision": precision,
        "inputs": inputs,
        "task": meta.get("task") or meta.get("model_name"),
        "label_map": json.loads(meta["label_map"]) if "label_map" in meta else None,
        "normalisation": json.loads(meta["normalisation"]) if "normalisation" in meta else None,
    }


def _model_name(path: Path) -> str:
    name = path.name.removesuffix(".onnx")
    return name


def _variant_base(name: str, names: set[str]) -> str | None:
    for suffix in (".int8", "_int8", "-int8", ".fp16", "_fp16", "-fp16"):
        if name.endswith(suffix) and name.removesuffix(suffix) in names:
            return name.removesuffix(suffix)
    return None


def _parity_by_sha(reports: list[Path]) -> dict[str, dict[str, Any]]:
    """Parity report summaries keyed by the sha256 of the quantised model they checked."""
    found: dict[str, dict[str, Any]] = {}
    for path in reports:
        try:
            report = json.loads(Path(path).read_text())
            found[report["candidate"]["sha256"]] = {
                "kind": report["kind"],
                "passed": report["passed"],
                "metrics": report["metrics"],
                "budget": report["budget"],
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{path} is not a parity report from `export verify`: {exc}") from exc
    return found


def build_bundle(
    role: str,
    models: list[Path],
    signing_key: Path,
    out: Path,
    parity_reports: list[Path] | None = None,
) -> BundleManifest:
    """Write a signed bundle of `models` for `role` to `out` (an uncompressed tar)."""
    key = load_private_key(signing_key)
    parity = _parity_by_sha(parity_reports or [])
    paths = [Path(p) for p in models]
    names = [_model_name(p) for p in paths]
    if len(set(names)) != len(names):
        raise BundleError(f"two models share a name: {names}")
    entries: list[BundleModel] = []
    for path, name in zip(paths, names, strict=True):
        if not path.is_file():
            raise BundleError(f"model {path} does not exist")
        info = describe_onnx(path)
        digest = sha256_file(path)
        base = _variant_base(name, set(names))
        if info["precision"] == "int8" and digest not in parity:
            log.warning("no parity report given for INT8 model %s; the manifest records no metrics for it", path)
        entries.append(
            BundleModel(
                name=name,
                file=f"models/{path.name}",
                sha256=digest,
                size=path.stat().st_size,
                precision=info["precision"],
                variant_of=base,
                task=info["task"],
                inputs=info["inputs"],
                label_map=info["label_map"],
                normalisation=info["normalisation"],
                metrics=parity.get(digest),
            )
        )
    manifest = BundleManifest(
        role=role,
        created=datetime.now(UTC).replace(microsecond=0),
        key_id=key_id(key.public_key()),
        models=entries,
    )
    manifest_bytes = manifest.model_dump_json(indent=2).encode()
    signature = key.sign(manifest_bytes)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    os.close(fd)
    try:
        with tarfile.open(tmp_name, "w:", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, MANIFEST_NAME, manifest_bytes)
            _add_bytes(tar, SIGNATURE_NAME, signature)
            for path, entry in zip(paths, entries, strict=True):
                member = tar.gettarinfo(str(path), arcname=entry.file)
                member.uid = member.gid = 0
                member.uname = member.gname = ""
                member.mode = 0o644
                with open(path, "rb") as fh:
                    tar.addfile(member, fh)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    log.info("wrote %s bundle %s with %d models, key id %s", role, out, len(entries), manifest.key_id)
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))
