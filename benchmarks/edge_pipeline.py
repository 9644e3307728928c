"""Whole-runtime speed and memory: frames per second and peak RSS of the device runtime at 640×480.

Each role runs in a fresh child process (so peak RSS is the runtime's own, not this script's): the
real `EdgeRuntime` assembled by `build_runtime` from a profile — perception models loaded and warmed,
the role's analyzer, the durable outbox — fed 640×480 frames of a real photo (skimage's astronaut)
moved and rotated a little every frame, as fast as the runtime takes them. No broker: delivery runs
in its own thread and costs nothing per frame. Per-stage figures are ms per processed frame.
Targets (posture role, full-range pose model, tracking mode, 2 CPU cores): ≥ 30 fps, peak RSS ≤ 400 MB.
Prints a markdown table; `--json` prints the raw figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROLES = ("posture", "gait", "headpose")
WIDTH, HEIGHT = 640, 480
TARGET_FPS, TARGET_RSS_MB = 30.0, 400.0


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# -- child: one role in one process ------------------------------------------------------------------------


class MemoryFeed:
    """A camera stand-in: the photo on a 640×480 canvas, shifted and turned a little each frame."""

    def __init__(self, image_path: Path, frames: int) -> None:
        import cv2
        import numpy as np

        photo = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if photo is None:
            raise SystemExit(f"cannot read {image_path}")
        scale = (HEIGHT * 0.95) / photo.shape[0]
        photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        self.canvas = np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)
        x0 = (WIDTH - photo.shape[1]) // 2
        y0 = (HEIGHT - photo.shape[0]) // 2
        self.canvas[y0 : y0 + photo.shape[0], x0 : x0 + photo.shape[1]] = photo
        self.frames = frames
        self.i = 0
        self.times: list[float] = []

    def start(self) -> None:
        pass

    def get(self, timeout: float) -> tuple[object, float] | None:
        import cv2

        if self.i >= self.frames:
            return None
        t = self.i / 30.0
        angle = 6.0 * math.sin(2 * math.pi * t / 4.0)
        shift = 15.0 * math.sin(2 * math.pi * t / 6.0)
        matrix = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), angle, 1.0)
        matrix[0, 2] += shift
        frame = cv2.warpAffine(self.canvas, matrix, (WIDTH, HEIGHT), borderValue=(90, 90, 90))
        self.i += 1
        self.times.append(time.perf_counter())
        return frame, t

    @property
    def finished(self) -> bool:
        return self.i >= self.frames

    def health(self) -> Any:
        from edge.runtime import CameraHealth

        return CameraHealth(state="ended" if self.finished else "open")

    def stop(self) -> None:
        pass


def run_child(role: str, image: Path, *, frames: int, warmup: int, threads: int, model_dir: Path) -> dict[str, Any]:
    from edge.config import validate_profile
    from edge.roles.registry import RoleUnavailable
    from edge.runtime import RunLimits, build_runtime

    with tempfile.TemporaryDirectory(prefix="edgescreen-bench-") as tmp:
        profile = validate_profile(
            {
                "device": {"site": "bench", "device_id": "bench-1"},
                "role": role,
                "camera": {"source": "memory", "width": WIDTH, "height": HEIGHT},
                "perception": {"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": threads}},
                "broker": {"url": "mqtt://127.0.0.1:1"},
                "outbox": {"path": str(Path(tmp) / "outbox.sqlite")},
                "heartbeat_s": 3600,
            },
            source="benchmark profile",
        )
        feed = MemoryFeed(image, warmup + frames)
        try:
            runtime = build_runtime(profile, model_dir=model_dir, feed=feed, connect=False, limits=RunLimits())
        except RoleUnavailable as exc:
            return {"role": role, "error": str(exc)}
        summary = runtime.run()
        runtime.outbox.close()
    timed = feed.times[warmup:]
    fps = (len(timed) - 1) / (timed[-1] - timed[0]) if len(timed) > 1 else 0.0
    processed = max(summary.frames, 1)
    stages = {k: v / processed for k, v in runtime.meter.busy_ms.items()}
    return {
        "role": role,
        "frames": frames,
        "fps": fps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "stage_ms": stages,
        "messages": summary.messages,
        "models": [m.name for m in runtime.models],
    }


# -- parent ------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", action="append", choices=ROLES, help="role(s) to measure (default: posture)")
    parser.add_argument("--frames", type=int, default=300, help="timed frames per role")
    parser.add_argument("--warmup", type=int, default=30, help="untimed frames first")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads per model")
    parser.add_argument("--model-dir", type=Path, default=None, help="model store (default: the usual one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from edge.model_store import default_model_dir

    model_dir = args.model_dir or default_model_dir()
    if args.child:
        figures = run_child(
            args.child, args.image, frames=args.frames, warmup=args.warmup, threads=args.threads, model_dir=model_dir
        )
        print(json.dumps(figures))
        return 0

    import cv2
    from skimage import data

    rows = []
    with tempfile.TemporaryDirectory(prefix="edgescreen-bench-") as tmp:
        image = Path(tmp) / "astronaut.png"
        cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
        for role in args.role or ["posture"]:
            cmd = [sys.executable, __file__, "--child", role, "--image", str(image), "--frames", str(args.frames),
                   "--warmup", str(args.warmup), "--threads", str(args.threads),
                   "--model-dir", str(model_dir)]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                rows.append({"role": role, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"})
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    load = os.getloadavg()[0]
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, load average {load:.1f}; {WIDTH}×{HEIGHT}, "
          f"{args.frames} timed frames, ONNX Runtime CPU {args.threads} threads, tracking mode\n")  # fmt: skip
    stage_names = sorted({s for r in rows for s in r.get("stage_ms", {})})
    print("| role | fps | peak RSS MB | " + " | ".join(f"{s} ms" for s in stage_names) + " | targets |")
    print("|---|---|---|" + "---|" * len(stage_names) + "---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['role']} | – | – | " + " | ".join("–" for _ in stage_names) + f" | {r['error']} |")
            continue
        ok = "met" if r["fps"] >= TARGET_FPS and r["peak_rss_mb"] <= TARGET_RSS_MB else "NOT met"
        cells = " | ".join(f"{r['stage_ms'].get(s, 0.0):.2f}" for s in stage_names)
        print(f"| {r['role']} | {r['fps']:.1f} | {r['peak_rss_mb']:.0f} | {cells} | ≥{TARGET_FPS:.0f} fps, "
              f"≤{TARGET_RSS_MB:.0f} MB: {ok} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
