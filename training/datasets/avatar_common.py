"""What the avatar data sets share: rendering subjects of one scene kind in batches, the labels CSV written row by
row (so a long run leaves a readable set behind at any point), and the breakdown columns (sex, age group) every
avatar set carries beside its labels."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from training.datasets.image_folder import LABELS_CSV

log = logging.getLogger(__name__)

# Age groups of the breakdowns (years, lower bound inclusive): adolescents for the booth, three adult bands.
AGE_GROUPS: tuple[tuple[str, float, float], ...] = (
    ("10-17", 0.0, 18.0),
    ("18-34", 18.0, 35.0),
    ("35-49", 35.0, 50.0),
    ("50+", 50.0, 200.0),
)
BREAKDOWN_COLUMNS: tuple[str, ...] = ("sex", "age_years", "age_group")


def age_group(age_years: float) -> str:
    for name, lo, hi in AGE_GROUPS:
        if lo <= age_years < hi:
            return name
    raise ValueError(f"age {age_years} lies outside every age group")


def breakdown_cells(truth: dict[str, Any]) -> list[str]:
    """sex, age in years and age group of a frame's truth record."""
    age = float(truth["age_years"])
    return [str(truth["sex"]), f"{age:.1f}", age_group(age)]


class RowWriter:
    """ROOT/labels.csv written and flushed row by row."""

    def __init__(self, root: Path, header: Sequence[str]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / LABELS_CSV
        self._handle: IO[str] = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(list(header))
        self.rows = 0

    def write(self, cells: Sequence[Any]) -> None:
        self._writer.writerow(list(cells))
        self.rows += 1
        if self.rows % 64 == 0:
            self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rendered_subjects(
    kind: str, seed: int, n_subjects: int, *, first: int = 0, width: int = 640, height: int = 480,
    batch_subjects: int = 2, clip: bool = False, n_frames: int | None = None,
) -> Iterator[Any]:  # fmt: skip
    """Clips (training.synth.avatar.scenes.Clip) of subjects first .. first + n_subjects - 1 of a `kind` set, the
    bodies of `batch_subjects` subjects built in one call."""
    from training.synth.avatar.scenes import SceneRenderer, plan_subject

    renderer = SceneRenderer(width, height)
    for start in range(first, first + n_subjects, batch_subjects):
        stop = min(start + batch_subjects, first + n_subjects)
        plans = [plan_subject(kind, seed, i, clip=clip, n_frames=n_frames) for i in range(start, stop)]
        yield from renderer.render(plans, clip=clip)
