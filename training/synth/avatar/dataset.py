"""Write an avatar scene set to disk: images (or one clip per subject) and DIR/truth.jsonl (docs/synthetic.md).

Layout of DIR:
  images/S00000_00.jpg ...   stills, JPEG when the subject's camera encodes JPEG, else PNG (lossless)
  clips/S00000.mp4 ...       with video: one MPEG-4 clip per subject (OpenCV's mp4v), frames as rendered
  truth.jsonl                one line per image or clip frame: "image" (path relative to DIR), "frame" (clips),
                             "keypoints", every metric by wire name, subject, sex, age_years, view, occluded, ...
  meta.json                  scene, role, seed, counts, image size, the role's metric names
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.synth.avatar.scenes import (
    CLIP_FPS,
    ROLE_METRICS,
    ROLE_OF_SCENE,
    SceneRenderer,
    check_kind,
    iter_clips,
)
from training.synth.avatar.workers import iter_encoded

log = logging.getLogger(__name__)
SHEET_TILES = 8  # a contact sheet shows the first frame of this many subjects, four to a row
SHEET_TILE_WIDTH = 200
SHEET_LEVELS = 32  # per channel: fewer levels keep a sheet of noisy photos small as a PNG


@dataclass(frozen=True)
class AvatarSetSummary:
    out: Path
    images: int
    clips: int
    lines: int


def _line(truth: dict[str, Any], image: str, *, index: int | None) -> str:
    record: dict[str, Any] = {"image": image}
    if index is not None:
        record["frame"] = index
    record.update(truth)
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


def write_avatar_set(
    kind: str,
    out: str | Path,
    *,
    n: int,
    seed: int = 0,
    video: bool = False,
    width: int = 640,
    height: int = 480,
    contact_sheet: str | Path | None = None,
    workers: int = 1,
) -> AvatarSetSummary:
    """`n` images (or, with `video`, `n` clips) of scene `kind` from `seed` into `out`; stills rendered by
    `workers` processes (workers.iter_encoded: the same bytes whatever their number)."""
    check_kind(kind)
    if n < 1:
        raise ValueError(f"avatar set: n must be >= 1, got {n}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    renderer = SceneRenderer(width, height) if video or workers == 1 else None
    sheet: list[np.ndarray] = []
    images = clips = lines = 0
    with (root / "truth.jsonl").open("w", encoding="utf-8") as truth:
        if video:
            (root / "clips").mkdir(exist_ok=True)
            for clip in iter_clips(kind, n, seed, renderer=renderer or SceneRenderer(width, height)):
                name = f"clips/{clip.subject}.mp4"
                _write_clip(root / name, (f.rgb for f in clip.frames), CLIP_FPS[kind], (width, height))
                for f in clip.frames:
                    truth.write(_line(f.truth, name, index=f.frame) + "\n")
                    lines += 1
                if len(sheet) < SHEET_TILES:
                    sheet.append(clip.frames[len(clip.frames) // 2].rgb)
                clips += 1
        else:
            (root / "images").mkdir(exist_ok=True)
            for e in iter_encoded(kind, n, seed, workers=workers, width=width, height=height, renderer=renderer):
                name = f"images/{e.subject}_{e.frame:02d}{e.ext}"
                (root / name).write_bytes(e.data)
                truth.write(_line(e.truth, name, index=None) + "\n")
                if len(sheet) < SHEET_TILES and e.frame == 0:  # one image per subject
                    bgr = cv2.imdecode(np.frombuffer(e.data, np.uint8), cv2.IMREAD_COLOR)
                    if bgr is None:
                        raise RuntimeError(f"avatar set {root / name}: OpenCV could not decode its own image")
                    sheet.append(np.ascontiguousarray(bgr[..., ::-1]))
                images += 1
                lines += 1
    meta = {
        "scene": kind,
        "role": ROLE_OF_SCENE[kind],
        "seed": seed,
        "video": video,
        "images": images,
        "clips": clips,
        "width": width,
        "height": height,
        "fps": CLIP_FPS[kind] if video else None,
        "metrics": list(ROLE_METRICS[kind]),
    }
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if contact_sheet is not None:
        write_contact_sheet(contact_sheet, sheet)
    log.info("avatar set %s: %d images, %d clips, %d truth lines in %s", kind, images, clips, lines, root)
    return AvatarSetSummary(root, images, clips, lines)


def _write_clip(path: Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"avatar clip {path}: OpenCV cannot write MPEG-4 here (no video encoder in this build)")
    try:
        for rgb in frames:
            writer.write(np.ascontiguousarray(rgb[..., ::-1]))
    finally:
        writer.release()


def write_contact_sheet(path: str | Path, tiles: list[np.ndarray], *, columns: int = 4) -> Path:
    """A PNG grid of `tiles` (RGB), each scaled to SHEET_TILE_WIDTH pixels wide, SHEET_LEVELS levels a channel."""
    if not tiles:
        raise ValueError("contact sheet: no frames to show")
    h, w = tiles[0].shape[:2]
    th = round(SHEET_TILE_WIDTH * h / w)
    small = [cv2.resize(t, (SHEET_TILE_WIDTH, th), interpolation=cv2.INTER_AREA) for t in tiles]
    rows = -(-len(small) // columns)
    grid = np.full((rows * th, min(columns, len(small)) * SHEET_TILE_WIDTH, 3), 255, np.uint8)
    for i, t in enumerate(small):
        r, c = divmod(i, columns)
        grid[r * th : (r + 1) * th, c * SHEET_TILE_WIDTH : (c + 1) * SHEET_TILE_WIDTH] = t
    step = 256 // SHEET_LEVELS
    grid = (grid // step * step + step // 2).astype(np.uint8)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(target), grid[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise RuntimeError(f"contact sheet {target}: OpenCV could not write it")
    return target
