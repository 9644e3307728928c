"""The perception pipeline: pose detector → pose landmarks (+ segmentation) → face → head pose, per frame.

Each tracked person's ROI for the next frame comes from this frame's auxiliary landmarks (as MediaPipe's
pose graph does), and a track ends when the landmark model's pose flag drops below the threshold. The
detector runs when nobody is tracked or a track was just lost; while some but fewer than `max_persons`
people are tracked it also runs every `census_every` frames (the census), so a newcomer is taken up
without paying for a detector run on every frame.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contract.landmarks import NUM_LANDMARKS, Landmark
from contract.wire import ModelRef
from edge.backends.base import Backend, BackendConfig, BackendError, create_backend
from edge.model_store import ModelStore, ModelStoreError, file_sha256
from edge.perception.face_detector import FaceDetector
from edge.perception.face_landmarker import FaceLandmarker, FaceLandmarks
from edge.perception.head_pose import HeadPoseEstimator
from edge.perception.pose_detector import PixelBox, PoseDetector, detection_to_roi
from edge.perception.pose_landmarker import PoseLandmarker, PoseLandmarks, roi_from_auxiliary
from edge.perception.roi import RotatedRect, rect_from_box
from edge.perception.smoothing import LandmarkSmoother
from edge.perception.types import FrameResult, Person

log = logging.getLogger(__name__)

BackendFactory = Callable[[str], Backend]  # model name → loaded backend
# FaceLandmarksFromPoseToRecropRoi: box of the pose's face points, eye line 5 → 2 rotated to 0°, ×3.
HEAD_REGION_SCALE = 3.0
_FACE_POINTS = slice(Landmark.NOSE, Landmark.MOUTH_RIGHT + 1)
FACE_MIN_VISIBILITY = 0.5  # at least one of the pose's face points must be this visible to look for a face


class SmoothingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="smooth keypoints over time (one-euro filter); off for stills")
    min_cutoff: float = Field(default=0.1, gt=0, description="one-euro minimum cutoff (Hz) for the 33 keypoints")
    beta: float = Field(default=40.0, ge=0, description="one-euro speed coefficient for the 33 keypoints")
    derivative_cutoff: float = Field(default=1.0, gt=0, description="one-euro cutoff (Hz) of the speed estimate")
    roi_min_cutoff: float = Field(default=0.01, gt=0, description="one-euro minimum cutoff for the tracking points")
    roi_beta: float = Field(default=1.0, ge=0, description="one-euro speed coefficient for the tracking points")
    visibility_alpha: float = Field(
        default=0.1, gt=0, le=1, description="low-pass weight of the newest visibility (1 = no smoothing)"
    )


class PerceptionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: BackendConfig = Field(default_factory=BackendConfig, description="runtime that runs the models")
    pose: bool = Field(default=True, description="run the pose detector and landmark model")
    segmentation: bool = Field(default=False, description="return each person's segmentation mask")
    face: bool = Field(default=True, description="run face detection, face landmarks and head pose")
    max_persons: int = Field(default=1, ge=1, le=8, description="people tracked at once")
    tracking: bool = Field(
        default=True, description="find each person from the previous frame's landmarks, skipping the detector"
    )
    census_every: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="while some but fewer than max_persons people are tracked, run the detector every this many "
        "frames to take up newcomers (1: every frame; 0: only when nobody is tracked or a track is lost)",
    )
    detection_regions: list[tuple[float, float, float, float]] = Field(
        default_factory=list,
        max_length=4,
        description="parts of the frame (x0, y0, x1, y1, fractions of its width and height) the pose detector also "
        "searches, magnified to its input, whenever it runs: where people appear too small to be found in the whole "
        "frame, e.g. the far end of a corridor seen by a booth camera at its end (each costs one more detector run)",
    )
    detection_min_score: float = Field(default=0.5, ge=0, le=1, description="pose detector score threshold")
    detection_iou: float = Field(default=0.3, gt=0, le=1, description="pose detector non-max suppression IoU")
    pose_presence_threshold: float = Field(
        default=0.5, ge=0, le=1, description="pose flag below which a person is considered lost"
    )
    face_min_score: float = Field(default=0.5, ge=0, le=1, description="face detector score threshold")
    face_presence_threshold: float = Field(default=0.5, ge=0, le=1, description="face flag threshold")
    smoothing: SmoothingConfig = Field(default_factory=SmoothingConfig, description="temporal smoothing")

    @field_validator("detection_regions")
    @classmethod
    def _regions_inside_the_frame(
        cls, regions: list[tuple[float, float, float, float]]
    ) -> list[tuple[float, float, float, float]]:
        for x0, y0, x1, y1 in regions:
            if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
                box = [x0, y0, x1, y1]
                raise ValueError(f"detection region {box}: expected 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
        return regions

    @model_validator(mode="after")
    def _needs_pose(self) -> PerceptionConfig:
        if not self.pose and (self.face or self.segmentation):
            raise ValueError("face and segmentation are found from the pose: they need pose: true")
        return self


@dataclass
class _Track:
    """One tracked person between frames."""

    roi: RotatedRect
    smoother: LandmarkSmoother | None
    roi_smoother: LandmarkSmoother | None
    face_roi: RotatedRect | None = None
    frames: int = 0
    last: PoseLandmarks | None = field(default=None, repr=False)


def head_region(keypoints: npt.NDArray[np.floating]) -> RotatedRect:
    """Where to look for the face: box of the pose's face points 0–10, turned upright by the eye line."""
    pts = keypoints[_FACE_POINTS, :2]
    box = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
    rect = rect_from_box(box, keypoints[Landmark.RIGHT_EYE], keypoints[Landmark.LEFT_EYE], 0.0)
    return rect.scaled(HEAD_REGION_SCALE)


