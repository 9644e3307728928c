"""Gait-booth training sets from avatar walks, seen through the booth's own perception.

Each subject's `booth-walk` clip (training/synth/avatar/scenes.py) runs frame by frame through the device's
perception (`edge.perception.pipeline`, BlazePose with its segmentation, as the booth profile runs it), so the
models train on what a booth sees, not on render truth:

  DIR/walks/ID.npz          per frame: t, people, bbox, BlazePose keypoints (33 x 3) and world landmarks, the
                            booth's 64 x 44 silhouette (edge.roles.gait.silhouette); what geometry checks replay
  DIR/walks.jsonl           one line per subject: id, label (observed, with the generator's label noise),
                            label_clean, cobb_deg, sex, age_years, view, direction, geometry, frames
  DIR/sil/ID/Class/VIEW/VIEW.pkl   Scoliosis1K silhouettes uint8 [T, 64, 64] (the 64 x 44 silhouette with its
                            10 dropped columns restored as zeros; the loader cuts them again)
  DIR/pose/ID/Class/VIEW/VIEW.pkl  Scoliosis1K-Pose keypoints float64 [T, 17, 3] (BlazePose → COCO-17,
                            contract.landmarks; a point below visibility 0.5 is 0, 0, 0)
  DIR/sil/partition.json, DIR/pose/partition.json   TRAIN_SET / TEST_SET by subject (3 : 1)

VIEW is `000_180` for walks towards or away from the camera (Scoliosis1K's view) and `090` across it. Labels
follow the generator's rule (labels.scoliosis_label: the Cobb angle as measured, with its error) exactly as the
scene draws them. Subjects whose walk the perception never found are listed with frames 0 and left out of the
trees.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from contract.landmarks import NUM_LANDMARKS
from edge.roles.gait.silhouette import SIL_HEIGHT, SIL_WIDTH, silhouette_from_mask
from edge.roles.gait.skeleton import coco_sequence
from training.datasets.scoliosis1k import write_silhouette_pkl, write_split
from training.datasets.scoliosis1k_pose import write_pose_pkl

log = logging.getLogger(__name__)

Geometry = Literal["along", "across", "all"]
GEOMETRIES: tuple[Geometry, ...] = ("along", "across", "all")
VIEW_FOLDER = {"along": "000_180", "across": "090"}
_ALONG_VIEWS = ("front", "back")


@dataclass
class WalkRecord:
    """One subject's walk as the booth's perception saw it (arrays over the clip's frames)."""

    subject: str
    t: npt.NDArray[np.float64]
    people: npt.NDArray[np.int64]
    bbox: npt.NDArray[np.float32]  # (T, 4), NaN without a person
    keypoints: npt.NDArray[np.float32]  # (T, 33, 3), NaN without a person
    world: npt.NDArray[np.float32]  # (T, 33, 3)
    silhouettes: npt.NDArray[np.uint8]  # (T, 64, 44), zeros without a usable mask
    has_silhouette: npt.NDArray[np.bool_]
    width: int
    height: int
    info: dict[str, Any]

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, t=self.t, people=self.people, bbox=self.bbox, keypoints=self.keypoints, world=self.world,
            silhouettes=self.silhouettes, has_silhouette=self.has_silhouette, size=np.array([self.width, self.height]),
            info=np.array(json.dumps(self.info)),
        )  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> WalkRecord:
        with np.load(path) as z:
            w, h = (int(v) for v in z["size"])
            return cls(path.stem, z["t"], z["people"], z["bbox"], z["keypoints"], z["world"], z["silhouettes"],
                       z["has_silhouette"], w, h, json.loads(str(z["info"])))  # fmt: skip

    def keypoint_frames(self) -> list[npt.NDArray[np.float32] | None]:
        return [None if p == 0 else self.keypoints[i] for i, p in enumerate(self.people)]


def geometry_of(view: str) -> str:
    return "along" if view in _ALONG_VIEWS else "across"


