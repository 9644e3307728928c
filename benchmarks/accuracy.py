"""End-to-end accuracy of the device measures on rendered avatars with known truth.

Avatar clips (anny bodies, training/synth/avatar) are rendered and fed through the real device runtime
(`edge.assembly.build_runtime`: real perception on ONNX Runtime, the role's analyzer; training/accuracy.py), and
each window's (or walk-through's) values are compared with the truth over the same frames:

- posture: seated office workers at a desk, each seen from the front (the desk monitor), obliquely (45°) and from
  the side (90°), holding an office posture (`sample_posture(rng, "office")`) for one window;
- headpose: seated subjects in front of the head-pose station holding cervical-dystonia-like head poses
  (`sample_posture(rng, "cervical")`: yaw ±45°, pitch ±25°, roll ±25°, shifts), four poses from the front and one
  from 30° to the side per subject;
- gait: school-age subjects crossing the booth's side camera (some with a scoliosis-like asymmetry or an antalgic
  step-time asymmetry), plus empty and standing clips and deliberately bad walks (reversed, turned back); with
  `--geometry along`, walking 6 m towards or away from a camera at the corridor's end (perceived with the far-end
  detection region), the wrong-way walk then crossing a side camera.

Truth per metric: `<name>` is the device's own definition on the exact landmarks (what a perfect pose model would
make the device report: the device's error against it is perception's), `<name>_clinical` the clinical definition
from anatomical points (C7, tragus, acromion, hip joints; the device's error against it adds the landmark's
definition), `<name>_camera` the head's orientation relative to the camera (what the face fit measures).
Statistics: training/validation.py. Prints markdown tables; `--out` writes every clip's record and the tables'
numbers as JSON.

    python benchmarks/accuracy.py --role posture|headpose|gait --subjects N [--seed S] [--out FILE.json]
    python benchmarks/accuracy.py --role gait --geometry along --subjects N
    python benchmarks/accuracy.py --fit-corrections    # refit the posture corrections (docs/metrics.md)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contract.labels import GAIT_LABELS  # noqa: E402
from training.accuracy import ClipResult, ClipSpec, RenderedClip, Studio, aggregate, run_clips  # noqa: E402
from training.validation import agreement, agreement_row, by_group, fmt  # noqa: E402

log = logging.getLogger("accuracy")
W, H = 640, 480
POSTURE_METRICS = ("cva_deg", "neck_flexion_deg", "head_forward_ratio", "head_tilt_deg", "shoulder_asymmetry_deg",
                   "trunk_flexion_deg", "trunk_lateral_lean_deg")  # fmt: skip
DEFINED_VIEW = {  # the view each posture metric is defined for (docs/metrics.md)
    **dict.fromkeys(("cva_deg", "neck_flexion_deg", "head_forward_ratio", "trunk_flexion_deg"), "side"),
    **dict.fromkeys(("head_tilt_deg", "shoulder_asymmetry_deg", "trunk_lateral_lean_deg"), "front"),
}
HEADPOSE_METRICS = ("yaw_deg", "pitch_deg", "roll_deg", "lateral_shift_cm", "sagittal_shift_cm")
GAIT_MEASURES = ("cadence_spm", "step_time_asymmetry_pct", "step_length_asymmetry_pct", "arm_swing_asymmetry_pct",
                 "shoulder_height_diff_deg", "pelvic_obliquity_deg", "trunk_lateral_lean_deg")  # fmt: skip


# --- rendering one clip ------------------------------------------------------------------------------------------


def age_group(years: float) -> str:
    if years < 18:
        return "10–13" if years < 14 else "14–16"
    return "18–39" if years < 40 else "40–70"


def subject_meta(subject: str, phenotype: Any) -> dict[str, Any]:
    """What a report groups a seated subject's clips by: the subject, sex and age group."""
    return {"subject": subject, "sex": phenotype.sex, "age_group": age_group(phenotype.age_years),
            "age_years": phenotype.age_years}  # fmt: skip


def occlusion(hidden: float) -> str:
    """How much of the body the props hide (silhouette with / without them)."""
    return "none (<5 %)" if hidden < 0.05 else ("partial (5–40 %)" if hidden < 0.40 else "heavy (≥40 %)")