def _as_bgr(frame: npt.NDArray) -> npt.NDArray[np.uint8]:
    if not isinstance(frame, np.ndarray) or frame.size == 0:
        raise ValueError("frame must be a non-empty numpy array (H, W, 3) BGR uint8")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return np.ascontiguousarray(frame[:, :, :3])
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must have shape (H, W, 3); got {frame.shape}")
    return np.ascontiguousarray(frame)  # OpenCV needs it; free when it already is


class PerceptionPipeline:
    """Runs the perception models on one frame at a time; keeps tracks between calls (one camera)."""

    def __init__(
        self, config: PerceptionConfig, model_dir: Path, backend_factory: BackendFactory | None = None
    ) -> None:
        self.config = config
        self.model_dir = Path(model_dir)
        self.store = ModelStore(self.model_dir)
        factory = backend_factory or self._default_factory
        self.pose_detector: PoseDetector | None = None
        self.pose_landmarker: PoseLandmarker | None = None
        self.face_detector: FaceDetector | None = None
        self.face_landmarker: FaceLandmarker | None = None
        if config.pose:
            self.pose_detector = PoseDetector(
                factory(PoseDetector.model_name), config.detection_min_score, config.detection_iou
            )
            self.pose_landmarker = PoseLandmarker(factory(PoseLandmarker.model_name), config.pose_presence_threshold)
        if config.face:
            self.face_detector = FaceDetector(factory(FaceDetector.model_name), config.face_min_score)
            self.face_landmarker = FaceLandmarker(factory(FaceLandmarker.model_name), config.face_presence_threshold)
        self.head_pose = HeadPoseEstimator()
        self._tracks: list[_Track] = []
        self._since_detection = 0  # frames since the detector last ran (the census counts these)

    def _default_factory(self, name: str) -> Backend:
        try:
            path = self.store.path(name)
            entry = self.store.entry(name)
        except ModelStoreError as exc:
            raise BackendError(str(exc)) from exc
        if self.config.backend.type == "onnxruntime" and name == PoseLandmarker.model_name:
            from edge.backends.onnxruntime_backend import OnnxRuntimeBackend

            # Without segmentation, leave the segmentation head out of the graph (ONNX Runtime then
            # skips its decoder and upsampling: about 40 % of the landmark model's time).
            keep = [o.name for o in entry.outputs if self.config.segmentation or not _is_segmentation(o.shape)]
            backend = OnnxRuntimeBackend(self.config.backend)
            backend.load(path, outputs=keep)
            return backend
        return create_backend(self.config.backend, path)

    @property
    def stages(self) -> list[PoseDetector | PoseLandmarker | FaceDetector | FaceLandmarker]:
        found = (self.pose_detector, self.pose_landmarker, self.face_detector, self.face_landmarker)
        return [s for s in found if s is not None]

    @property
    def models(self) -> list[ModelRef]:
        """The models this pipeline runs, with the sha256 recorded in the model store's manifest
        (the file's own sha256 for a model loaded from outside a store)."""
        refs = []
        for stage in self.stages:
            try:
                refs.append(self.store.ref(stage.model_name))
            except ModelStoreError:
                if stage.backend.model_path is None:
                    raise
                refs.append(ModelRef(name=stage.model_name, sha256=file_sha256(stage.backend.model_path)))
        return refs

    def warmup(self) -> None:
        for stage in self.stages:
            stage.backend.warmup()

    def reset(self) -> None:
        """Forget all tracks (e.g. after a camera switch): the next frame runs the detector."""
        self._tracks = []
        self._since_detection = 0

    # ------------------------------------------------------------------ per frame

    def process(self, frame_bgr: npt.NDArray[np.uint8], timestamp: float) -> FrameResult:
        frame = _as_bgr(frame_bgr)
        height, width = frame.shape[:2]
        result = FrameResult(timestamp=timestamp, width=width, height=height)
        if self.pose_detector is None or self.pose_landmarker is None:
            return result
        start = time.perf_counter()
        ms = result.stage_ms
        ms.update({"pose_detection": 0.0, "pose_landmarks": 0.0})

        live: list[_Track] = []
        lost = False
        if self.config.tracking:
            for track in self._tracks:
                landmarks = self._landmarks(frame, track.roi, ms)
                if landmarks is not None:
                    track.last = landmarks
                    live.append(track)
                else:
                    lost = True
        live = _drop_duplicates(live)

        self._since_detection += 1
        if len(live) < self.config.max_persons and (lost or not live or self._census_due()):
            self._since_detection = 0
            t0 = time.perf_counter()
            detections = self.pose_detector(frame)
            for region in self.config.detection_regions:
                detections += self.pose_detector(frame, _pixel_box(region, width, height))
            ms["pose_detection"] += (time.perf_counter() - t0) * 1e3
            for det in detections:
                if len(live) >= self.config.max_persons:
                    break
                if any(_covers(track, det.keypoints[0]) for track in live):
                    continue
                roi = detection_to_roi(det)
                landmarks = self._landmarks(frame, roi, ms)
                if landmarks is None:
                    continue
                track = self._new_track(roi)
                track.last = landmarks
                live.append(track)
            live = _drop_duplicates(live)

        t0 = time.perf_counter()
        persons = [self._person(track, timestamp, width, height) for track in live]
        ms["smoothing"] = (time.perf_counter() - t0) * 1e3
        self._tracks = live if self.config.tracking else []

        if self.face_detector is not None:
            ms.update({"face_detection": 0.0, "face_landmarks": 0.0, "head_pose": 0.0})
            for track, person in zip(live, persons, strict=True):
                self._face(frame, track, person, ms)
        ms["total"] = (time.perf_counter() - start) * 1e3
        result.persons = persons
        return result

    def _census_due(self) -> bool:
        every = self.config.census_every
        return every > 0 and self._since_detection >= every

    def _new_track(self, roi: RotatedRect) -> _Track:
        s = self.config.smoothing
        if not s.enabled:
            return _Track(roi, None, None)
        return _Track(
            roi,
            LandmarkSmoother(s.min_cutoff, s.beta, s.derivative_cutoff, s.visibility_alpha),
            LandmarkSmoother(s.roi_min_cutoff, s.roi_beta, s.derivative_cutoff, s.visibility_alpha),
        )

    def _landmarks(self, frame: npt.NDArray[np.uint8], roi: RotatedRect, ms: dict[str, float]) -> PoseLandmarks | None:
        assert self.pose_landmarker is not None
        t0 = time.perf_counter()
        out = self.pose_landmarker(frame, roi, with_mask=self.config.segmentation)
        ms["pose_landmarks"] += (time.perf_counter() - t0) * 1e3
        return out

    def _person(self, track: _Track, timestamp: float, width: int, height: int) -> Person:
        lm = track.last
        assert lm is not None
        body = lm.landmarks[:NUM_LANDMARKS]
        xyz, vis = body[:, :3].astype(np.float64), body[:, 3].astype(np.float64)
        aux = lm.landmarks.astype(np.float64)
        if track.smoother is not None and track.roi_smoother is not None:
            xyz, vis = track.smoother.apply(xyz, vis, timestamp)
            aux_xyz, _ = track.roi_smoother.apply(aux[:, :3], aux[:, 3], timestamp)
            aux = aux.copy()
            aux[:, :3] = aux_xyz
        track.roi = roi_from_auxiliary(aux)
        track.frames += 1
        keypoints = np.column_stack([xyz[:, :2], vis]).astype(np.float32)
        x0, y0 = np.clip(keypoints[:, :2].min(axis=0), 0, [width, height])
        x1, y1 = np.clip(keypoints[:, :2].max(axis=0), 0, [width, height])
        return Person(
            score=lm.score,
            bbox=(float(x0), float(y0), float(x1), float(y1)),
            keypoints=keypoints,
            world=lm.world,
            mask=lm.mask,
        )

    def _face(self, frame: npt.NDArray[np.uint8], track: _Track, person: Person, ms: dict[str, float]) -> None:
        assert self.face_detector is not None and self.face_landmarker is not None
        face: FaceLandmarks | None = None
        if float(person.keypoints[_FACE_POINTS, 2].max()) < FACE_MIN_VISIBILITY:
            track.face_roi = None  # seen from behind: no face to look for
            return
        region = head_region(person.keypoints)
        if track.face_roi is not None and not _inside(region, (track.face_roi.cx, track.face_roi.cy)):
            track.face_roi = None  # the tracked face drifted off this person's head
        if track.face_roi is not None and self.config.tracking:
            t0 = time.perf_counter()
            face = self.face_landmarker(frame, track.face_roi)
            ms["face_landmarks"] += (time.perf_counter() - t0) * 1e3
        if face is None:
            t0 = time.perf_counter()
            candidates = [f for f in self.face_detector(frame, region) if _inside(region, f.center)]
            ms["face_detection"] += (time.perf_counter() - t0) * 1e3
            if candidates:
                best = max(candidates, key=lambda f: f.score)
                t0 = time.perf_counter()
                face = self.face_landmarker(frame, best.roi)
                ms["face_landmarks"] += (time.perf_counter() - t0) * 1e3
        if face is None:
            track.face_roi = None
            return
        track.face_roi = face.next_roi()
        t0 = time.perf_counter()
        person.face_landmarks = face.points
        person.head_pose = self.head_pose(face.points)
        ms["head_pose"] += (time.perf_counter() - t0) * 1e3


