"""Which booth geometry separates scoliosis-like walks better: across a side-wall camera, or along the corridor
towards and away from a camera at its end (Scoliosis1K's view)?

Renders the same number of avatar walks in each geometry (training/synth/booth_dataset.py, through the booth's own
perception), then per geometry:

- replays every walk through the booth's analyzer (`gait.direction` either / along) and reports how many were
  screened, and how well each frontal-plane asymmetry measure separates positive from negative walks (AUC of its
  magnitude, 95 % CI by subject bootstrap);
- cross-validates the skeleton gait model by subject on the perceived keypoints (the plan `models train-device`
  uses), AUC with its CI.

    python benchmarks/booth_geometry.py --walks 64 --out /tmp/booth-geometry   # an interrupted run resumes

Figures go to docs/metrics.md ("Walk geometry").
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from training.device_models.gait import BoothPlan, load_walk_set
from training.metrics import bootstrap_ci
from training.skeleton import binary_auc
from training.synth.booth_dataset import load_walks, render_walks, replay_walk

log = logging.getLogger("booth_geometry")

GEOMETRIES = {"across": "either", "along": "along"}  # geometry -> the booth's gait.direction for it
MEASURES = ("shoulder_height_diff_deg", "pelvic_obliquity_deg", "trunk_lateral_lean_deg")


def _auc_with_ci(is_pos: np.ndarray, score: np.ndarray, subjects: list[str], seed: int) -> dict[str, Any]:
    ci = bootstrap_ci(lambda idx: {"auc": binary_auc(is_pos[idx], score[idx])}, len(score), subjects, rounds=1000,
                      seed=seed)  # fmt: skip
    return {"n": len(score), "positives": int(is_pos.sum()), "auc": binary_auc(is_pos, score), "ci": ci["auc"]}


def measure_separation(folder: Path, geometry: str, seed: int) -> dict[str, Any]:
    """Replay each walk of `geometry` through the booth; separation of positive vs negative walks by each measure."""
    from edge.roles.gait.config import GaitConfig

    config = GaitConfig.model_validate({"direction": GEOMETRIES[geometry]})
    outcomes: dict[str, int] = {}
    rows: list[tuple[str, bool, dict[str, float]]] = []
    for rec in load_walks(folder):
        if rec.info.get("geometry") != geometry or rec.info.get("label") == "neutral":
            continue
        message = replay_walk(rec, config)
        outcome = message.outcome if message is not None else "(no walk-through)"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if message is None or outcome != "screened":
            continue
        values = {k: abs(m.value) for k, m in message.measures.items() if m.value is not None}
        rows.append((rec.subject, rec.info["label"] == "positive", values))
    out: dict[str, Any] = {"outcomes": outcomes, "measures": {}}
    for name in MEASURES:
        kept = [(s, p, v[name]) for s, p, v in rows if name in v and math.isfinite(v[name])]
        if kept:
            out["measures"][name] = _auc_with_ci(np.array([p for _, p, _ in kept]), np.array([v for _, _, v in kept]),
                                                 [s for s, _, _ in kept], seed)  # fmt: skip
    return out


def skeleton_cv(folder: Path, geometry: str, seed: int, plan: BoothPlan) -> dict[str, Any]:
    """Subject-disjoint CV of the skeleton gait model on the walks of `geometry`: P(positive) against positive."""
    from training import skeleton

    walks = load_walk_set(folder, geometry)
    cfg = skeleton.FitConfig(epochs=plan.epochs, width=plan.width, draws=plan.draws, seed=seed)
    cv = skeleton.cross_validate(walks.sequences, walks.labels, walks.subjects, plan.folds, cfg)
    figures = skeleton.screening_figures(cv.target, cv.pred, cv.subjects, rounds=1000, seed=seed)
    figures["walks"] = len(walks)
    return figures


def _f(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--walks", type=int, default=64, help="walks (subjects) per geometry")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="work folder; an interrupted run resumes")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    plan = BoothPlan(walks=args.walks, folds=args.folds, epochs=80)
    report: dict[str, Any] = {}
    for geometry in GEOMETRIES:
        folder = args.out / geometry
        render_walks(folder, args.walks, args.seed, geometry)  # type: ignore[arg-type]
        report[geometry] = {"booth": measure_separation(folder, geometry, args.seed),
                            "skeleton": skeleton_cv(folder, geometry, args.seed, plan)}  # fmt: skip
    (args.out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"<!-- benchmarks/booth_geometry.py --walks {args.walks} --seed {args.seed}: "
          f"{time.monotonic() - started:.0f} s on {platform.machine()}, no GPU -->")  # fmt: skip
    print(
        "| geometry | walks | screened (of negative + positive) | skeleton model AUC [95 % CI] | "
        "positive recall at specificity 0.80 | " + " | ".join(f"`{m}` AUC [95 % CI]" for m in MEASURES) + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(MEASURES))
    for geometry, r in report.items():
        b, s = r["booth"], r["skeleton"]
        screened = f"{b['outcomes'].get('screened', 0)} of {sum(b['outcomes'].values())}"
        cells = []
        for m in MEASURES:
            f = b["measures"].get(m)
            cells.append(f"{_f(f['auc'])} [{_f(f['ci'][0])}, {_f(f['ci'][1])}] (n {f['n']})" if f else "–")
        ci = s["auc_positive_ci95"]
        print(f"| {geometry} | {s['walks']} | {screened} | {_f(s['auc_positive'])} [{_f(ci[0])}, {_f(ci[1])}] | "
              f"{_f(s['recall_at_spec80'])} | " + " | ".join(cells) + " |")  # fmt: skip
    print("outcomes: " + "; ".join(f"{g}: {r['booth']['outcomes']}" for g, r in report.items()))


if __name__ == "__main__":
    main()
