"""Avatar data set speed: images per second of the whole pipeline per scene (bodies, render, camera degradations,
truth, encoding), and the time a 16,000-image head-station set takes, extrapolated from the images timed.

Loading the body model and the GL context, and one warm-up subject per scene, are not timed. Encoding (JPEG or
PNG, as `edgescreen synth avatars` writes) is timed; writing the files is not.

    python benchmarks/avatar_dataset.py [--images 100] [--head-station-images 500] [--width 640 --height 480]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from training.synth.avatar.render import gl_context
from training.synth.avatar.scenes import SCENE_KINDS, SceneRenderer, iter_images

HEAD_STATION_SET = 16_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100, help="images timed per scene")
    parser.add_argument("--head-station-images", type=int, default=500, help="images timed for the head station")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    renderer = SceneRenderer(args.width, args.height)
    info = gl_context().info
    print(f"<!-- {platform.machine()}, {os.cpu_count()} CPUs, {info['GL_RENDERER']}, load average "
          f"{os.getloadavg()[0]:.2f} at start, {args.width}x{args.height} -->")  # fmt: skip
    print("| scene | images timed | images/s | ms/image | 16,000 images |")
    print("|---|---|---|---|---|")
    for kind in SCENE_KINDS:
        for _ in iter_images(kind, 4, args.seed + 1, renderer=renderer):  # model, context and textures warm
            pass
        n = args.head_station_images if kind == "head-station" else args.images
        t = time.perf_counter()
        for frame in iter_images(kind, n, args.seed, renderer=renderer):
            frame.encode()
        wall = time.perf_counter() - t
        full = HEAD_STATION_SET * wall / n
        print(f"| {kind} | {n} | {n / wall:.1f} | {wall / n * 1000:.0f} | {full / 60:.1f} min (extrapolated) |")


if __name__ == "__main__":
    main()
