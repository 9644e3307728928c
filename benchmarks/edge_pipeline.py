"""Whole-runtime speed and memory: frames per second and peak RSS of the device runtime at 640×480.

Each role runs in a fresh child process (so peak RSS is the runtime's own, not this script's): the
real `EdgeRuntime` assembled by `build_runtime` from a profile — perception models loaded and warmed,
the role's analyzer, the durable outbox — fed 640×480 frames of a real photo (skimage's astronaut)
moved and rotated a little every frame, as fast as the runtime takes them. No broker: delivery runs
in its own thread and costs nothing per frame. Per-stage figures are ms per processed frame.
Each role runs with the perception and role settings of its shipped profile (firmware_config/profiles/:
thread count, people tracked, census), on the CPU provider.

For the gait booth it also measures how long after a person leaves the screening message is committed:
a synthetic screening walk-through (training/synth/walkthrough.py, positive class) goes through the gait
analyzer with a ScoNet-MT model (`--gait-checkpoint`, else freshly initialised weights: the run time does
not depend on the weights); latency = the wait for `gait.leave_s` at the camera's frame rate + one
detector-only frame (nobody tracked) + the analyzer's work on the closing frame (measures and model).

Targets (2 CPU cores, full-range pose model, tracking mode): posture ≥ 30 fps and peak RSS ≤ 400 MB, gait
booth ≥ 25 fps and result ≤ 1 s after the person left, head-pose station ≥ 30 fps.
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
PROFILES = {
    "posture": ROOT / "firmware_config/profiles/office-posture.yaml",
    "gait": ROOT / "firmware_config/profiles/gait-booth.yaml",
    "headpose": ROOT / "firmware_config/profiles/head-pose-station.yaml",
}
TARGET_FPS = {"posture": 30.0, "gait": 25.0, "headpose": 30.0}
TARGET_RSS_MB = 400.0
TARGET_GAIT_RESULT_S = 1.0


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
        from edge.grabber import CameraHealth

        return CameraHealth(state="ended" if self.finished else "open")

    def stop(self) -> None:
        pass


def shipped_settings(role: str, threads: int | None) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The shipped profile's perception and role sections, on the CPU provider; (perception, role, threads).

    Device-only parts stay out: TensorRT (no GPU here), the gait model (measured separately) and the
    subject-code reader (it would read this script's stdin).
    """
    import yaml

    shipped = yaml.safe_load(PROFILES[role].read_text(encoding="utf-8"))
    perception = dict(shipped.get("perception") or {})
    backend = perception.get("backend") or {}
    used_threads = threads or int(backend.get("threads", 2))
    perception["backend"] = {"type": "onnxruntime", "providers": ["cpu"], "threads": used_threads}
    role_settings = dict(shipped.get(role) or {})
    role_settings.pop("model", None)
    role_settings.pop("subject_codes", None)
    return perception, role_settings, used_threads


def run_child(
    role: str, image: Path, *, frames: int, warmup: int, threads: int | None, model_dir: Path,
    gait_checkpoint: Path | None,
) -> dict[str, Any]:  # fmt: skip
    from edge.assembly import build_runtime
    from edge.config import validate_profile
    from edge.frame_loop import RunLimits
    from edge.roles.registry import RoleUnavailable

    perception, role_settings, used_threads = shipped_settings(role, threads)
    with tempfile.TemporaryDirectory(prefix="edgescreen-bench-") as tmp:
        document: dict[str, Any] = {
            "device": {"site": "bench", "device_id": "bench-1"},
            "role": role,
            "camera": {"source": "memory", "width": WIDTH, "height": HEIGHT},
            "perception": perception,
            "broker": {"url": "mqtt://127.0.0.1:1"},
            "outbox": {"path": str(Path(tmp) / "outbox.sqlite")},
            "heartbeat_s": 3600,
        }
        if role_settings:
            document[role] = role_settings
        profile = validate_profile(document, source=f"benchmark profile from {PROFILES[role].name}")
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
    figures: dict[str, Any] = {
        "role": role,
        "frames": frames,
        "threads": used_threads,
        "max_persons": profile.perception.max_persons,
        "fps": fps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "stage_ms": stages,
        "messages": summary.messages,
        "models": [m.name for m in runtime.models],
    }
    if role == "gait":
        figures["gait_result"] = gait_result_latency(
            role_settings, threads=used_threads, detector_ms=detector_only_ms(profile, model_dir),
            checkpoint=gait_checkpoint,
        )  # fmt: skip
    return figures


def detector_only_ms(profile: Any, model_dir: Path, runs: int = 20) -> float:
    """Median ms of perception on a frame with nobody in it (tracking lost: the detector runs every frame)."""
    import numpy as np

    from edge.assembly import build_pipeline

    pipeline, _ = build_pipeline(profile, model_dir, needs_face=False, needs_segmentation=True)
    empty = np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)
    times = []
    for i in range(runs + 3):
        t0 = time.perf_counter()
        pipeline.process(empty, timestamp=i / 30.0)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times[3:]))


