"""The school gait-screening booth: one `GaitScreening` message per walk-through.

Per frame the main person's keypoints, world landmarks and 64 x 44 silhouette are kept in memory while a walk
is open (`gait_walk`). When the person has left (`leave_s` without anyone in view) the walk is judged
(quality outcome), and a screenable walk gets its gait cycles and asymmetry measures (`gait_measures`) and,
with a configured ScoNet-MT, class probabilities. The message is built at the frame that closed the walk, so
it is in the outbox `leave_s` plus the model's run time after the person left; then every silhouette and
keypoint track of the walk is dropped. A student code entered at the booth leaves only as an HMAC
(`edge.subject_code`).
"""

from __future__ import annotations

import logging
import math
import re
import time

import numpy as np

from contract.errors import UsageError
from contract.hashing import sha256_file as _sha256
from contract.model_card import untrained_reason
from contract.wire import ModelRef
from edge.backends.base import BackendConfig, create_backend
from edge.perception.types import FrameResult, Person
from edge.roles.base import EmitContext, Image, PerceptionNeeds, RoleAnalyzer, ScoreMessage
from edge.roles.gait.config import ALONG_DIRECTIONS, GaitConfig, GaitModelConfig
from edge.roles.gait.measures import Track, gait_cycles, gait_measures
from edge.roles.gait.message import GaitClass, GaitMeasure, GaitScreening
from edge.roles.gait.silhouette import Silhouette, model_input, silhouette_from_mask
from edge.roles.gait.skeleton import COCO_POINTS, coco_sequence, resample
from edge.roles.gait.walk import Walk, WalkDetector, WalkFrame, along_direction, assess_walk
from edge.roles.windows import FrameTimeline
from edge.subject_code import SubjectCodes

log = logging.getLogger(__name__)

GAIT_CLASSES: tuple[GaitClass, ...] = ("negative", "neutral", "positive")  # ScoNet-MT output order
NO_MODEL_LINE = (
    "gait booth: no trained gait model installed (gait.model is not set): walk-throughs are measured and "
    "published without a risk class; nobody is screened"
)


class GaitModelError(UsageError, ValueError):
    """The configured gait model cannot be used (untrained, or not a gait model's input)."""


class GaitModel:
    """An exported, trained gait model run with the ONNX Runtime backend → P(negative, neutral, positive).

    Two inputs are understood, told apart by the model's input shape: silhouettes [N, T, 64, 44] (ScoNet-MT) and
    COCO-17 keypoint sequences [N, T, 17, 3] (the skeleton gait model, edge/roles/gait/skeleton.py). A model
    whose metadata carries no model card saying it was trained is refused at load (contract/model_card.py): the
    booth never screens with untrained weights."""

    def __init__(self, config: GaitModelConfig) -> None:
        self.config = config
        if not config.path.is_file():
            raise GaitModelError(
                f"gait model {config.path} does not exist: no trained gait model is installed (install the booth's "
                "signed gait bundle with `edgescreen models install`, or train one with `edgescreen models "
                "train-device`; remove gait.model to measure walks without a risk class)"
            )
        backend = BackendConfig(type="onnxruntime", providers=config.providers, threads=config.threads)
        self.backend = create_backend(backend, config.path)
        spec = self.backend.inputs[0]
        shape = list(spec.shape)
        self.kind = "keypoints" if len(shape) == 4 and shape[2:] == [COCO_POINTS, 3] else "silhouettes"
        fixed = [(d, w) for d, w in zip(shape[2:], (64, 44), strict=False) if isinstance(d, int)]
        if len(shape) != 4 or (self.kind == "silhouettes" and any(d != w for d, w in fixed)):
            raise GaitModelError(
                f"gait model {config.path}: input {spec.name!r} has shape {spec.shape}, expected [N, T, 64, 44] "
                f"(silhouettes) or [N, T, {COCO_POINTS}, 3] (keypoints)"
            )
        reason = untrained_reason(self.backend.metadata)
        if reason is not None:
            raise GaitModelError(
                f"gait model {config.path}: {reason}; the booth never screens with untrained weights "
                "(install a trained gait model, or remove gait.model to measure walks without a risk class)"
            )
        self.input_name = spec.name
        self.frames = spec.shape[1] if isinstance(spec.shape[1], int) else config.max_frames
        # One run at load: ONNX Runtime sizes its buffers on the first call, which would otherwise land on the
        # first walk-through's result latency.
        tail = (COCO_POINTS, 3) if self.kind == "keypoints" else (64, 44)
        self.backend.infer({spec.name: np.zeros((1, self.frames, *tail), np.float32)})
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", config.path.stem).strip("-._") or "gait-model"
        self.ref = ModelRef(name=name[:96], sha256=_sha256(config.path))

    def probabilities(
        self, silhouettes: list[Silhouette], keypoints: list[np.ndarray | None], min_visibility: float
    ) -> dict[GaitClass, float] | None:
        if self.kind == "keypoints":
            x = resample(coco_sequence(keypoints, min_visibility), self.frames)
        elif silhouettes:
            x = model_input(silhouettes, self.frames)
        else:
            return None
        out = np.asarray(self.backend.infer({self.input_name: x})[0], np.float64).reshape(-1)
        if out.size != len(GAIT_CLASSES):
            raise ValueError(f"gait model {self.config.path}: {out.size} outputs, expected {len(GAIT_CLASSES)}")
        if self.config.output == "logits":
            out = np.exp(out - out.max())
            out = out / out.sum()
        if not np.isfinite(out).all():
            return None
        return {c: float(min(1.0, max(0.0, p))) for c, p in zip(GAIT_CLASSES, out, strict=True)}


