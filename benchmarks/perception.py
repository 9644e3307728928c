"""Perception speed: ms per frame per stage and for the whole pipeline, ONNX Runtime against LiteRT.

Both runtimes run the same pipeline code (same pre- and post-processing) on the same images in the
same run, taking turns frame by frame (which goes first alternates) so that a change in machine load
hits both alike; one thread count is measured after the other:
- ONNX Runtime on the converted models from the model store (what the device runs);
- the LiteRT interpreter (XNNPACK, the runtime MediaPipe uses) on the original .tflite models.
Two modes: `still` (every frame is new: detector + landmarks + face detector + face landmarks) and
`video` (the same person frame after frame: tracked, so the detectors are skipped).
Prints a markdown table; `--json` prints the raw medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.backends.base import BackendConfig
from edge.model_store import default_model_dir
from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline
from tests.support.litert_backend import extract_tflite_models, litert_factory

STAGES = ("pose_detection", "pose_landmarks", "face_detection", "face_landmarks", "head_pose", "total")


def images() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    hopper_path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    hopper = cv2.imdecode(np.fromfile(str(hopper_path), np.uint8), cv2.IMREAD_COLOR)
    frame = np.zeros((720, 1280, 3), np.uint8)  # a 720p camera frame with the person off-centre
    frame[100:612, 640:1152] = astronaut
    return {"astronaut 512²": astronaut, "grace_hopper 512×600": hopper, "720p frame": frame}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="timed frames per image, mode and runtime")
    parser.add_argument("--threads", default="1,2", help="thread counts to compare (comma separated)")
    parser.add_argument("--model-dir", type=Path, default=None, help="model store (default: the usual one)")
    parser.add_argument(
        "--stat",
        choices=("median", "min"),
        default="median",
        help="per-frame statistic; `min` shows what the machine can do when others load it (default median)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    thread_counts = [int(t) for t in args.threads.split(",")]

    import ai_edge_litert
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="edgescreen-tflite-") as tmp:
        tflite_dir = extract_tflite_models(model_dir, Path(tmp))
        pipelines: dict[tuple[str, int], PerceptionPipeline] = {}
        for threads in thread_counts:
            config = PerceptionConfig(backend=BackendConfig(threads=threads))
            pipelines[("onnxruntime", threads)] = PerceptionPipeline(config, model_dir)
            pipelines[("litert", threads)] = PerceptionPipeline(
                config, model_dir, backend_factory=litert_factory(tflite_dir, threads)
            )
        for pipe in pipelines.values():
            pipe.warmup()

        # samples[(runtime, threads, mode, image)][stage] = list of ms
        samples: dict[tuple[str, int, str, str], dict[str, list[float]]] = {}
        # One thread count at a time, and the two runtimes in turn with the order swapped every frame: a
        # multi-threaded runtime's workers keep spinning for a moment after a run, which slows whatever
        # runs next, so neither runtime may always follow the other, nor a one-thread run a two-thread one.
        for threads in thread_counts:
            pair = [(key, pipe) for key, pipe in pipelines.items() if key[1] == threads]
            for image_name, image in images().items():
                for mode in ("still", "video"):
                    for _, pipe in pair:
                        pipe.reset()
                        for _ in range(3):  # settle: caches, and in video mode the track
                            pipe.process(image, time.monotonic())
                    for frame in range(args.frames):
                        for (runtime, _), pipe in pair if frame % 2 == 0 else pair[::-1]:
                            if mode == "still":
                                pipe.reset()
                            result = pipe.process(image, time.monotonic())
                            if not result.persons:
                                raise SystemExit(f"{runtime}: no person found in a benchmark image")
                            key = (runtime, threads, mode, image_name)
                            store = samples.setdefault(key, {s: [] for s in STAGES})
                            for stage in STAGES:
                                store[stage].append(result.stage_ms.get(stage, 0.0))

    # The statistic per image, then the mean over the images.
    stat = statistics.median if args.stat == "median" else min
    per_image: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    for (runtime, threads, mode, _), stages in samples.items():
        per_image.setdefault((runtime, threads, mode), []).append({s: stat(v) for s, v in stages.items()})
    medians = {key: {s: statistics.fmean(row[s] for row in rows) for s in STAGES} for key, rows in per_image.items()}
    if args.json:
        print(json.dumps([{"runtime": r, "threads": t, "mode": m, "ms": v} for (r, t, m), v in medians.items()]))
        return 0

    load = os.getloadavg()
    print(
        f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
        f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}; load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. {args.stat.capitalize()} ms per frame over "
        f"{args.frames} frames, averaged over {len(images())} images (astronaut, grace_hopper, a 720p frame); "
        "runtimes take turns frame by frame, first one then the other, one thread count after the other.\n"
    )
    for mode in ("still", "video"):
        title = "still images (detector every frame)" if mode == "still" else "video (tracked: detectors skipped)"
        header = ["stage"]
        for t in thread_counts:
            header += [f"ORT {t}t", f"LiteRT {t}t", f"ORT/LiteRT {t}t"]
        print(f"**{title}**\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for stage in STAGES:
            row = [stage if stage != "total" else "**whole pipeline**"]
            for t in thread_counts:
                ort_ms = medians[("onnxruntime", t, mode)][stage]
                lite_ms = medians[("litert", t, mode)][stage]
                ratio = f"{ort_ms / lite_ms:.2f}" if lite_ms > 0.05 else "–"
                row += [f"{ort_ms:.2f}", f"{lite_ms:.2f}", ratio]
            print("| " + " | ".join(row) + " |")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
