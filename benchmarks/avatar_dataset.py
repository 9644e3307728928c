"""Avatar data set speed: images per second of the whole pipeline per scene (bodies, render, camera degradations,
truth, encoding), and the time a 16,000-image head-station set takes, extrapolated from the images timed.

With `--workers 1` the set is rendered in this process, after one warm-up batch per scene (the body model, the GL
context and the first textures are not timed). With more workers (`training.synth.avatar.workers`, one process per
core), each scene's timing includes starting the workers (each loads the body model and opens its GL context), as a
real run pays it. Encoding (JPEG or PNG, as `edgescreen synth avatars` writes) is timed; writing the files is not.
CPU time counts this process and its workers; the load average is printed at the start and end of each scene, since
the wall time depends on what else shares the cores.

    python benchmarks/avatar_dataset.py [--images 100] [--head-station-images 500] [--workers 2] [--scenes ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

from training.synth.avatar.render import gl_context
from training.synth.avatar.scenes import SCENE_KINDS, SceneRenderer
from training.synth.avatar.workers import default_workers, iter_encoded

HEAD_STATION_SET = 16_000


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers, once the pool has ended and reaped them
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100, help="images timed per scene")
    parser.add_argument("--head-station-images", type=int, default=500, help="images timed for the head station")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes (default: one per core)")
    parser.add_argument("--scenes", nargs="+", choices=SCENE_KINDS, default=list(SCENE_KINDS))
    args = parser.parse_args()

    renderer = SceneRenderer(args.width, args.height) if args.workers == 1 else None
    info = gl_context().info if renderer is not None else {"GL_RENDERER": "llvmpipe (in the workers)"}
    print(f"<!-- {platform.machine()}, {os.cpu_count()} CPUs, {info['GL_RENDERER']}, {args.workers} worker(s), "
          f"{args.width}x{args.height} -->")  # fmt: skip
    print("| scene | images timed | load avg (start-end) | images/s | wall ms/image | CPU ms/image | 16,000 images |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.scenes:
        if renderer is not None:  # model, context and textures warm
            for _ in iter_encoded(kind, 8, args.seed + 1, renderer=renderer):
                pass
        n = args.head_station_images if kind == "head-station" else args.images
        load0, cpu0, t = os.getloadavg()[0], _cpu_s(), time.perf_counter()
        for _ in iter_encoded(kind, n, args.seed, workers=args.workers, width=args.width, height=args.height,
                              renderer=renderer):  # fmt: skip
            pass
        wall, cpu, load1 = time.perf_counter() - t, _cpu_s() - cpu0, os.getloadavg()[0]
        full = HEAD_STATION_SET * wall / n
        print(f"| {kind} | {n} | {load0:.1f}-{load1:.1f} | {n / wall:.1f} | {wall / n * 1000:.0f} | "
              f"{cpu / n * 1000:.0f} | {full / 60:.1f} min |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