def _midpoint(points: Any, *names: str) -> np.ndarray:
    return np.mean([np.asarray(points.anatomical[n], np.float64) for n in names], axis=0)


# --- posture --------------------------------------------------------------------------------------------------

POSTURE_VIEWS = {"front": 0.0, "oblique": 45.0, "side": 90.0}
POSTURE_FRAMES, POSTURE_FPS, POSTURE_SLOT_S = 10, 10.0, 2.0


def posture_clips(studio: Studio, subjects: int, seed: int) -> list[ClipSpec]:
    from training.synth.avatar.appearance import sample_appearance
    from training.synth.avatar.builder import build_body
    from training.synth.avatar.camera import role_camera
    from training.synth.avatar.phenotype import sample_phenotype
    from training.synth.avatar.pose import seated
    from training.synth.avatar.scene import make_scene
    from training.synth.posture import sample_posture

    clips = []
    for s in range(subjects):
        rng = np.random.default_rng([seed, 1, s])
        phenotype = sample_phenotype(rng, "adult")
        posture = sample_posture(rng, "office")
        look = sample_appearance(rng)
        meta = subject_meta(f"p{s}", phenotype)
        body: list[Any] = []

        def make(
            view: str,
            azimuth: float,
            *,
            s: int = s,
            body: list[Any] = body,
            look: Any = look,
            phenotype: Any = phenotype,
            posture: Any = posture,
        ) -> Callable[[], RenderedClip]:
            def render() -> RenderedClip:
                if not body:
                    body.append(build_body(phenotype, seated(posture)))
                mesh, points = body[0]
                r = np.random.default_rng([seed, 2, s, int(azimuth)])
                head = _midpoint(points, "tragus_l", "tragus_r")
                hips = _midpoint(points, "hip_joint_l", "hip_joint_r")
                if view == "front":  # the desk monitor's webcam
                    pose = role_camera("desk-monitor", r, head)
                else:  # a camera beside the desk, aimed at the upper body
                    target = 0.6 * head + 0.4 * hips
                    pose = role_camera("desk-monitor", r, target, azimuth_deg=azimuth, both_sides=True,
                                       distance_m=(1.2, 1.8), height_offset_m=(0.0, 0.25))  # fmt: skip
                camera = pose.camera(W, H)
                scene = make_scene("office", r, seated=points.seat, contain=[pose.position])
                clip = studio.held(
                    mesh, points, scene, camera, look=look, rng=r, frames=POSTURE_FRAMES, fps=POSTURE_FPS
                )
                clip.extra["occlusion"] = occlusion(clip.extra["hidden_fraction"])
                return clip

            return render

        for view, azimuth in POSTURE_VIEWS.items():
            clips.append(ClipSpec(f"p{s}-{view}", {**meta, "view": view}, make(view, azimuth)))
    return clips


# --- head pose ------------------------------------------------------------------------------------------------

HEAD_POSES, HEAD_FRAMES, HEAD_FPS, HEAD_SLOT_S = 4, 10, 10.0, 2.0


def headpose_clips(studio: Studio, subjects: int, seed: int) -> list[ClipSpec]:
    from training.synth.avatar.appearance import sample_appearance
    from training.synth.avatar.builder import BodyRequest, build_bodies
    from training.synth.avatar.camera import role_camera
    from training.synth.avatar.phenotype import sample_phenotype
    from training.synth.avatar.pose import seated
    from training.synth.avatar.scene import make_scene
    from training.synth.posture import sample_posture

    clips = []
    for s in range(subjects):
        rng = np.random.default_rng([seed, 3, s])
        phenotype = sample_phenotype(rng, "adult")
        postures = [sample_posture(rng, "cervical") for _ in range(HEAD_POSES + 1)]
        look = sample_appearance(rng)
        meta = subject_meta(f"h{s}", phenotype)
        bodies: list[Any] = []

        def make(
            k: int,
            view: str,
            *,
            s: int = s,
            bodies: list[Any] = bodies,
            phenotype: Any = phenotype,
            postures: Any = postures,
            look: Any = look,
        ) -> Callable[[], RenderedClip]:
            def render() -> RenderedClip:
                if not bodies:
                    bodies.extend(build_bodies([BodyRequest(phenotype, seated(p)) for p in postures]))
                mesh, points = bodies[k]
                r = np.random.default_rng([seed, 4, s, k])
                face = _midpoint(points, "tragus_l", "tragus_r")
                kwargs = {"azimuth_deg": 30.0, "both_sides": True} if view == "oblique" else {}
                pose = role_camera("head-station", r, face, **kwargs)
                scene = make_scene("clinic", r, seated=points.seat, contain=[pose.position])
                clip = studio.held(
                    mesh, points, scene, pose.camera(W, H), look=look, rng=r, frames=HEAD_FRAMES, fps=HEAD_FPS
                )
                clip.extra["occlusion"] = occlusion(clip.extra["hidden_fraction"])
                return clip

            return render

        for k in range(HEAD_POSES + 1):
            view = "oblique" if k == HEAD_POSES else "front"
            clips.append(ClipSpec(f"h{s}-{k}", {**meta, "view": view}, make(k, view)))
    return clips


