"""The office posture monitor: per-frame posture metrics → one `PostureWindow` per window with someone in view.

Per window: each metric's distribution over the frames where it was measured, the fraction of those
frames in each risk band, whether poor posture was sustained, presence time, the number of changes of
the overall risk band, and (with a trained posture model) a mean risk probability. A window in which
nobody was seen sends nothing and is counted in `absent_windows` (reported by the heartbeat).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt

from contract.hashing import sha256_file as _sha256
from contract.wire import ModelRef
from edge.backends.base import BackendConfig, create_backend
from edge.perception.types import FrameResult, Person
from edge.roles.base import EmitContext, Image, PerceptionNeeds, RoleAnalyzer, ScoreMessage
from edge.roles.common import main_person
from edge.roles.posture.config import POSTURE_METRICS, PostureConfig, PostureModelConfig
from edge.roles.posture.message import PostureWindow, WindowStats
from edge.roles.posture.metrics import FrameMetrics, compute_metrics
from edge.roles.windows import (
    BandChanges,
    FrameTimeline,
    MetricWindow,
    SustainedRun,
    WindowClock,
    band_rank,
    close_windows,
)

log = logging.getLogger(__name__)


class PostureModel:
    """A trained posture classifier run with the ONNX Runtime backend; gives P(at risk) per frame."""

    def __init__(self, config: PostureModelConfig) -> None:
        self.config = config
        backend = BackendConfig(type="onnxruntime", providers=config.providers, threads=config.threads)
        self.backend = create_backend(backend, config.path)
        spec = self.backend.inputs[0]
        self.input_name = spec.name
        self.input_shape = spec.shape
        if config.input == "metrics":
            width = spec.shape[-1] if spec.shape else None
            if isinstance(width, int) and width != len(config.metrics):
                raise ValueError(
                    f"posture model {config.path}: input {spec.name!r} takes {width} values per frame but "
                    f"model.metrics lists {len(config.metrics)}"
                )
        self.ref = ModelRef(name=_model_name(config.path), sha256=_sha256(config.path))

    def probability(self, person: Person, metrics: FrameMetrics) -> float | None:
        """P(at risk) for one frame; None when an input the model needs was not measured."""
        if self.config.input == "metrics":
            row = metrics.vector(self.config.metrics)
            if not np.isfinite(row).all():
                return None
            x: npt.NDArray[np.float32] = row[None, :]
        else:
            channels = self.input_shape[-1] if isinstance(self.input_shape[-1], int) else 3
            x = np.asarray(person.keypoints[None, :, :channels], np.float32)
        out = np.asarray(self.backend.infer({self.input_name: x})[0], np.float64).reshape(-1)
        if out.size == 1:
            p = float(out[0]) if self.config.output == "probabilities" else 1.0 / (1.0 + math.exp(-float(out[0])))
        else:
            if self.config.positive_index >= out.size:
                raise ValueError(
                    f"posture model {self.config.path}: positive_index {self.config.positive_index} but "
                    f"only {out.size} outputs"
                )
            probs = (
                out
                if self.config.output == "probabilities"
                else np.exp(out - out.max()) / np.exp(out - out.max()).sum()
            )
            p = float(probs[self.config.positive_index])
        return min(1.0, max(0.0, p)) if math.isfinite(p) else None


def _model_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem).strip("-._") or "posture-model"
    return name[:96]


class PostureAnalyzer(RoleAnalyzer):
    role = "posture"
    needs = PerceptionNeeds(pose=True)

    def __init__(self, ctx: EmitContext, config: PostureConfig | None = None) -> None:
        super().__init__(ctx)
        self.config = config or PostureConfig()
        self.clock = WindowClock(self.config.window_s)
        thresholds = self.config.thresholds
        self._metrics = {name: MetricWindow(thresholds.for_metric(name)) for name in POSTURE_METRICS}
        poor = band_rank(self.config.sustained_band)
        self._poor_rank = poor
        self._runs = {name: SustainedRun(self.config.sustained_s, self.config.max_gap_s) for name in POSTURE_METRICS}
        self._changes = BandChanges(self.config.min_change_s)
        self.model = PostureModel(self.config.model) if self.config.model is not None else None
        self._frames = 0
        self._present = 0
        self._risks: list[float] = []
        self.timeline = FrameTimeline()
        self._interval = 0.0  # running estimate of the frame interval (for presence time)

    # -- RoleAnalyzer -------------------------------------------------------------------------------------
    def process(self, frame: FrameResult, image: Image | None = None) -> list[ScoreMessage]:
        t = frame.timestamp
        if not self.timeline.accept(t):
            return []
        messages: list[ScoreMessage] = close_windows(self.clock, t, self._close)
        dt = self.timeline.dt
        if dt is not None and dt <= self.config.max_gap_s:  # a longer pause (camera lost) is no frame interval
            self._interval = dt if self._interval == 0 else 0.9 * self._interval + 0.1 * dt
        self._add(frame)
        return messages

    def flush(self) -> list[ScoreMessage]:
        if self._frames == 0 or self.clock.origin is None:
            return []
        start = self.clock.start()
        end = min(self.clock.end(), (self.timeline.last or start) + self._interval)
        message = self._close(start, max(end, start))
        self.clock.index += 1
        return [message] if message is not None else []

    # -- per frame ----------------------------------------------------------------------------------------
    def _add(self, frame: FrameResult) -> None:
        t = frame.timestamp
        self._frames += 1
        person = main_person(frame.persons)
        if person is None:
            for run in self._runs.values():
                run.update(t, None)
            return
        self._present += 1
        metrics = compute_metrics(
            person,
            min_visibility=self.config.min_visibility,
            front_view_max_deg=self.config.front_view_max_deg,
            side_view_min_deg=self.config.side_view_min_deg,
        )
        worst: int | None = None
        for name, window in self._metrics.items():
            value = metrics.values[name]
            if value is None or not math.isfinite(value):
                self._runs[name].update(t, None)
                continue
            rank = band_rank(window.add(value))
            self._runs[name].update(t, rank >= self._poor_rank)
            worst = rank if worst is None else max(worst, rank)
        self._changes.update(t, None if worst is None else str(worst))
        if self.model is not None:
            p = self.model.probability(person, metrics)
            if p is not None:
                self._risks.append(p)

    # -- per window ---------------------------------------------------------------------------------------
    def _close(self, start: float, end: float) -> PostureWindow | None:
        frames, present = self._frames, self._present
        stats = {}
        for name, window in self._metrics.items():
            dist, fractions = window.summary()
            stats[name] = WindowStats(
                mean=dist.mean, p10=dist.p10, p50=dist.p50, p90=dist.p90, valid_frames=dist.count,
                bands=fractions, sustained_risk=self._runs[name].window_flag(),
            )  # fmt: skip
            window.clear()
        changes = self._changes.take()
        risk = float(np.mean(self._risks)) if self._risks else None
        self._frames = self._present = 0
        self._risks = []
        if frames == 0:
            return None  # no frame at all in this window (camera down): the camera state reports it
        if present == 0:
            self.absent_windows += 1
            return None
        presence = min(present * self._interval, end - start) if self._interval > 0 else 0.0
        models = list(self.ctx.models)
        if self.model is not None:
            models.append(self.model.ref)
        return PostureWindow(
            device_id=self.ctx.device_id,
            site=self.ctx.site,
            seq=self.ctx.next_seq(),
            window_start=self.timeline.wall(start),
            window_end=self.timeline.wall(end),
            models=models,
            frames=frames,
            presence_s=max(0.0, presence),
            posture_changes=changes,
            metrics=stats,
            risk_score=risk,
        )