def subject_indices(seed: int, geometry: Geometry, n: int, first: int = 0) -> Iterator[int]:
    """The first `n` subject indices (from `first`) whose planned view fits `geometry` (oblique walks excluded)."""
    from training.synth.avatar.scenes import plan_subject

    found, index = 0, first
    while found < n:
        view = plan_subject("booth-walk", seed, index, clip=True, n_frames=2).view
        if view != "oblique" and geometry in ("all", geometry_of(view)):
            found += 1
            yield index
        index += 1


def perceive_walk(clip: Any, pipeline: Any) -> WalkRecord:
    """Run one rendered clip through the booth's perception; keep what the booth keeps per frame."""
    n = len(clip.frames)
    h, w = clip.frames[0].rgb.shape[:2]
    rec = WalkRecord(
        clip.subject, np.zeros(n), np.zeros(n, np.int64), np.full((n, 4), np.nan, np.float32),
        np.full((n, NUM_LANDMARKS, 3), np.nan, np.float32), np.full((n, NUM_LANDMARKS, 3), np.nan, np.float32),
        np.zeros((n, SIL_HEIGHT, SIL_WIDTH), np.uint8), np.zeros(n, bool), w, h, {},
    )  # fmt: skip
    pipeline.reset()
    for i, frame in enumerate(clip.frames):
        result = pipeline.process(np.ascontiguousarray(frame.rgb[..., ::-1]), frame.t)
        rec.t[i] = frame.t
        people = [p for p in result.persons if p.score >= 0.5]
        rec.people[i] = len(people)
        if not people:
            continue
        person = max(people, key=lambda p: (p.bbox[2] - p.bbox[0]) * (p.bbox[3] - p.bbox[1]))
        rec.bbox[i] = person.bbox
        rec.keypoints[i] = person.keypoints
        if person.world is not None:
            rec.world[i] = person.world
        sil = silhouette_from_mask(person.mask)
        if sil is not None:
            rec.silhouettes[i] = sil
            rec.has_silhouette[i] = True
    truth = clip.frames[0].truth
    rec.info = {
        "subject": clip.subject, "label": truth["label"], "cobb_deg": truth.get("cobb_deg"),
        "sex": truth["sex"], "age_years": truth["age_years"], "view": truth["view"],
        "direction": truth.get("direction"), "fps": clip.fps, "frames": n,
        "frames_with_person": int((rec.people > 0).sum()), "walk_truth": clip.truth,
    }  # fmt: skip
    return rec


# Where a booth camera at the corridor's end sees the far end of the walk: the middle third of the frame. Its
# detector also searches there, magnified (perception.detection_regions), or students walking towards it are found
# only in the last metre or two.
FAR_END_REGION = (1 / 3, 0.25, 2 / 3, 2 / 3)


def make_pipeline(model_dir: Path | None = None, geometry: Geometry = "all") -> Any:
    """The booth's perception as its profile sets it up for `geometry` (docs/metrics.md, "Walk geometry")."""
    from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline

    root = model_dir or Path(os.environ.get("EDGESCREEN_MODEL_DIR", Path.home() / ".cache/edgescreen/models"))
    regions = [FAR_END_REGION] if geometry != "across" else []
    config = PerceptionConfig.model_validate(
        {"segmentation": True, "face": False, "backend": {"threads": 2}, "detection_regions": regions}
    )
    return PerceptionPipeline(config, root)


