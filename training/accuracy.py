"""Avatar clips through the real device runtime: rendered frames go in through the camera's place (a `FrameFeed`),
real perception on ONNX Runtime and the role's analyzer turn them into wire messages, and each message is matched
with the clip it came from.

A clip is a short run of frames of one subject (a held pose, a walk) plus the truth of every frame. Clips follow
one another on the frame timestamps, each in its own slot of `slot_s` seconds, so that a window role (posture,
head pose) with `window_s = slot_s` closes exactly one window per clip; each clip ends with a few frames of
nobody in view (the empty scene), so perception loses the track and the next subject starts fresh, and a gait
walk-through closes inside its clip. Frames are rendered one clip at a time, and only in memory.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from contract.wire import WireModel

log = logging.getLogger(__name__)

Truth = dict[str, float | None]
EMPTY_TAIL = 3  # frames of nobody at the end of a held clip: perception drops the track


@dataclass
class RenderedClip:
    """Frames (BGR uint8, one camera), their truth, and the number of trailing frames with nobody in view."""

    frames: list[np.ndarray]
    truth: list[Truth]
    fps: float
    empty_tail: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # per-clip truth that is not per frame (a walk's)


@dataclass(frozen=True)
class ClipSpec:
    """A clip to render when the feed reaches it, and what it stands for (subject, view, groups...)."""

    key: str
    meta: dict[str, Any]
    render: Callable[[], RenderedClip]


@dataclass
class ClipResult:
    spec: ClipSpec
    messages: list[WireModel]
    truth: list[Truth]
    extra: dict[str, Any]
    frames: int


class ClipFeed:
    """A `FrameFeed` (edge/result_sources.py) over rendered clips: clip c's frames carry timestamps
    c · slot_s + i / fps. Renders each clip when the loop reaches it."""

    def __init__(self, clips: Sequence[ClipSpec], slot_s: float | None) -> None:
        self.clips = list(clips)
        self.slot_s = slot_s
        self.index = -1  # clip being fed
        self.rendered: RenderedClip | None = None
        self.results: list[ClipResult] = []
        self._i = 0
        self._t0 = 0.0

    def start(self) -> None:
        pass

    def _next_clip(self) -> bool:
        self.index += 1
        if self.index >= len(self.clips):
            self.rendered = None
            return False
        spec = self.clips[self.index]
        if self.rendered is not None and self.slot_s is None:
            self._t0 += len(self.rendered.frames) / self.rendered.fps
        self.rendered = spec.render()
        clip_s = len(self.rendered.frames) / self.rendered.fps
        if self.slot_s is not None:
            if clip_s >= self.slot_s:
                raise ValueError(f"clip {spec.key}: {clip_s:.2f} s of frames does not fit a {self.slot_s} s slot")
            self._t0 = self.index * self.slot_s
        self.results.append(ClipResult(spec, [], self.rendered.truth, self.rendered.extra, len(self.rendered.frames)))
        self._i = 0
        return True

    def get(self, timeout: float) -> tuple[object, float] | None:
        while self.rendered is None or self._i >= len(self.rendered.frames):
            if self.index >= len(self.clips) or not self._next_clip():
                return None
        assert self.rendered is not None
        frame = self.rendered.frames[self._i]
        t = self._t0 + self._i / self.rendered.fps
        self._i += 1
        return frame, t

    @property
    def finished(self) -> bool:
        return self.index >= len(self.clips)

    def health(self) -> Any:
        from edge.grabber import CameraHealth

        return CameraHealth(state="ended" if self.finished else "open")

    def stop(self) -> None:
        pass

    def attribute(self, message: WireModel, *, closes_on_next: bool) -> None:
        """File a message under the clip it belongs to. A window closes on the first frame of the next clip (or
        at the end of input); a walk-through closes inside its own clip."""
        if not self.results:
            return
        i = len(self.results) - 1
        if closes_on_next and not self.finished and self._i <= 1:
            i -= 1
        if i >= 0:
            self.results[i].messages.append(message)


def device_profile(role: str, role_settings: dict[str, Any], perception: dict[str, Any], outbox: Path) -> Any:
    from edge.config import validate_profile

    document: dict[str, Any] = {
        "device": {"site": "accuracy", "device_id": "avatar-1"},
        "role": role,
        "camera": {"source": "memory", "width": 640, "height": 480},
        "perception": perception,
        "broker": {"url": "mqtt://127.0.0.1:1"},
        "outbox": {"path": str(outbox)},
        "heartbeat_s": 3600,
        role: role_settings,
    }
    return validate_profile(document, source="accuracy benchmark profile")


def run_clips(
    role: str,
    clips: Sequence[ClipSpec],
    *,
    model_dir: Path,
    role_settings: dict[str, Any] | None = None,
    perception: dict[str, Any] | None = None,
    slot_s: float | None = None,
) -> list[ClipResult]:
    """Feed the clips through `edge.assembly.build_runtime` (real perception, the role's analyzer, the outbox;
    no broker) and return each clip with the messages it produced."""
    from edge.assembly import build_runtime
    from edge.frame_loop import RunLimits

    settings = dict(role_settings or {})
    if slot_s is not None and role in ("posture", "headpose"):
        settings["window_s"] = slot_s
    percept = perception or {"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 2}}
    feed = ClipFeed(clips, slot_s)
    with tempfile.TemporaryDirectory(prefix="edgescreen-accuracy-") as tmp:
        profile = device_profile(role, settings, percept, Path(tmp) / "outbox.sqlite")
        runtime = build_runtime(profile, model_dir=model_dir, feed=feed, connect=False, limits=RunLimits())
        runtime.on_message = lambda m: feed.attribute(m, closes_on_next=role != "gait")
        summary = runtime.run()
        runtime.outbox.close()
    log.info("%s: %d frames, %d messages (%s)", role, summary.frames, summary.messages, summary.reason)
    return feed.results


def aggregate(truth: Sequence[Truth], frames: slice | None = None) -> dict[str, float]:
    """Mean of each truth value over the frames where it is defined (NaN where it never is)."""
    rows = list(truth)[frames] if frames is not None else list(truth)
    keys = {k for row in rows for k in row}
    out = {}
    for k in sorted(keys):
        values = [row[k] for row in rows if row.get(k) is not None]
        out[k] = float(np.mean(values)) if values else math.nan  # type: ignore[arg-type]
    return out


class Studio:
    """One renderer per process, and the rendering of held poses and walks into `RenderedClip`s."""

    def __init__(self, width: int = 640, height: int = 480) -> None:
        from training.synth.avatar.render import AvatarRenderer

        self.renderer = AvatarRenderer(width, height)

    def _truth(self, frame: Any, mesh: Any, points: Any, camera: Any) -> dict[str, float | None]:
        from training.synth.avatar.points import visibility_tolerance
        from training.synth.avatar.truth import frame_truth

        tol = visibility_tolerance(mesh, points)[:33]
        visible = frame.project(points.blazepose, tolerance_m=tol)[:, 2]
        return frame_truth(points, camera, visible)

    def held(
        self,
        mesh: Any,
        points: Any,
        scene: Any,
        camera: Any,
        *,
        look: Any,
        rng: np.random.Generator,
        frames: int,
        fps: float,
    ) -> RenderedClip:
        """A held pose: one render, each frame with its own sensor noise, then the empty scene."""
        import cv2

        from training.synth.avatar.imaging import apply_imaging, sample_imaging

        frame = self.renderer.render(mesh, scene, camera, look)
        bare = replace(scene, props=())
        unhidden = self.renderer.render(mesh, bare, camera, look).silhouette
        hidden = 1.0 - float(np.count_nonzero(frame.silhouette)) / max(float(np.count_nonzero(unhidden)), 1.0)
        empty = self.renderer.render(None, scene, camera, look)
        imaging = sample_imaging(rng)
        truth = self._truth(frame, mesh, points, camera)
        out = [cv2.cvtColor(apply_imaging(frame.rgb, imaging, rng), cv2.COLOR_RGB2BGR) for _ in range(frames)]
        out += [cv2.cvtColor(apply_imaging(empty.rgb, imaging, rng), cv2.COLOR_RGB2BGR) for _ in range(EMPTY_TAIL)]
        truths = [truth] * frames + [{}] * EMPTY_TAIL
        return RenderedClip(out, truths, fps, EMPTY_TAIL, extra={"hidden_fraction": hidden})

    def moving(
        self, bodies: list[Any], scene: Any, camera: Any, *, look: Any, rng: np.random.Generator, fps: float
    ) -> tuple[RenderedClip, list[Any]]:
        """A moving body (one mesh per frame; None = nobody in view) and its truth points per frame."""
        import cv2

        from training.synth.avatar.imaging import apply_imaging, sample_imaging

        imaging = sample_imaging(rng)
        frames: list[np.ndarray] = []
        truths: list[Truth] = []
        points: list[Any] = []
        for body in bodies:
            if body is None:
                frame = self.renderer.render(None, scene, camera, look)
                truths.append({})
                points.append(None)
            else:
                mesh, pts = body
                frame = self.renderer.render(mesh, scene, camera, look)
                truths.append(self._truth(frame, mesh, pts, camera))
                points.append(pts)
            frames.append(cv2.cvtColor(apply_imaging(frame.rgb, imaging, rng), cv2.COLOR_RGB2BGR))
        return RenderedClip(frames, truths, fps), points