# --- gait -----------------------------------------------------------------------------------------------------

GAIT_FPS = 15.0


BOOTH_DISTANCE_M = (3.0, 4.0)


def _booth(rng: np.random.Generator) -> tuple[Any, Any, float, float]:
    """The booth's side camera on a corridor, which way a walk must go to cross left to right, and how far either
    side of the camera's axis a walk starts and ends (out of view).

    The camera stands 3-4 m from the walking line, not the generator's 1.5-2.3 m: from there a school-age stride
    of about 1.1 m shows fewer than the two gait cycles a walk-through needs (`gait.min_cycles`)."""
    from training.synth.avatar.camera import role_camera
    from training.synth.avatar.scene import make_scene

    pose = role_camera("booth-side", rng, (0.0, 1.0, 0.0), distance_m=BOOTH_DISTANCE_M)  # the walk runs along z
    heading = 180.0 if pose.position[0] > 0 else 0.0  # a camera on the +x wall sees -z as image right
    span = abs(pose.position[0]) * math.tan(math.radians(pose.hfov_deg / 2)) + 0.7
    scene = make_scene("corridor", rng, walk_length_m=min(50.0, 2 * span + 2), contain=[pose.position])
    return pose.camera(W, H), scene, heading, span


WALK_HALF_M = 3.0  # along the corridor: a 6 m walk, as the booth-walk scene draws it


def _booth_end(rng: np.random.Generator) -> tuple[Any, Any, float, float]:
    """The booth's camera at the corridor's end, looking down it (+z to -z): the walk runs along z between
    ±WALK_HALF_M, its near end 3.0-4.5 m from the camera, as the booth-walk scene places it."""
    from training.synth.avatar.camera import role_camera
    from training.synth.avatar.scene import make_scene

    pose = role_camera("booth-end", rng, (0.0, 1.0, 0.0), distance_m=(WALK_HALF_M + 3.0, WALK_HALF_M + 4.5))
    heading = 0.0 if rng.random() < 0.5 else 180.0  # towards the camera, or away from it
    scene = make_scene("corridor", rng, walk_length_m=2 * WALK_HALF_M + 2, contain=[pose.position])
    return pose.camera(W, H), scene, heading, WALK_HALF_M


