"""Model cards of the device models: what each learned from, its subject-disjoint CV figures with their 95 % CIs,
what it is for and where it stops. The chain writes each card into its ONNX metadata (contract.model_card) and as a
section of docs/models.md (between markers, one per model, so a new run replaces its own section only).

`learned(card)` is the learning gate: the one place that decides from a card's pooled CV figures whether the
model has shown it learned anything, and so may be installed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DISCLAIMER = "Synthetic, not clinical: trained and evaluated on rendered avatars only."
CARDS_HEADING = "## Device models trained on avatars (model cards)"


def base_card(
    *, name: str, task: str, arch: str, report: dict[str, Any], figures: dict[str, Any], data: dict[str, Any],
    intended_use: str, limits: list[str],
) -> dict[str, Any]:  # fmt: skip
    """A card (JSON-ready) from a training report (training.train.run_training) and its CV figures."""
    cfg = report.get("config", {})
    return {
        "trained": True,
        "name": name,
        "task": task,
        "arch": arch,
        "data_sha256": report["data"]["sha256"],
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "data": data,
        "training": {
            "folds": cfg.get("folds"), "epochs": cfg.get("epochs"), "width": cfg.get("width"), "seed": cfg.get("seed"),
            "final_fit": "all subjects", "seconds": report.get("seconds"), "model_kwargs": report.get("model_kwargs"),
        },
        "cv": figures,
        "intended_use": intended_use,
        "limits": limits,
        "disclaimer": DISCLAIMER,
    }  # fmt: skip


def _ci(value: Any, ci: Any) -> str:
    if value is None:
        return "n/a"
    if not ci or ci[0] is None or ci[1] is None:
        return f"{value:.3f}"
    sep = " to " if min(ci) < 0 else "-"  # "-0.198--0.033" reads as nothing
    return f"{value:.3f} ({ci[0]:.3f}{sep}{ci[1]:.3f})"


def _not_clear(figure: str, value: Any, ci: Any, chance: float) -> str | None:
    """Why `figure` is not clear of `chance` at 95 % (its CI's lower bound must lie above it), or None."""
    if value is None or not ci or ci[0] is None or ci[1] is None:
        return f"{figure} {_ci(value, None)} has no CI"
    if ci[0] <= chance:
        return f"{figure} {_ci(value, ci)} is not clear of chance"
    return None


def learned(card: dict[str, Any]) -> str | None:
    """Why the card's model has not shown it learned (one phrase naming the figure and its CI), or None when its
    pooled subject-disjoint CV headline is clear of chance at 95 %: a classifier's AUC CI lies above 0.5; a
    regressor's r CI lies above 0 for every target it outputs (one target that did not learn would feed the
    device a meaningless value)."""
    pooled = card.get("cv", {}).get("pooled") or {}
    if "auc" in pooled:
        return _not_clear("AUC", pooled["auc"], (pooled.get("ci95") or {}).get("auc"), 0.5)
    targets = {k: v for k, v in pooled.items() if isinstance(v, dict) and "r" in v}
    if not targets:
        return "the card has no pooled CV figure to judge"
    reasons = [_not_clear(f"{k} r", v["r"], v.get("r_ci95"), 0.0) for k, v in targets.items()]
    return "; ".join(r for r in reasons if r is not None) or None


def headline(card: dict[str, Any]) -> str:
    """One line of the card's pooled CV figures."""
    pooled = card["cv"]["pooled"]
    if "auc" in pooled:
        ci = pooled.get("ci95", {})
        recall = ", ".join(f"{r:.2f}" if r is not None else "n/a" for r in pooled.get("recall_per_class", []))
        return (f"AUC {_ci(pooled['auc'], ci.get('auc'))}, accuracy {_ci(pooled['accuracy'], ci.get('accuracy'))}, "
                f"recall per class {recall}")  # fmt: skip
    parts = []
    for key, value in pooled.items():
        if isinstance(value, dict) and "r" in value:
            parts.append(f"{key} r {_ci(value['r'], value['r_ci95'])}, MAE {_ci(value['mae'], value['mae_ci95'])}")
    return "; ".join(parts)


def card_markdown(card: dict[str, Any]) -> str:
    """The card as a docs/models.md section."""
    d, t = card["data"], card["training"]
    lines = [
        f"### `{card['name']}` ({card['task']}, {card['arch']})",
        "",
        f"- **{DISCLAIMER}**",
        *([f"- **Not shipped: {card['not_shipped']}**"] if card.get("not_shipped") else []),
        f"- Data: {d.get('source')}; {d.get('images', d.get('samples'))} samples of {d.get('subjects')} subjects; "
        f"targets: {d.get('targets', d.get('labels', 'n/a'))}. Held out for parity and INT8 calibration: "
        f"{d.get('held_out')}. Data sha256 `{card['data_sha256'][:16]}`.",
        f"- Training: {t.get('folds')}-fold subject-disjoint CV, at most {t.get('epochs')} epochs, width "
        f"{t.get('width')}, seed {t.get('seed')}; the shipped weights are a final fit on all subjects "
        f"({t.get('seconds')} s in all on the 2-core x86-64 machine, no GPU).",
        f"- CV (pooled out-of-fold, 95 % CI by subject bootstrap): {headline(card)}.",
    ]
    screening = card["cv"].get("screening")
    if screening:
        lines.append(
            f"- Screening (positive against the rest, by P(positive)): AUC "
            f"{_ci(screening.get('auc_positive'), screening.get('auc_positive_ci95'))}, positive recall at specificity "
            f"0.80 {_ci(screening.get('recall_at_spec80'), screening.get('recall_at_spec80_ci95'))} (threshold "
            f"{screening.get('threshold_at_spec80')})."
        )
    for column in ("sex", "age_group"):
        groups = card["cv"].get(f"by_{column}") or {}
        if groups:
            cells = "; ".join(f"{k}: {headline({'cv': {'pooled': v}})}" for k, v in groups.items())
            lines.append(f"- By {column.replace('_', ' ')}: {cells}.")
    if card.get("precision"):
        lines.append(f"- Shipped precision: {card['precision']}. {card.get('precision_note', '')}".rstrip())
    lines.append(f"- Intended use: {card['intended_use']}")
    lines += ["- Limits:", *(f"  - {limit}" for limit in card["limits"])]
    return "\n".join(lines) + "\n"


def write_cards(path: Path, cards: list[dict[str, Any]]) -> None:
    """Put each card's section into `path` (markdown), replacing the section of the same model if present."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if CARDS_HEADING not in text:
        text = text.rstrip("\n") + f"\n\n{CARDS_HEADING}\n\n" + (
            "Written by `edgescreen models train-device`: one card per model, the same card that the model's ONNX "
            "metadata carries (`edgescreen.model_card`).\n"
        )  # fmt: skip
    for card in cards:
        start, end = f"<!-- model-card:{card['name']} -->", f"<!-- /model-card:{card['name']} -->"
        block = f"{start}\n{card_markdown(card)}{end}\n"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
        found = pattern.search(text)
        text = text[: found.start()] + block + text[found.end() :] if found else text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")
