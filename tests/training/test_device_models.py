"""The device-model chain end to end at its smallest size: `edgescreen models train-device` trains the station's
shift regressor on avatar head-station images, exports it with its model card, gates INT8, signs and installs the
headpose bundle; the shipped head-pose-station profile, pointed at that model store, then loads the installed model
and a station run over an avatar clip through the real perception yields shift values from it. A failing INT8 gate
keeps FP32 and says so; a role whose trainer cannot train is reported in one line.

The smallest size's model has not learned (its CV r is not clear of chance), so these tests of the chain past
training let it through the learning gate; tests/training/test_device_model_gate.py tests the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml

from contract.hashing import sha256_file
from contract.model_card import read_model_card, untrained_reason
from edge.roles.base import EmitContext

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "firmware_config" / "profiles" / "head-pose-station.yaml"
DEVICE_MODEL_DIR = "/var/cache/edgescreen/models"  # the unit's EDGESCREEN_MODEL_DIR (systemd/edgescreen-edge@)


@pytest.fixture(scope="module")
def station_run(tmp_path_factory: pytest.TempPathFactory, anny_model: Any) -> dict[str, Any]:
    import torch

    from export.device_models import pipeline

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("device-models")
    store = out / "models"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "learned", lambda _card: None)
        run = pipeline.train_device_models(
            out / "work", budget_s=60.0, roles=("station",), bundle_dir=store / "bundles", cards=out / "models.md"
        )
    return {"run": run, "store": store, "cards": out / "models.md", "out": out}


def _metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_installed_bundle_carries_the_trained_model_and_its_card(station_run: dict[str, Any]) -> None:
    from edge.bundles import installed

    run = station_run["run"]
    assert [s.name for s in run.shipped] == ["head-shift"] and run.skipped == {}
    bundle = installed("headpose", station_run["store"] / "bundles")
    path = bundle.model_path("head-shift")
    meta = _metadata(path)
    assert untrained_reason(meta) is None  # a trained export: its card names its data
    card = read_model_card(meta)
    assert card is not None and card["task"] == "head-shift" and "synthetic, not clinical" in card["disclaimer"].lower()
    assert card["cv"]["pooled"]["lateral_shift"]["r_ci95"][0] is not None  # CV figures with their CI
    assert card["precision"] == bundle.manifest.models[0].precision
    assert card["precision"] in ("int8", "fp32") and card["precision_note"]
    # the card also went into the markdown the command was told to write
    text = station_run["cards"].read_text()
    assert "<!-- model-card:head-shift -->" in text and "Synthetic, not clinical" in text


def test_shipped_station_profile_reads_shifts_from_the_installed_model(
    station_run: dict[str, Any], model_dir: Path
) -> None:
    from edge.config import validate_profile
    from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline
    from edge.roles.headpose.analyzer import HeadPoseAnalyzer
    from edge.roles.headpose.config import HeadPoseConfig
    from edge.roles.headpose.message import HeadPoseWindow
    from training.synth.avatar.scenes import iter_clips

    raw = PROFILE.read_text()
    assert f"{DEVICE_MODEL_DIR}/bundles/headpose/current/models/head-shift.onnx" in raw
    data = yaml.safe_load(raw.replace(DEVICE_MODEL_DIR, str(station_run["store"])))
    profile = validate_profile(data, source=str(PROFILE))
    station = profile.role_config()
    assert isinstance(station, HeadPoseConfig) and station.shift_source == "both"
    installed = station_run["store"] / "bundles/headpose/current/models/head-shift.onnx"
    analyzer = HeadPoseAnalyzer(EmitContext(site="clinic", device_id="station-1"), station)
    config = PerceptionConfig.model_validate({"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 1}})
    pipeline = PerceptionPipeline(config, model_dir)
    messages, seen, t = [], 0, 0.0
    # BlazePose finds a person in only some close head-station framings: go on through subjects until it has
    for clip in iter_clips("head-station", 8, seed=11, n_frames=5):
        for frame in clip.frames:
            bgr = np.ascontiguousarray(frame.rgb[..., ::-1])
            result = pipeline.process(bgr, t)
            seen += bool(result.persons)
            messages += analyzer.process(result, image=bgr)
            t += 0.1
        if seen >= 4:
            break
    messages += analyzer.flush()
    assert len(messages) == 1 and isinstance(messages[0], HeadPoseWindow)
    window = messages[0]
    lateral = window.metrics["lateral_shift_model_cm"]
    assert lateral.valid_frames >= 3 and lateral.mean is not None and np.isfinite(lateral.mean)
    refs = {m.name: m.sha256 for m in window.models}
    assert refs.get("head-shift") == sha256_file(installed)


def test_a_failed_int8_gate_keeps_fp32_and_says_so(station_run: dict[str, Any]) -> None:
    from export.device_models.int8 import quantize_with_gate
    from export.verify import Budget

    shipped = station_run["run"].shipped[0]
    held = _held_out(station_run["out"])
    outcome = quantize_with_gate("head-shift", shipped.fp32, held[0], held[1], budget=Budget(r=-1.0), min_samples=4)
    assert outcome.precision == "fp32" and outcome.chosen == shipped.fp32
    assert outcome.note.startswith("stays FP32: INT8 failed the parity gate")
    report = json.loads(outcome.report.read_text()) if outcome.report else {}
    assert report["passed"] is False and report["candidate"]["precision"] == "int8"


def test_too_few_held_out_samples_to_judge_int8_keep_fp32(station_run: dict[str, Any]) -> None:
    """An AUC or r on a handful of samples cannot show that INT8 kept the model's behaviour."""
    from export.device_models.int8 import quantize_with_gate

    shipped = station_run["run"].shipped[0]
    held = _held_out(station_run["out"])
    outcome = quantize_with_gate("head-shift", shipped.fp32, held[0][:8], held[1][:8])
    assert outcome.precision == "fp32" and outcome.chosen == shipped.fp32 and outcome.report is None
    assert outcome.note == "stays FP32: 8 held-out samples cannot both calibrate INT8 and judge it (at least 40)"


def _held_out(out: Path) -> tuple[np.ndarray, np.ndarray]:
    from training.device_models.station import load_set
    from training.models.inputs import prepare

    data, _ = load_set(out / "work" / "station" / "data" / "head-shift-held-out")
    ready = prepare(data, width="small")
    return np.asarray(ready.x, np.float32), np.asarray(ready.y)


def test_a_role_whose_trainer_cannot_train_is_reported_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from export.device_models.pipeline import DeviceModelsError, train_device_models
    from training.device_models import gait

    def not_there(*_args: object, **_kwargs: object) -> list[object]:
        raise NotImplementedError("gait booth models: no trainer")

    monkeypatch.setattr(gait, "train_booth_models", not_there)
    with pytest.raises(DeviceModelsError, match=r"^no device model to install: booth: not trained: gait booth"):
        train_device_models(tmp_path, budget_s=1.0, roles=("booth",), bundle_dir=tmp_path / "bundles")