def gait_clips(studio: Studio, subjects: int, seed: int, geometry: str = "across") -> list[ClipSpec]:
    from training.synth.avatar.appearance import sample_appearance
    from training.synth.avatar.builder import BodyRequest, build_bodies, stature_m
    from training.synth.avatar.phenotype import sample_phenotype
    from training.synth.avatar.pose import PoseParams, sample_scoliosis
    from training.synth.avatar.truth import gait_truth
    from training.synth.avatar.walk import sample_walk
    from training.synth.posture import Posture

    def walk_clip(s: int, kind: str) -> Callable[[], RenderedClip]:
        def render() -> RenderedClip:
            rng = np.random.default_rng([seed, 5, s])
            phenotype = sample_phenotype(rng, "school")
            cobb = float(rng.uniform(-45, 45)) if rng.random() < 0.5 else 0.0
            pain = float(rng.uniform(0.3, 1.0)) if rng.random() < 0.3 else 0.0
            posture = Posture()
            base = PoseParams(posture=posture)
            if cobb:
                sc = sample_scoliosis(rng, cobb)
                base = sc.apply(base)
                posture = base.posture
            look = sample_appearance(rng)
            r = np.random.default_rng([seed, 6, s, len(kind)])
            camera, scene, heading, span = place(r)
            if along and kind == "reversed":  # along the corridor either way is right: the wrong way is across it
                camera, scene, _, _ = _booth(r)
                heading = 0.0
            sign = 1.0 if heading == 0.0 else -1.0  # along +z or -z
            cycle = sample_walk(rng, phenotype, stature_m(phenotype), posture, pain=pain,
                                start=(0.0, -sign * span), heading_deg=heading)  # fmt: skip
            cross_s = 2 * span / cycle.gait.speed
            if kind == "standing":
                n = int(3.0 * GAIT_FPS)
                poses = [replace(base, position=(0.0, 0.0), heading_deg=heading)] * n
            elif kind == "reversed":
                back = replace(cycle, start=(0.0, sign * span), heading_deg=heading + 180.0)
                n = int(cross_s * GAIT_FPS)
                poses = [back.pose_at(base, i / GAIT_FPS) for i in range(n)]
            elif kind == "turned_back":  # walks in to a third of the way, turns and walks out where it came from
                t_turn = 0.8 * span / cycle.gait.speed
                back = replace(cycle, start=(0.0, -sign * 0.2 * span), heading_deg=heading + 180.0)
                n = int(2 * t_turn * GAIT_FPS)
                poses = [cycle.pose_at(base, i / GAIT_FPS) if i / GAIT_FPS < t_turn
                         else back.pose_at(base, i / GAIT_FPS - t_turn) for i in range(n)]  # fmt: skip
            else:
                n = int(cross_s * GAIT_FPS)
                poses = [cycle.pose_at(base, i / GAIT_FPS) for i in range(n)]
            bodies = build_bodies([BodyRequest(phenotype, p) for p in poses])
            tail = [None] * int(0.8 * GAIT_FPS)  # nobody in view: the walk-through closes inside its clip
            clip, points = studio.moving([*bodies, *tail], scene, camera, look=look, rng=r, fps=GAIT_FPS)
            g = cycle.gait
            clip.extra.update(kind=kind, cobb_deg=cobb, pain=pain, cadence_spm=g.cadence,
                              step_time_s=60.0 / g.cadence, step_time_asymmetry=g.step_time_asymmetry,
                              step_length_asymmetry=g.step_length_asymmetry,
                              arm_swing_asymmetry=g.arm_swing_asymmetry, sex=phenotype.sex,
                              age_group=age_group(phenotype.age_years))  # fmt: skip
            if kind == "clean":
                timed = [(i / GAIT_FPS, p) for i, p in enumerate(points) if p is not None]
                towards = +1 if heading == 0.0 else -1  # along: the end camera looks down -z
                clip.extra["landmark_truth"] = gait_truth(timed, camera, towards if along else +1, along=along)
            return clip

        return render

    def empty_clip(s: int) -> Callable[[], RenderedClip]:
        def render() -> RenderedClip:
            r = np.random.default_rng([seed, 7, s])
            camera, scene, _, _ = place(r)
            nobody = [None] * int(3.0 * GAIT_FPS)
            clip, _ = studio.moving(nobody, scene, camera, look=sample_appearance(r), rng=r, fps=GAIT_FPS)
            clip.extra["kind"] = "empty"
            return clip

        return render

    along = geometry == "along"
    place = _booth_end if along else _booth
    clips = []
    for s in range(subjects):
        view = "along" if along else "side"
        clips.append(ClipSpec(f"g{s}-clean", {"subject": f"g{s}", "kind": "clean", "view": view},
                              walk_clip(s, "clean")))  # fmt: skip
        if s % 4 == 0:
            clips.append(ClipSpec(f"g{s}-empty", {"subject": f"e{s}", "kind": "empty"}, empty_clip(s)))
        if s % 4 == 1:
            clips.append(ClipSpec(f"g{s}-standing", {"subject": f"g{s}", "kind": "standing"}, walk_clip(s, "standing")))
        if s % 4 == 2:
            clips.append(ClipSpec(f"g{s}-reversed", {"subject": f"g{s}", "kind": "reversed"}, walk_clip(s, "reversed")))
        if s % 4 == 3:
            clips.append(ClipSpec(f"g{s}-turned", {"subject": f"g{s}", "kind": "turned_back"},
                                  walk_clip(s, "turned_back")))  # fmt: skip
    return clips


