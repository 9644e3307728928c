"""Avatar stills rendered by several worker processes, one per core: each worker holds its own GL context
(render.gl_context is one per process) and its own body model, and renders whole batches of subjects.

The batches are the ones `scenes.iter_images` forms (`image_batches`: the same subjects, bodies built together), and
every subject draws only from generators seeded by (seed, scene, subject), so the images and truth are
byte-identical whatever the number of workers (tested). Results come back in order, as encoded images: what
`edgescreen synth avatars` writes (the camera's JPEG or a PNG) plus the truth record, not the raw arrays.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from training.synth.avatar.scenes import DEFAULT_SIZE, SceneRenderer, image_batches, render_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedFrame:
    """One still as written to disk: `ext` (".jpg" or ".png"), its bytes and its truth record."""

    subject: str
    frame: int
    ext: str
    data: bytes
    truth: dict[str, Any]


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_WORKER: dict[str, SceneRenderer] = {}  # the worker process's renderer


def _start_worker(width: int, height: int) -> None:
    # One llvmpipe thread per worker: the workers already fill the cores, and more threads only contend.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    _WORKER["renderer"] = SceneRenderer(width, height)


def _encoded(renderer: SceneRenderer, kind: str, seed: int, batch: list[tuple[int, int]]) -> list[EncodedFrame]:
    out = []
    for clip in render_batch(renderer, kind, seed, batch):
        for f in clip.frames:
            ext, data = f.encode()
            out.append(EncodedFrame(f.subject, f.frame, ext, data, f.truth))
    return out


def _work(job: tuple[str, int, list[tuple[int, int]]]) -> list[EncodedFrame]:
    kind, seed, batch = job
    return _encoded(_WORKER["renderer"], kind, seed, batch)


def iter_encoded(
    kind: str, n: int, seed: int, *, workers: int = 1, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1],
    renderer: SceneRenderer | None = None,
) -> Iterator[EncodedFrame]:  # fmt: skip
    """`n` stills of scene `kind` from `seed` in order (the frames `scenes.iter_images` gives, encoded), rendered
    in this process (`workers` 1; `renderer` reused if given) or by `workers` processes."""
    if workers < 1:
        raise ValueError(f"avatar workers: expected at least 1, got {workers}")
    batches = image_batches(kind, n, seed)
    if workers == 1 or len(batches) == 1:
        r = renderer or SceneRenderer(width, height)
        for batch in batches:
            yield from _encoded(r, kind, seed, batch)
        return
    # spawn, not fork: a forked child would inherit the parent's GL context and torch's thread pools.
    ctx = multiprocessing.get_context("spawn")
    count = min(workers, len(batches))
    log.info("avatar %s: %d images in %d batches on %d worker processes", kind, n, len(batches), count)
    with ctx.Pool(count, initializer=_start_worker, initargs=(width, height)) as pool:
        for frames in pool.imap(_work, [(kind, seed, b) for b in batches], chunksize=1):
            yield from frames