def render_walks(
    out: Path,
    n: int,
    seed: int,
    geometry: Geometry = "all",
    *,
    first: int = 0,
    width: int = 640,
    height: int = 480,
    model_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Render and perceive `n` subjects' walks into `out/walks/` and `out/walks.jsonl` (appending; a subject
    already there is skipped, so an interrupted run resumes). Returns every line of walks.jsonl."""
    from training.synth.avatar.scenes import SceneRenderer, plan_subject

    if geometry not in GEOMETRIES:
        raise ValueError(f"unknown booth geometry {geometry!r}; expected one of {', '.join(GEOMETRIES)}")
    walks = out / "walks"
    walks.mkdir(parents=True, exist_ok=True)
    index_file = out / "walks.jsonl"
    done = (
        {json.loads(line)["subject"] for line in index_file.read_text().splitlines()} if index_file.exists() else set()
    )
    pipeline = make_pipeline(model_dir, geometry)
    renderer = SceneRenderer(width, height)
    started = time.monotonic()
    for k, index in enumerate(subject_indices(seed, geometry, n, first)):
        plan = plan_subject("booth-walk", seed, index, clip=True)
        if plan.subject_id in done:
            continue
        (clip,) = renderer.render([plan], clip=True)
        rec = perceive_walk(clip, pipeline)
        rec.info.update(label_clean=plan.extra["label_clean"], geometry=geometry_of(plan.view), planned_view=plan.view)
        rec.save(walks / f"{rec.subject}.npz")
        with index_file.open("a", encoding="utf-8") as f:
            f.write(json.dumps({k2: v for k2, v in rec.info.items() if k2 != "walk_truth"}) + "\n")
        log.info("booth walk %d/%d: %s %s %s, %d/%d frames with a person, %.0f s so far", k + 1, n, rec.subject,
                 rec.info["view"], rec.info["label"], rec.info["frames_with_person"], rec.info["frames"],
                 time.monotonic() - started)  # fmt: skip
    return [json.loads(line) for line in index_file.read_text().splitlines()]


def load_walks(out: Path) -> list[WalkRecord]:
    """Every perceived walk under `out/walks/` (sorted by subject)."""
    return [WalkRecord.load(p) for p in sorted((out / "walks").glob("*.npz"))]


def write_trees(out: Path, seed: int = 0) -> dict[str, int]:
    """The Scoliosis1K silhouette and Scoliosis1K-Pose trees from the perceived walks; returns counts."""
    records = [r for r in load_walks(out) if r.info["frames_with_person"] > 0]
    margin = (SIL_HEIGHT - SIL_WIDTH) // 2
    for rec in records:
        cls = str(rec.info["label"]).capitalize()
        view = VIEW_FOLDER[str(rec.info.get("geometry") or geometry_of(rec.info["view"]))]
        present = rec.people > 0
        sils = rec.silhouettes[present & rec.has_silhouette]
        if len(sils):
            square = np.zeros((len(sils), SIL_HEIGHT, SIL_HEIGHT), np.uint8)
            square[:, :, margin : margin + SIL_WIDTH] = sils
            write_silhouette_pkl(out / "sil" / rec.subject / cls / view / f"{view}.pkl", square)
        kp = coco_sequence([rec.keypoints[i] for i in np.flatnonzero(present)])
        write_pose_pkl(out / "pose" / rec.subject / cls / view / f"{view}.pkl", kp)
    ids = sorted(r.subject for r in records)
    rng = np.random.default_rng(seed)
    test = set(rng.choice(ids, size=max(1, len(ids) // 4), replace=False).tolist()) if ids else set()
    for tree in ("sil", "pose"):
        if (out / tree).is_dir():
            write_split(out / tree / "partition.json", [i for i in ids if i not in test], sorted(test))
    return {"subjects": len(ids), "test": len(test)}


def replay_walk(rec: WalkRecord, config: Any) -> Any:
    """The booth's message for a perceived walk: its frames as the gait analyzer keeps them, judged and measured
    by the analyzer under `config` (a GaitConfig; its model, if any, gives the probabilities)."""
    from edge.roles.base import EmitContext
    from edge.roles.gait.analyzer import GaitAnalyzer
    from edge.roles.gait.walk import Walk, WalkFrame

    analyzer = GaitAnalyzer(EmitContext(site="avatar", device_id="booth"), config)
    frames = []
    for i in range(len(rec.t)):
        f = WalkFrame(t=float(rec.t[i]), people=int(rec.people[i]))
        if rec.people[i] > 0:
            x0, y0, x1, y1 = (float(v) for v in rec.bbox[i])
            f.cx, f.height = (x0 + x1) / 2 / rec.width, (y1 - y0) / rec.height
            f.keypoints, f.world = rec.keypoints[i], rec.world[i]
            f.silhouette = rec.silhouettes[i] if rec.has_silhouette[i] else None
        frames.append(f)
    while frames and frames[0].people == 0:
        frames.pop(0)
    while frames and frames[-1].people == 0:
        frames.pop()
    if not frames:
        return None
    analyzer.timeline.accept(frames[0].t)
    return analyzer._screen(Walk(frames, closed_at=frames[-1].t))
