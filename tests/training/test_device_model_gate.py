"""The learning gate of `edgescreen models train-device`: a device model is installed only when its pooled
subject-disjoint CV headline is clear of chance at 95 % (classifier: the AUC CI's lower bound above 0.5;
regressor: the lower bound of r above 0 for every target it outputs). A model that fails is not exported, the run
names it with its figure and CI, and its card still goes into the markdown, marked not shipped.

Hand-made cards and stand-in trainers: nothing is rendered or trained here."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training.device_models import TrainedModel
from training.device_models.cards import base_card, card_markdown, learned

REPORT = {"data": {"sha256": "ab" * 32}, "config": {"folds": 3, "epochs": 2, "width": "small", "seed": 0}}


def classifier_pooled(auc: float | None, ci: list[float | None] | None) -> dict[str, Any]:
    pooled: dict[str, Any] = {"n": 40, "auc": auc, "accuracy": 0.5, "recall_per_class": [0.5, 0.5]}
    pooled["ci95"] = {"auc": ci, "accuracy": [0.4, 0.6]} if ci is not None else {}
    return pooled


def shift(r: float | None, lo: float | None, hi: float | None) -> dict[str, Any]:
    return {"r": r, "r_ci95": [lo, hi], "mae": 0.1, "mae_ci95": [0.08, 0.12], "bias": 0.0, "loa": [-0.2, 0.2]}


def card(name: str, task: str, pooled: dict[str, Any]) -> dict[str, Any]:
    return base_card(
        name=name, task=task, arch="arch", report=REPORT, figures={"n": 40, "subjects": 10, "pooled": pooled},
        data={"source": "hand-made", "samples": 40, "subjects": 10, "held_out": "none"},
        intended_use="a test", limits=["none"],
    )  # fmt: skip


def test_a_classifier_learned_only_when_its_auc_ci_lies_above_chance() -> None:
    assert learned(card("m", "gait", classifier_pooled(0.71, [0.58, 0.83]))) is None
    why = learned(card("m", "gait", classifier_pooled(0.52, [0.41, 0.63])))
    assert why == "AUC 0.520 (0.410-0.630) is not clear of chance"
    # a lower bound at chance is not clear of it
    assert learned(card("m", "gait", classifier_pooled(0.6, [0.5, 0.7]))) is not None


def test_a_classifier_without_an_auc_ci_has_not_shown_it_learned() -> None:
    assert learned(card("m", "gait", classifier_pooled(0.8, [None, None]))) == "AUC 0.800 has no CI"
    assert learned(card("m", "gait", classifier_pooled(0.8, None))) == "AUC 0.800 has no CI"
    assert learned(card("m", "gait", classifier_pooled(None, [None, None]))) == "AUC n/a has no CI"


def test_a_regressor_learned_only_when_every_target_r_is_clear_of_zero() -> None:
    both = {"n": 40, "lateral_shift": shift(0.8, 0.7, 0.9), "sagittal_shift": shift(0.6, 0.4, 0.75)}
    assert learned(card("head-shift", "head-shift", both)) is None
    one = {"n": 40, "lateral_shift": shift(0.8, 0.7, 0.9), "sagittal_shift": shift(0.1, -0.05, 0.3)}
    why = learned(card("head-shift", "head-shift", one))
    assert why == "sagittal_shift r 0.100 (-0.050 to 0.300) is not clear of chance"
    two = {"n": 40, "lateral_shift": shift(-0.13, -0.2, -0.03), "sagittal_shift": shift(None, None, None)}
    assert learned(card("head-shift", "head-shift", two)) == (
        "lateral_shift r -0.130 (-0.200 to -0.030) is not clear of chance; sagittal_shift r n/a has no CI"
    )


def test_a_card_with_no_pooled_figure_has_not_shown_it_learned() -> None:
    assert learned(card("m", "head-shift", {"n": 0})) == "the card has no pooled CV figure to judge"
    assert learned({"cv": {}}) == "the card has no pooled CV figure to judge"


def test_a_card_not_shipped_says_so_in_the_markdown() -> None:
    shipped = card("m", "gait", classifier_pooled(0.71, [0.58, 0.83]))
    assert "not shipped" not in card_markdown(shipped).lower()
    text = card_markdown(dict(shipped, not_shipped="m: AUC 0.520 (0.410-0.630) is not clear of chance: not installed"))
    assert "- **Not shipped: m: AUC 0.520 (0.410-0.630) is not clear of chance: not installed**" in text


def test_a_booth_card_shows_its_screening_figures() -> None:
    """The booth screens positive against the rest: the card says how well, beside the three-class headline."""
    booth = card("gait-skeleton", "gait", classifier_pooled(0.71, [0.62, 0.81]))
    booth["cv"]["screening"] = {"auc_positive": 0.8859, "auc_positive_ci95": [0.7965, 0.9578],
                                "recall_at_spec80": 0.8696, "recall_at_spec80_ci95": [0.4762, 1.0],
                                "threshold_at_spec80": 0.1668}  # fmt: skip
    assert ("- Screening (positive against the rest, by P(positive)): AUC 0.886 (0.796-0.958), positive recall at "
            "specificity 0.80 0.870 (0.476-1.000) (threshold 0.1668).") in card_markdown(booth)  # fmt: skip
    assert "Screening" not in card_markdown(card("m", "posture-keypoints", classifier_pooled(0.7, [0.6, 0.8])))


def fake_model(name: str, task: str, pooled: dict[str, Any], profile_key: str, tmp: Path) -> TrainedModel:
    # the checkpoint does not exist: a model the gate stops must never reach the export
    return TrainedModel(name=name, task=task, arch="arch", checkpoint=tmp / f"{name}-missing.pt",
                        held_out=np.zeros((2, 3), np.float32), held_out_labels=np.zeros(2, np.int64),
                        card=card(name, task, pooled), profile_key=profile_key)  # fmt: skip


UNLEARNED_SHIFT = {"n": 40, "lateral_shift": shift(-0.13, -0.2, -0.03), "sagittal_shift": shift(0.6, 0.4, 0.75)}


def test_no_model_clear_of_chance_installs_nothing_and_says_why_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from export.device_models.pipeline import DeviceModelsError, train_device_models
    from training.device_models import station

    model = fake_model("head-shift", "head-shift", UNLEARNED_SHIFT, "headpose.shift_model", tmp_path)
    monkeypatch.setattr(station, "train_station_models", lambda *_a, **_k: [model])
    cards = tmp_path / "models.md"
    with caplog.at_level(logging.ERROR), pytest.raises(DeviceModelsError) as err:
        train_device_models(tmp_path / "work", budget_s=1.0, roles=("station",), bundle_dir=tmp_path / "bundles",
                            cards=cards)  # fmt: skip
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "no device model to install: station: head-shift: lateral_shift r -0.130 (-0.200 to -0.030) is not clear "
        "of chance: not installed; "
    )
    assert "refuses to start" in message  # the station profile needs its shift model: the reason says what follows
    assert not (tmp_path / "bundles").exists() and not (tmp_path / "work" / "station" / "onnx").exists()
    assert any(r.levelno == logging.ERROR and "head-shift: lateral_shift r" in r.getMessage() for r in caplog.records)
    text = cards.read_text()  # what was measured is recorded even though nothing shipped
    assert "<!-- model-card:head-shift -->" in text and "**Not shipped: head-shift: lateral_shift r -0.130" in text


def test_a_model_that_fails_the_gate_is_left_out_of_the_bundles_and_the_command_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgescreen.cli import main
    from export.device_models import pipeline
    from export.device_models.chain import ShippedModel
    from training.device_models import posture, station

    good = {"n": 40, "lateral_shift": shift(0.8, 0.7, 0.9), "sagittal_shift": shift(0.6, 0.4, 0.75)}
    shift_model = fake_model("head-shift", "head-shift", good, "headpose.shift_model", tmp_path)
    posture_model = fake_model("posture-keypoints", "posture-keypoints", classifier_pooled(0.55, [0.45, 0.66]),
                               "posture.model", tmp_path)  # fmt: skip
    monkeypatch.setattr(station, "train_station_models", lambda *_a, **_k: [shift_model])
    monkeypatch.setattr(posture, "train_posture_models", lambda *_a, **_k: [posture_model])
    exported: list[str] = []

    def ship(model: TrainedModel, out_dir: Path) -> ShippedModel:
        exported.append(model.name)
        return ShippedModel("headpose", model.name, model.task, out_dir / "a.onnx", out_dir / "b.onnx", "fp32",
                            "kept FP32", dict(model.card, precision="fp32"), None)  # fmt: skip

    bundled: list[list[str]] = []

    def bundle(shipped: list[ShippedModel], *_args: object) -> dict[str, Path]:
        bundled.append([s.name for s in shipped])
        return {"headpose": tmp_path / "bundles" / "headpose" / "current"}

    monkeypatch.setattr(pipeline, "ship", ship)
    monkeypatch.setattr(pipeline, "bundle_and_install", bundle)
    cards = tmp_path / "models.md"
    argv = ["models", "train-device", "--out", str(tmp_path / "work"), "--budget-min", "0.1", "--roles",
            "station,posture", "--cards", str(cards), "--bundle-dir", str(tmp_path / "bundles")]  # fmt: skip
    code = main(argv)
    assert code == 1
    assert exported == ["head-shift"] and bundled == [["head-shift"]]
    out = capsys.readouterr().out
    posture_line = [line for line in out.splitlines() if line.startswith("posture ")]
    assert len(posture_line) == 1
    assert "posture-keypoints: AUC 0.550 (0.450-0.660) is not clear of chance: not installed" in posture_line[0]
    text = cards.read_text()
    assert "<!-- model-card:head-shift -->" in text and "<!-- model-card:posture-keypoints -->" in text
    assert text.count("Not shipped") == 1 and "**Not shipped: posture-keypoints: AUC 0.550" in text