def gait_result_latency(
    role_settings: dict[str, Any], *, threads: int, detector_ms: float, checkpoint: Path | None
) -> dict[str, Any]:
    """Seconds from the last frame with the person to the committed screening, for a screened walk."""
    from quantization import sconet_fp32  # the sibling benchmark script (this folder is on sys.path)

    from edge.roles.base import EmitContext
    from edge.roles.gait.analyzer import GaitAnalyzer
    from edge.roles.gait.config import GaitConfig
    from training.synth.walkthrough import render_walkthrough

    with tempfile.TemporaryDirectory(prefix="edgescreen-bench-gait-") as tmp:
        model_path, weights = sconet_fp32(Path(tmp), checkpoint)
        config = GaitConfig.model_validate(role_settings | {"model": {"path": str(model_path), "threads": threads}})
        analyzer = GaitAnalyzer(EmitContext(site="bench", device_id="bench-1"), config)
        frames, label = render_walkthrough("positive", seed=0, index=0)
        last_person = max(i for i, f in enumerate(frames) if f.persons)
        closing, messages, compute_s = None, [], 0.0
        for frame in frames:
            t0 = time.perf_counter()
            messages = analyzer.process(frame)
            compute_s = time.perf_counter() - t0
            if messages:
                closing = frame
                break
        if closing is None:
            return {"error": "the synthetic walk-through gave no message"}
    message = messages[0]
    wait_s = closing.timestamp - frames[last_person].timestamp
    detector_s = detector_ms / 1e3
    return {
        "outcome": getattr(message, "outcome", None),
        "weights": weights,
        "wait_s": wait_s,
        "detector_s": detector_s,
        "compute_s": compute_s,
        "latency_s": wait_s + detector_s + compute_s,
        "frames_in_walk": label.get("frames_with_person"),
    }


# -- parent ------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", action="append", choices=ROLES, help="role(s) to measure (default: posture)")
    parser.add_argument("--frames", type=int, default=300, help="timed frames per role")
    parser.add_argument("--warmup", type=int, default=30, help="untimed frames first")
    parser.add_argument(
        "--threads", type=int, default=None, help="ONNX Runtime threads per model (default: the profile's)"
    )
    parser.add_argument(
        "--gait-checkpoint",
        type=Path,
        default=None,
        help="ScoNet-MT checkpoint for the gait result latency (default: freshly initialised weights)",
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="model store (default: the usual one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from edge.model_store import default_model_dir

    model_dir = args.model_dir or default_model_dir()
    if args.child:
        figures = run_child(
            args.child, args.image, frames=args.frames, warmup=args.warmup, threads=args.threads, model_dir=model_dir,
            gait_checkpoint=args.gait_checkpoint,
        )  # fmt: skip
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
                   "--warmup", str(args.warmup), "--model-dir", str(model_dir)]  # fmt: skip
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            if args.gait_checkpoint:
                cmd += ["--gait-checkpoint", str(args.gait_checkpoint)]
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
          f"{args.frames} timed frames, ONNX Runtime CPU, shipped profile settings, tracking mode\n")  # fmt: skip
    stage_names = sorted({s for r in rows for s in r.get("stage_ms", {})})
    print("| role | threads | people | fps | peak RSS MB | " + " | ".join(f"{s} ms" for s in stage_names)
          + " | targets |")  # fmt: skip
    print("|---|---|---|---|---|" + "---|" * len(stage_names) + "---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['role']} | – | – | – | – | " + " | ".join("–" for _ in stage_names) + f" | {r['error']} |")
            continue
        target = TARGET_FPS[r["role"]]
        ok = r["fps"] >= target and r["peak_rss_mb"] <= TARGET_RSS_MB
        cells = " | ".join(f"{r['stage_ms'].get(s, 0.0):.2f}" for s in stage_names)
        print(f"| {r['role']} | {r['threads']} | {r['max_persons']} | {r['fps']:.1f} | {r['peak_rss_mb']:.0f} | "
              f"{cells} | ≥{target:.0f} fps, ≤{TARGET_RSS_MB:.0f} MB: {'met' if ok else 'NOT met'} |")  # fmt: skip
    for r in rows:
        g = r.get("gait_result")
        if not g:
            continue
        if "error" in g:
            print(f"\ngait result latency: {g['error']}")
            continue
        ok = g["latency_s"] <= TARGET_GAIT_RESULT_S
        print(f"\ngait result after the person left: {g['latency_s']:.2f} s = wait for leave_s {g['wait_s']:.2f} s "
              f"+ detector-only frame {g['detector_s'] * 1e3:.0f} ms + closing frame (measures + ScoNet-MT, "
              f"{g['weights']}) {g['compute_s'] * 1e3:.0f} ms; outcome {g['outcome']}; "
              f"target ≤ {TARGET_GAIT_RESULT_S:.0f} s: {'met' if ok else 'NOT met'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
