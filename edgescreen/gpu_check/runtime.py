"""Step `runtime`: the real device runtime, `edgescreen edge run`, on the TensorRT backend, one clip per role.

Each role runs with its shipped profile (firmware_config/profiles/) changed only where a test bench must:
the camera is a clip read as fast as the runtime takes it; the backend is TensorRT (FP16, no fallback), its
engines built first by `edgescreen engine build --profile` (reused from the engine steps' cache); the broker
is an address where nobody listens (delivery runs in its own thread and costs nothing per frame);
heartbeats every second. fps is the median of the heartbeats' `processed` rate after the first; GPU memory
is the most `nvidia-smi` saw for the process (or, where it lists no processes, the rise of the GPU's used
memory over the run); peak RSS is the process's VmHWM. A Jetson's nvidia-smi (if any) does not list
per-process memory: there peak RSS is the figure, since its GPU shares system memory.
"""

from __future__ import annotations

import ast
import logging
import math
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
PROFILES = {
    "posture": ROOT / "firmware_config/profiles/office-posture.yaml",
    "gait": ROOT / "firmware_config/profiles/gait-booth.yaml",
    "headpose": ROOT / "firmware_config/profiles/head-pose-station.yaml",
}
CLIP_SIZE = (640, 480)
CLIP_FPS = 30.0
HEARTBEAT = re.compile(r"heartbeat: fps=(\{[^}]*\})")
STOPPED = re.compile(r"stopped \([^)]*\): (\d+) frames")


def make_clip(role: str, path: Path, seconds: float) -> int:
    """A clip of the role's scene from a real photo: a worker at a desk and a face at a station sway and tilt;
    at the booth the photo crosses the frame left to right, again and again. Returns the frame count."""
    from edgescreen.clips import _writer, astronaut_bgr, make_posture_clip, posture_frame

    if role != "gait":
        return make_posture_clip(path, seconds=seconds, fps=CLIP_FPS, size=CLIP_SIZE).frames
    width, height = CLIP_SIZE
    photo = astronaut_bgr(int(height * 0.8))
    frames = max(1, round(seconds * CLIP_FPS))
    crossing = int(4 * CLIP_FPS)  # 4 s a walk-through
    writer = _writer(path, CLIP_FPS, CLIP_SIZE)
    try:
        for i in range(frames):
            x = -width + (2 * width) * (i % crossing) / crossing
            writer.write(posture_frame(photo, CLIP_SIZE, 0.0, (x, 0.0)))
    finally:
        writer.release()
    return frames


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def bench_profile(role: str, clip: Path, work: Path, backend: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PROFILES[role].read_text())
    data["camera"].update(source=str(clip), realtime=False)
    data["perception"]["backend"] = backend
    data["broker"] = {"url": f"mqtt://127.0.0.1:{_free_port()}", "keepalive_s": 5}  # nobody listens there
    data["outbox"] = {"path": str(work / f"{role}-outbox.sqlite"), "drain_on_stop_s": 0}
    data["heartbeat_s"] = 1
    return data