# --- records --------------------------------------------------------------------------------------------------


def _window_values(result: ClipResult) -> dict[str, float] | None:
    """The mean of each metric in the clip's window message (None when the clip produced none)."""
    if not result.messages:
        return None
    message = result.messages[0]
    metrics = getattr(message, "metrics", {})
    return {k: (v.mean if v.mean is not None else math.nan) for k, v in metrics.items()}


def window_records(results: list[ClipResult]) -> list[dict[str, Any]]:
    out = []
    for res in results:
        truth = aggregate([t for t in res.truth if t])
        rec = {"clip": res.spec.key, **res.spec.meta, "occlusion": res.extra.get("occlusion"),
               "hidden_fraction": res.extra.get("hidden_fraction"), "messages": len(res.messages),
               "device": _window_values(res), "truth": truth}  # fmt: skip
        out.append(rec)
    return out


def gait_records(results: list[ClipResult]) -> list[dict[str, Any]]:
    out = []
    for res in results:
        extra = {k: v for k, v in res.extra.items()}
        messages = []
        for m in res.messages:
            probabilities = m.probabilities  # type: ignore[attr-defined]
            messages.append({"outcome": m.outcome, "frames": m.frames,  # type: ignore[attr-defined]
                             "measures": {k: v.value for k, v in m.measures.items()},  # type: ignore[attr-defined]
                             "quality": dict(m.quality),  # type: ignore[attr-defined]
                             "probabilities": dict(probabilities) if probabilities else None})  # fmt: skip
        out.append({"clip": res.spec.key, **res.spec.meta, **extra, "messages": messages})
    return out


# --- tables ---------------------------------------------------------------------------------------------------

HEADER = "| | n | MAE [95 % CI] | bias [95 % CI] | r | Bland–Altman limits |\n|---|---|---|---|---|---|"


def _pairs(
    records: list[dict[str, Any]], metric: str, truth_key: str
) -> tuple[list[float], list[float], list[dict[str, Any]]]:
    t, m, rows = [], [], []
    for rec in records:
        dev = rec["device"]
        if dev is None:
            continue
        tv, mv = rec["truth"].get(truth_key, math.nan), dev.get(metric, math.nan)
        if tv is None or mv is None or not (math.isfinite(tv) and math.isfinite(mv)):
            continue
        t.append(tv)
        m.append(mv)
        rows.append(rec)
    return t, m, rows


def window_tables(records: list[dict[str, Any]], metrics: tuple[str, ...], truths: dict[str, str],
                  defined_view: dict[str, str] | None) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """Markdown: per metric, agreement with each truth in its defined view (or all views), then by group."""
    lines: list[str] = []
    numbers: dict[str, Any] = {}
    for metric in metrics:
        view = defined_view.get(metric) if defined_view else None
        lines.append(f"\n**{metric}**" + (f" (defined in the {view} view)" if view else ""))
        lines.append(HEADER)
        numbers[metric] = {}
        for label, suffix in truths.items():
            key = metric + suffix if not (suffix == "_camera" and not metric.endswith("_deg")) else metric
            if suffix == "_camera" and metric not in ("yaw_deg", "pitch_deg", "roll_deg"):
                continue
            for scope in ["defined view", "all views"] if view else ["all"]:
                rows = [r for r in records if scope != "defined view" or r.get("view") == view]
                t, m, kept = _pairs(rows, metric, key)
                a = agreement(t, m, [r["subject"] for r in kept])
                numbers[metric][f"{label}, {scope}"] = a.as_dict()
                lines.append(f"| vs {label}, {scope} | {agreement_row(a, 2 if 'ratio' in metric else 1)} |")
        # breakdown against the first truth, in every view
        first = next(iter(truths.values()))
        t, m, kept = _pairs(records, metric, metric + first)
        for group in ("view", "age_group", "sex", "occlusion"):
            labels = [str(r.get(group)) for r in kept]
            for g, a in by_group(t, m, labels, [r["subject"] for r in kept]).items():
                numbers[metric][f"{group}={g}"] = a.as_dict()
                lines.append(f"| {group}: {g} | {agreement_row(a, 2 if 'ratio' in metric else 1)} |")
    return "\n".join(lines), numbers


