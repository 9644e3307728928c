"""The device-model chain after training: each TrainedModel → ONNX (FP32, checked against PyTorch) with its model
card in the metadata → INT8 behind the parity gate (export.device_models.int8) → one signed bundle per device role
(export/bundle.py) → installed into the model store's bundle folder (edge/bundles.py), where the shipped profiles
name the files: `<model dir>/bundles/<role>/current/models/<name>.onnx`."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from contract.model_card import MODEL_CARD_KEY, card_metadata
from export.device_models.int8 import quantize_with_gate
from training.device_models import TrainedModel

log = logging.getLogger(__name__)

# The device role each model's profile key belongs to (the bundle's role).
ROLE_OF_KEY = {"gait": "gait", "headpose": "headpose", "posture": "posture"}
# What a device of each role does when the chain installs no model for it (the learning gate stopped it).
WITHOUT_MODEL = {
    "gait": "the booth keeps measuring walks and publishes them without a risk class: nobody is screened, as with "
    "no trained model (gait.model unset)",
    "headpose": "the shipped head-pose station profile needs it (shift_source both): a station with no head-shift "
    "model installed refuses to start, one installed earlier stays current",
    "posture": "the posture role keeps its rule-based bands without a risk probability (posture.model unset)",
}


@dataclass
class ShippedModel:
    role: str
    name: str
    task: str
    fp32: Path
    device_file: Path  # the file that went into the bundle: what the device runs
    precision: str
    note: str
    card: dict[str, Any]
    parity_report: Path | None


def role_of(model: TrainedModel) -> str:
    prefix = model.profile_key.split(".", 1)[0]
    if prefix not in ROLE_OF_KEY:
        raise ValueError(f"model {model.name}: profile key {model.profile_key!r} names no device role")
    return ROLE_OF_KEY[prefix]


def stamp_card(path: Path, card: dict[str, Any]) -> None:
    """Write `card` into the ONNX file's metadata (replacing an earlier card)."""
    proto = onnx.load(str(path))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != MODEL_CARD_KEY]
    del proto.metadata_props[:]
    for key, value in [*kept, *card_metadata(card).items()]:
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def export_fp32(model: TrainedModel, out_dir: Path) -> Path:
    """The checkpoint as ONNX, checked against PyTorch on the held-out inputs, card in its metadata."""
    from contract.hashing import sha256_file
    from export.onnx_export import export_module
    from training.checkpoint import load_checkpoint

    module, meta = load_checkpoint(model.checkpoint)
    out = out_dir / f"{model.name}.fp32.onnx"
    held = np.ascontiguousarray(model.held_out[: min(len(model.held_out), 32)], np.float32)
    export_module(module, meta, out, held, checkpoint_sha256=sha256_file(model.checkpoint))
    stamp_card(out, model.card)
    return out


def ship(model: TrainedModel, out_dir: Path) -> ShippedModel:
    """Export, quantise behind the gate and stage the device's file under out_dir/bundle/<role>/."""
    role = role_of(model)
    fp32 = export_fp32(model, out_dir / "onnx")
    outcome = quantize_with_gate(model.task, fp32, model.held_out, model.held_out_labels)
    card = dict(model.card, precision=outcome.precision, precision_note=outcome.note)
    staged = out_dir / "bundle" / role / f"{model.name}.onnx"
    staged.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(outcome.chosen, staged)
    stamp_card(staged, card)
    stamp_card(fp32, card)
    if outcome.report is not None:  # the report names the candidate by hash: point it at the staged copy
        _retarget_report(outcome.report, outcome.chosen, staged)
    log.info("%s (%s): %s", model.name, role, outcome.note)
    return ShippedModel(role, model.name, model.task, fp32, staged, outcome.precision, outcome.note, card,
                        outcome.report)  # fmt: skip


def _retarget_report(report: Path, chosen: Path, staged: Path) -> None:
    from contract.hashing import sha256_file

    data = json.loads(report.read_text())
    if Path(data["candidate"]["path"]) == chosen:
        data["candidate"] = {**data["candidate"], "path": str(staged), "sha256": sha256_file(staged)}
        report.write_text(json.dumps(data, indent=2))


def bundle_and_install(
    shipped: list[ShippedModel], out_dir: Path, signing_key: Path, bundle_dir: Path
) -> dict[str, Path]:
    """One signed bundle per role, verified and installed; returns each role's installed release folder."""
    from contract.bundle import load_private_key
    from edge.bundles import install_bundle
    from export.bundle import build_bundle

    public = load_private_key(signing_key).public_key()
    releases: dict[str, Path] = {}
    for role in sorted({s.role for s in shipped}):
        mine = [s for s in shipped if s.role == role]
        bundle = out_dir / f"{role}-bundle.tar"
        reports = [s.parity_report for s in mine if s.parity_report is not None and s.precision == "int8"]
        build_bundle(role, [s.device_file for s in mine], signing_key, bundle, parity_reports=reports)
        releases[role] = install_bundle(bundle, public, bundle_dir).release
    return releases