def main_person(persons: list[Person], min_score: float) -> tuple[Person | None, int]:
    """The largest person scoring at least `min_score`, and how many did."""
    people = [p for p in persons if p.score >= min_score]
    if not people:
        return None, 0
    return max(people, key=lambda p: (p.bbox[2] - p.bbox[0]) * (p.bbox[3] - p.bbox[1])), len(people)


class GaitAnalyzer(RoleAnalyzer):
    role = "gait"
    needs = PerceptionNeeds(pose=True, segmentation=True)

    def __init__(self, ctx: EmitContext, config: GaitConfig | None = None) -> None:
        super().__init__(ctx)
        self.config = config or GaitConfig()
        self.detector = WalkDetector(self.config)
        self.model = GaitModel(self.config.model) if self.config.model is not None else None
        if self.model is None:
            log.warning(NO_MODEL_LINE)
        self.codes: SubjectCodes | None = None
        self.timeline = FrameTimeline()
        self.walks = 0

    @property
    def needs_site_key(self) -> bool:
        """True when student codes are read, so the runtime must hand over the site's HMAC secret."""
        return self.config.subject_codes.input is not None

    def use_site_key(self, secret: bytes) -> None:
        """Start reading student codes (the configured input), hashed with the site secret."""
        cfg = self.config.subject_codes
        self.codes = SubjectCodes(secret, valid_s=cfg.valid_s, max_length=cfg.max_length)
        if cfg.input is not None:
            self.codes.start_reader(cfg.input)

    # -- RoleAnalyzer -------------------------------------------------------------------------------------
    def process(self, frame: FrameResult, image: Image | None = None) -> list[ScoreMessage]:
        t = frame.timestamp
        if not self.timeline.accept(t):
            return []
        person, people = main_person(frame.persons, self.config.min_score)
        record = WalkFrame(t=t, people=people)
        if person is not None:
            x0, y0, x1, y1 = person.bbox
            record.cx = float((x0 + x1) / 2 / max(frame.width, 1))
            record.height = float((y1 - y0) / max(frame.height, 1))
            record.keypoints = np.array(person.keypoints, np.float32)
            record.world = np.array(person.world, np.float32) if person.world is not None else None
            record.silhouette = silhouette_from_mask(person.mask)
        walk = self.detector.update(record)
        return [self._screen(walk)] if walk is not None else []

    def flush(self) -> list[ScoreMessage]:
        walk = self.detector.flush()
        return [self._screen(walk)] if walk is not None else []

    # -- per walk -----------------------------------------------------------------------------------------
    def _screen(self, walk: Walk) -> GaitScreening:
        started = time.perf_counter()
        cfg = self.config
        present = walk.present
        try:
            track = Track.from_frames(present, cfg.min_visibility)
            silhouettes = [f.silhouette for f in present if f.silhouette is not None]
            usable = int(sum(1 for f, ok in zip(present, track.valid, strict=True) if ok and f.silhouette is not None))
            along = cfg.direction in ALONG_DIRECTIONS
            net = along_direction(present, cfg.min_approach)[0] if along else _net_direction(present)
            cycles, signal = gait_cycles(track, net, along)
            quality = assess_walk(walk, cfg, len(cycles), usable)
            measures: dict[str, GaitMeasure] = {}
            probabilities = None
            if quality.outcome == "screened":
                for name, (value, n) in gait_measures(track, signal, cycles, along).items():
                    ok = value is not None and math.isfinite(value)
                    measures[name] = GaitMeasure(value=value if ok else None, cycles=n if ok else 0)
                if self.model is not None:
                    keypoints = [f.keypoints for f in present]
                    probabilities = self.model.probabilities(silhouettes, keypoints, cfg.min_visibility)
            counts = {**quality.counts, "silhouettes": float(len(silhouettes))}
            first, last, n_frames = walk.first_seen, walk.last_seen, len(walk.frames)
        finally:
            walk.drop()  # silhouettes and keypoint tracks end here, whatever happened
        subject = None
        if self.codes is not None:
            subject = self.codes.current()
            if subject is not None and quality.outcome == "screened":
                self.codes.consume()
        predicted: GaitClass | None = None
        if probabilities:
            best = int(np.argmax([probabilities[c] for c in GAIT_CLASSES]))
            predicted = GAIT_CLASSES[best]
        models = list(self.ctx.models)
        if self.model is not None:
            models.append(self.model.ref)
        self.walks += 1
        message = GaitScreening(
            device_id=self.ctx.device_id,
            site=self.ctx.site,
            seq=self.ctx.next_seq(),
            window_start=self.timeline.wall(first),
            window_end=self.timeline.wall(last),
            models=models,
            outcome=quality.outcome,
            subject=subject,
            probabilities=probabilities,
            predicted=predicted,
            measures=measures,
            quality=counts,
            frames=n_frames,
        )
        log.info(
            "walk-through %d: %s, %d cycles, %.0f ms to build, closed %.2f s after the person left",
            self.walks, quality.outcome, int(counts["gait_cycles"]), (time.perf_counter() - started) * 1e3,
            walk.closed_at - last,
        )  # fmt: skip
        return message


def _net_direction(frames: list[WalkFrame]) -> int:
    xs = [f.cx for f in frames if f.cx is not None]
    if len(xs) < 2:
        return 0
    net = float(np.median(xs[-3:]) - np.median(xs[:3]))
    return 0 if net == 0 else (1 if net > 0 else -1)