def coverage(records: list[dict[str, Any]], metrics: tuple[str, ...]) -> str:
    """How many clips gave a window, and per view how many windows measured each metric."""
    views = sorted({str(r.get("view")) for r in records})
    lines = ["| view | clips | windows | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 3) + "|"]
    for v in views:
        rows = [r for r in records if str(r.get("view")) == v]
        with_window = [r for r in rows if r["device"] is not None]
        counts = [sum(1 for r in with_window if math.isfinite(r["device"].get(k, math.nan))) for k in metrics]
        lines.append(f"| {v} | {len(rows)} | {len(with_window)} | " + " | ".join(map(str, counts)) + " |")
    return "\n".join(lines)


def gait_report(records: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    from training.metrics import pearson_ci, pearson_r

    lines: list[str] = []
    numbers: dict[str, Any] = {}
    lines.append("| clips | n | exactly one walk-through | any screened | outcomes |")
    lines.append("|---|---|---|---|---|")
    for kind in sorted({r["kind"] for r in records}):
        rows = [r for r in records if r["kind"] == kind]
        one = sum(1 for r in rows if len(r["messages"]) == 1)
        n_screened = sum(1 for r in rows if any(m["outcome"] == "screened" for m in r["messages"]))
        outcomes: dict[str, int] = {}
        for r in rows:
            for msg in r["messages"] or [{"outcome": "(no message)"}]:
                outcomes[msg["outcome"]] = outcomes.get(msg["outcome"], 0) + 1
        numbers[kind] = {"n": len(rows), "one": one, "screened": n_screened, "outcomes": outcomes}
        listed = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        lines.append(f"| {kind} | {len(rows)} | {one} | {n_screened} | {listed} |")
    walks: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for r in records:
        if r["kind"] == "clean":
            walks += [(r, msg) for msg in r["messages"][:1] if msg["outcome"] == "screened"]
    subjects = [r["subject"] for r, _ in walks]

    def value(v: Any) -> float:
        return math.nan if v is None else float(v)

    lines.append("\n| measure | against | n | MAE [95 % CI] | bias [95 % CI] | r | Bland–Altman limits |")
    lines.append("|---|---|---|---|---|---|---|")
    m_cad = [value(msg["measures"].get("cadence_spm")) for _, msg in walks]
    pairs: list[tuple[str, str, list[float], list[float]]] = [
        ("cadence_spm", "true cadence", [r["cadence_spm"] for r, _ in walks], m_cad),
        ("step time (ms, 60/cadence)", "true step time", [r["step_time_s"] * 1000 for r, _ in walks],
         [60000.0 / c if c > 0 else math.nan for c in m_cad]),
    ]  # fmt: skip
    for name in GAIT_MEASURES:
        truth = [value((r.get("landmark_truth") or {}).get(name)) for r, _ in walks]
        pairs.append((name, "exact landmarks", truth, [value(msg["measures"].get(name)) for _, msg in walks]))
    for label, against, t, m in pairs:
        a = agreement(t, m, subjects)
        numbers[f"{label} vs {against}"] = a.as_dict()
        lines.append(f"| {label} | {against} | {agreement_row(a)} |")
    lines.append("\n| asymmetry measure | true asymmetry | n | r [95 % CI] |\n|---|---|---|---|")
    for name, true_key in (
        ("step_time_asymmetry_pct", "step_time_asymmetry"),
        ("step_length_asymmetry_pct", "step_length_asymmetry"),
        ("arm_swing_asymmetry_pct", "arm_swing_asymmetry"),
        ("shoulder_height_diff_deg", "cobb_deg"),
        ("pelvic_obliquity_deg", "cobb_deg"),
        ("trunk_lateral_lean_deg", "cobb_deg"),
    ):
        kept = [(float(r[true_key]), value(msg["measures"].get(name))) for r, msg in walks]
        kept = [(a, b) for a, b in kept if math.isfinite(b)]
        true_values = np.array([a for a, _ in kept], np.float64)
        measured = np.array([b for _, b in kept], np.float64)
        r_value = pearson_r(true_values, measured)
        lo, hi = pearson_ci(r_value, len(kept))
        numbers[f"r {name} ~ {true_key}"] = {"n": len(kept), "r": r_value, "ci": [lo, hi]}
        lines.append(f"| {name} | {true_key} | {len(kept)} | {fmt(r_value, 2)} [{fmt(lo, 2)}, {fmt(hi, 2)}] |")
    scored = [(r, msg["probabilities"]) for r, msg in walks if msg.get("probabilities")]
    if scored:
        lines.append(model_table(scored, numbers))
    return "\n".join(lines), numbers


def model_table(scored: list[tuple[dict[str, Any], dict[str, float]]], numbers: dict[str, Any]) -> str:
    """The gait model's P(positive) on the screened clean walks, by the walk's true class (the generator's Cobb rule,
    without its measurement error), and how well it separates positive walks from the rest."""
    from training.skeleton import binary_auc
    from training.synth.labels import scoliosis_class

    classes = [scoliosis_class(float(r["cobb_deg"])) for r, _ in scored]
    p_pos = np.array([p["positive"] for _, p in scored], np.float64)
    names = {v: k for k, v in GAIT_LABELS.items()}
    lines = [
        "\n| true class | screened walks | mean P(positive) | called positive (most probable) |",
        "|---|---|---|---|",
    ]
    for k in sorted(set(classes)):
        idx = [i for i, c in enumerate(classes) if c == k]
        called = sum(1 for i in idx if max(scored[i][1], key=lambda c: scored[i][1][c]) == "positive")
        lines.append(f"| {names[k]} | {len(idx)} | {p_pos[idx].mean():.2f} | {called} |")
    is_pos = np.array([c == GAIT_LABELS["positive"] for c in classes])
    auc = binary_auc(is_pos, p_pos)
    numbers["model"] = {"walks": len(scored), "auc_positive": auc}
    lines.append(f"\nP(positive) separates positive walks from the rest with AUC {fmt(auc, 2)} ({len(scored)} walks).")
    return "\n".join(lines)


# --- fitting the posture corrections (docs/metrics.md, "Corrections") -------------------------------------------


def fit_posture_corrections(fit: int = 200, held_out: int = 100) -> str:
    """Fit CVA_CORRECTION and HEAD_FORWARD_CORRECTION on exact avatar landmarks (no rendering) and test them on
    held-out subjects: the landmark value against the clinical one, side view, seated office postures."""
    from edge.roles.posture.metrics import compute_metrics
    from training.synth.avatar.builder import BodyRequest, build_bodies
    from training.synth.avatar.camera import role_camera
    from training.synth.avatar.phenotype import sample_phenotype
    from training.synth.avatar.pose import seated
    from training.synth.avatar.truth import clinical_metrics, device_person
    from training.synth.posture import sample_posture

    requests = []
    for s in range(fit + held_out):
        rng = np.random.default_rng([99, s])
        requests.append(BodyRequest(sample_phenotype(rng, "adult"), seated(sample_posture(rng, "office"))))
    rows = []
    for s, (_, points) in enumerate(build_bodies(requests)):
        rng = np.random.default_rng([98, s])
        head = _midpoint(points, "tragus_l", "tragus_r")
        pose = role_camera("desk-monitor", rng, head, azimuth_deg=90.0, both_sides=True, distance_m=(1.2, 1.8))
        raw = compute_metrics(device_person(points, pose.camera(W, H)), corrected=False).values
        clinical = clinical_metrics(points)
        rows.append([raw["cva_deg"], clinical["cva_deg"], raw["head_forward_ratio"], clinical["head_forward_ratio"]])
    data = np.array(rows, np.float64)
    lines = [
        "| metric | slope | intercept | held-out MAE | bias | SD | uncorrected MAE |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, col in (("cva_deg", 0), ("head_forward_ratio", 2)):
        x, y = data[:, col], data[:, col + 1]
        train, test = np.arange(len(x)) < fit, np.arange(len(x)) >= fit
        train &= np.isfinite(x)
        test &= np.isfinite(x)
        slope, intercept = np.polyfit(x[train], y[train], 1)
        residual = y[test] - (intercept + slope * x[test])
        uncorrected = np.abs(y[test] - x[test]).mean()
        lines.append(
            f"| {name} | {slope:.3f} | {intercept:.3f} | {np.abs(residual).mean():.3f} | {residual.mean():.3f} | "
            f"{residual.std(ddof=1):.3f} | {uncorrected:.3f} |"
        )
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=("posture", "headpose", "gait"))
    parser.add_argument(
        "--geometry",
        choices=("across", "along"),
        default="across",
        help="gait: walks across a side-wall camera, or along the corridor to and from its end",
    )
    parser.add_argument(
        "--gait-model",
        type=Path,
        default=None,
        help="gait: the booth's trained model (ONNX) to run on each walk, e.g. the installed bundle's",
    )
    parser.add_argument("--fit-corrections", action="store_true", help="fit the posture corrections and exit")
    parser.add_argument("--subjects", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    default_models = Path(os.environ.get("EDGESCREEN_MODEL_DIR", Path.home() / ".cache/edgescreen/models"))
    parser.add_argument("--model-dir", type=Path, default=default_models)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("edge", "training.synth"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.fit_corrections:
        print(fit_posture_corrections())
        return
    if args.role is None:
        raise SystemExit("--role: expected posture, headpose or gait")
    if args.subjects < 1:
        raise SystemExit("--subjects: expected at least 1")

    t0 = time.perf_counter()
    studio = Studio()
    if args.role == "posture":
        clips = posture_clips(studio, args.subjects, args.seed)
        results = run_clips("posture", clips, model_dir=args.model_dir, slot_s=POSTURE_SLOT_S)
        records = window_records(results)
        table, numbers = window_tables(records, POSTURE_METRICS, {"clinical": "_clinical", "exact landmarks": ""},
                                       DEFINED_VIEW)  # fmt: skip
        cov = coverage(records, POSTURE_METRICS)
    elif args.role == "headpose":
        clips = headpose_clips(studio, args.subjects, args.seed)
        results = run_clips("headpose", clips, model_dir=args.model_dir, slot_s=HEAD_SLOT_S)
        records = window_records(results)
        table, numbers = window_tables(records, HEADPOSE_METRICS, {"clinical": "_clinical", "camera": "_camera",
                                                                   "exact landmarks": ""}, None)  # fmt: skip
        cov = coverage(records, HEADPOSE_METRICS)
    else:
        clips = gait_clips(studio, args.subjects, args.seed, args.geometry)
        settings: dict[str, Any] = {"direction": "along" if args.geometry == "along" else "left_to_right"}
        if args.gait_model is not None:
            settings["model"] = {"path": str(args.gait_model)}
        perception = {"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 2}, "max_persons": 2,
                      "census_every": 10}  # fmt: skip
        if args.geometry == "along":
            from training.synth.booth_dataset import FAR_END_REGION

            perception["detection_regions"] = [FAR_END_REGION]
        results = run_clips("gait", clips, model_dir=args.model_dir, role_settings=settings, perception=perception)
        records = gait_records(results)
        table, numbers = gait_report(records)
        cov = ""
    elapsed = time.perf_counter() - t0
    print(
        f"<!-- benchmarks/accuracy.py --role {args.role} --subjects {args.subjects} --seed {args.seed}: "
        f"{len(clips)} clips in {elapsed:.0f} s on {platform.machine()}, {os.cpu_count()} CPUs, no GPU -->"
    )
    if cov:
        print(cov)
    print(table)
    if args.out:
        args.out.write_text(json.dumps({"role": args.role, "subjects": args.subjects, "seed": args.seed,
                                        "elapsed_s": elapsed, "records": records, "numbers": numbers},
                                       indent=1, default=str))  # fmt: skip


if __name__ == "__main__":
    main()