def _pixel_box(region: tuple[float, float, float, float], width: int, height: int) -> PixelBox:
    """A region given in fractions of the frame, in whole pixels (at least one pixel wide and high)."""
    x0, y0 = min(int(region[0] * width), width - 1), min(int(region[1] * height), height - 1)
    return x0, y0, max(x0 + 1, round(region[2] * width)), max(y0 + 1, round(region[3] * height))


def _is_segmentation(shape: list[int]) -> bool:
    """The landmark model's segmentation output: one image-shaped channel (the heatmap has 39)."""
    return len(shape) == 4 and shape[-1] == 1 and shape[1] > 1


def _inside(rect: RotatedRect, point: npt.ArrayLike) -> bool:
    """Whether `point` lies in the (rotated) rect."""
    d = np.asarray(point, dtype=np.float64) - (rect.cx, rect.cy)
    cos, sin = math.cos(rect.rotation), math.sin(rect.rotation)
    u = cos * d[0] + sin * d[1]
    v = -sin * d[0] + cos * d[1]
    return abs(u) <= rect.width / 2 and abs(v) <= rect.height / 2


def _covers(track: _Track, hip_center: npt.NDArray[np.float32]) -> bool:
    """Whether a detection's hip centre belongs to a person already tracked (near that person's hip centre)."""
    assert track.last is not None
    tracked = track.last.landmarks[33, :2]
    return float(np.linalg.norm(tracked - hip_center[:2])) < 0.2 * track.last.roi.width


def _drop_duplicates(tracks: list[_Track]) -> list[_Track]:
    """Two tracks that converged on one person: keep the older."""
    kept: list[_Track] = []
    for track in sorted(tracks, key=lambda t: -t.frames):
        assert track.last is not None
        if not any(_covers(k, track.last.landmarks[33, :2]) for k in kept):
            kept.append(track)
    return kept


__all__ = ["BackendError", "PerceptionConfig", "PerceptionPipeline", "SmoothingConfig", "head_region"]