class MemoryWatch:
    """Peak GPU memory of one process (nvidia-smi) and its peak RSS (/proc), sampled while it runs."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.pid = pid
        self.every_s = every_s
        self.smi = shutil.which("nvidia-smi")
        self.process_mb: float | None = None
        self.device_base_mb = self._device_used()
        self.device_peak_mb: float | None = self.device_base_mb
        self.rss_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-watch", daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _query(self, *args: str) -> list[str]:
        if self.smi is None:
            return []
        try:
            out = subprocess.run([self.smi, *args], capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return []
        return out.stdout.splitlines() if out.returncode == 0 else []

    def _device_used(self) -> float | None:
        rows = self._query("--query-gpu=memory.used", "--format=csv,noheader,nounits")
        try:
            return float(rows[0]) if rows else None
        except ValueError:
            return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            for row in self._query("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"):
                parts = [p.strip() for p in row.split(",")]
                if len(parts) == 2 and parts[0] == str(self.pid):
                    try:
                        self.process_mb = max(self.process_mb or 0.0, float(parts[1]))
                    except ValueError:
                        pass
            used = self._device_used()
            if used is not None:
                self.device_peak_mb = max(self.device_peak_mb or 0.0, used)
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.rss_mb = max(self.rss_mb or 0.0, int(line.split()[1]) / 1024)
            except (OSError, ValueError, IndexError):
                pass
            self._stop.wait(self.every_s)

    def gpu(self) -> tuple[float | None, str]:
        if self.process_mb is not None:
            return self.process_mb, "nvidia-smi, this process"
        if self.device_peak_mb is not None and self.device_base_mb is not None:
            return self.device_peak_mb - self.device_base_mb, "nvidia-smi, rise of the GPU's used memory"
        return None, "not available (no nvidia-smi figures here; see peak RSS)"


def heartbeat_fps(log_text: str) -> list[float]:
    rates = []
    for match in HEARTBEAT.finditer(log_text):
        try:
            fps = ast.literal_eval(match.group(1))  # a dict of numbers, as the runtime logs it
        except (ValueError, SyntaxError):
            continue
        if isinstance(fps, dict) and isinstance(fps.get("processed"), int | float):
            rates.append(float(fps["processed"]))
    return rates


def edge_run(
    role: str,
    *,
    work: str,
    model_dir: str,
    cache: str,
    seconds: float = 20.0,
    max_duration_s: float = 40.0,
    backend: str = "tensorrt",
    precision: str = "fp16",
) -> dict[str, Any]:
    """Run `edgescreen edge run` for `role` on its clip and measure it."""
    if role not in PROFILES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(PROFILES)}")
    folder = Path(work) / "runtime"
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / f"{role}.avi"
    frames = make_clip(role, clip, seconds)
    if backend == "tensorrt":
        settings: dict[str, Any] = {"type": "tensorrt", "precision": precision, "engine_cache": cache,
                                    "allow_fallback": False}  # fmt: skip
    else:
        settings = {"type": backend, "providers": ["cpu"], "threads": 2}
    profile = folder / f"{role}.yaml"
    profile.write_text(yaml.safe_dump(bench_profile(role, clip, folder, settings)))
    credentials = folder / "credentials"
    credentials.mkdir(exist_ok=True)
    (credentials / "site-secret").write_bytes(secrets.token_bytes(32))  # the booth's pseudonym key, for this run
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(credentials), "EDGESCREEN_MODEL_DIR": model_dir}
    engines_s = None
    if backend == "tensorrt":
        # the engines this profile looks up, as the device's one-shot build service makes them (reused from
        # the cache when the engine steps built them already)
        t0 = time.monotonic()
        build = subprocess.run(
            [sys.executable, "-m", "edgescreen", "engine", "build", "--profile", str(profile)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        engines_s = round(time.monotonic() - t0, 1)
        if build.returncode != 0:
            # it says one line per model that failed, then the sum: keep the first and the sum
            said = [line.strip() for line in build.stderr.splitlines() if line.strip()]
            why = "; ".join(dict.fromkeys(said[:1] + said[-1:]))
            raise RuntimeError(f"engine build --profile exited with {build.returncode}: {why}")
    cmd = [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(profile), "--model-dir", model_dir,
           "--duration", str(max_duration_s)]  # fmt: skip
    log_path = folder / f"{role}.log"
    started = time.monotonic()
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
        with MemoryWatch(proc.pid) as watch:
            code = proc.wait()
    wall = time.monotonic() - started
    text = log_path.read_text(errors="replace")
    if code != 0:
        lines = [line for line in text.splitlines() if line.strip()]
        raise RuntimeError(f"edge run exited with {code}: {lines[-1][:300] if lines else 'no output'}")
    rates = heartbeat_fps(text)
    steady = rates[1:] if len(rates) >= 3 else rates
    stopped = STOPPED.search(text)
    gpu_mb, gpu_source = watch.gpu()
    return {
        "role": role,
        "backend": f"{backend} {precision}" if backend == "tensorrt" else backend,
        "fps": round(statistics.median(steady), 1) if steady else None,
        "fps_heartbeats": rates,
        "frames": int(stopped.group(1)) if stopped else None,
        "clip_frames": frames,
        "gpu_mb": None if gpu_mb is None or math.isnan(gpu_mb) else round(gpu_mb, 1),
        "gpu_memory_source": gpu_source,
        "peak_rss_mb": None if watch.rss_mb is None else round(watch.rss_mb, 1),
        "wall_s": round(wall, 1),
        "engines_s": engines_s,
        "log": str(log_path),
    }
