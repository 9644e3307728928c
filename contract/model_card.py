"""The model card an exported device model carries in its ONNX metadata, and what makes a model "trained".

The device-model chain (train → ONNX → INT8 → card → bundle) writes the card as JSON under `MODEL_CARD_KEY`. A
device role that reports class probabilities (the gait booth) runs a model only when its card says it was
trained (`"trained": true`) and names the data it learned from (`"data_sha256"`): an export of freshly
initialised weights carries no card, so it can never reach a student's screening.
"""

from __future__ import annotations

import json
from typing import Any

MODEL_CARD_KEY = "edgescreen.model_card"
REQUIRED_FIELDS = ("trained", "data_sha256")


class ModelCardError(ValueError):
    """The metadata holds a card that is not a JSON object with the required fields."""


def read_model_card(metadata: dict[str, str]) -> dict[str, Any] | None:
    """The card in a model's metadata, or None when there is none. Raises ModelCardError for a malformed one."""
    raw = metadata.get(MODEL_CARD_KEY)
    if raw is None:
        return None
    try:
        card = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelCardError(f"model card ({MODEL_CARD_KEY}) is not JSON: {exc}") from exc
    if not isinstance(card, dict):
        raise ModelCardError(f"model card ({MODEL_CARD_KEY}) must be a JSON object, found {type(card).__name__}")
    return card


def untrained_reason(metadata: dict[str, str]) -> str | None:
    """Why a model does not count as trained (one phrase), or None when its card says it was trained."""
    try:
        card = read_model_card(metadata)
    except ModelCardError as exc:
        return str(exc)
    if card is None:
        return f"it carries no model card ({MODEL_CARD_KEY} in its metadata): not a trained export"
    if card.get("trained") is not True:
        return "its model card does not say it was trained"
    if not isinstance(card.get("data_sha256"), str) or not card["data_sha256"]:
        return "its model card names no training data (data_sha256)"
    return None


def card_metadata(card: dict[str, Any]) -> dict[str, str]:
    """The metadata entry holding `card` (for writers of ONNX metadata_props)."""
    missing = [k for k in REQUIRED_FIELDS if k not in card]
    if missing:
        raise ModelCardError(f"model card lacks {missing}")
    return {MODEL_CARD_KEY: json.dumps(card, sort_keys=True, default=str)}
