"""The posture role: windows by frame time, band fractions, sustained risk, absences, the risk model, the
wire schema, and real perception on a clip made from the astronaut photo."""

from __future__ import annotations

import itertools
import json
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from contract.wire import ModelRef, decode, encode, topic_for
from edge.perception.types import FrameResult
from edge.roles import windows
from edge.roles.base import EmitContext
from edge.roles.posture.analyzer import PostureAnalyzer
from edge.roles.posture.config import POSTURE_METRICS, PostureConfig
from edge.roles.posture.message import PostureWindow
from edge.roles.registry import create_analyzer
from tests.edge.test_posture_metrics import synthetic_person

SITE, DEVICE = "site-a", "desk-7"
FPS = 10.0


def _ctx() -> EmitContext:
    return EmitContext(site=SITE, device_id=DEVICE, models=[ModelRef(name="pose_landmark_full", sha256="a" * 64)],
                       next_seq=itertools.count(1).__next__)  # fmt: skip


def _frames(tilts: Sequence[float | None], start: float = 0.0) -> list[FrameResult]:
    """One frame per entry at FPS; None = nobody in view."""
    out = []
    for i, tilt in enumerate(tilts):
        persons = [] if tilt is None else [synthetic_person(head_tilt=tilt)]
        out.append(FrameResult(timestamp=start + i / FPS, width=640, height=480, persons=persons))
    return out


def _run(analyzer: PostureAnalyzer, frames: list[FrameResult]) -> list[PostureWindow]:
    messages = [m for f in frames for m in analyzer.process(f)] + analyzer.flush()
    assert all(isinstance(m, PostureWindow) for m in messages)
    return messages  # type: ignore[return-value]


def _check_wire(message: PostureWindow) -> dict[str, Any]:
    """Valid against the schema on its topic; only numbers, booleans, nulls and short id-like strings."""
    payload = encode(message)
    assert decode(payload, topic_for(SITE, DEVICE, "posture")) == message
    raw = json.loads(payload)
    strings: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            assert len(node) <= 16
            for value in node:
                walk(value)
        elif isinstance(node, str):
            strings.append(node)
        else:
            assert node is None or isinstance(node, bool | int) or (isinstance(node, float) and math.isfinite(node))

    walk(raw)
    for text in strings:  # ids, enums, hashes, timestamps and model names: nothing free-form, nothing large
        assert len(text) <= 96
    uuid.UUID(raw["message_id"])
    datetime.fromisoformat(raw["window_start"])
    assert set(raw["metrics"]) == set(POSTURE_METRICS)
    return dict(raw)


def test_windows_close_on_frame_timestamps_with_band_fractions(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = PostureConfig(window_s=2.0, min_change_s=0.0)
    analyzer = PostureAnalyzer(_ctx(), cfg)
    # window 1: 10 frames ok (2°), 6 moderate (7°), 4 high (12°); window 2: all high (−15°); window 3: 1 s ok
    tilts: list[float] = [2.0] * 10 + [7.0] * 6 + [12.0] * 4 + [-15.0] * 20 + [1.0] * 10
    frames = _frames(tilts, start=1000.0)  # a monotonic clock that does not start at zero
    # The frames arrive in real time, as from a camera: the wall clock follows them (window times never run
    # ahead of it, edge/roles/windows.py).
    wall0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    now = [wall0]
    monkeypatch.setattr(windows, "utcnow", lambda: now[0])
    closed_at = []
    messages: list[PostureWindow] = []
    for frame in frames:
        now[0] = wall0 + timedelta(seconds=frame.timestamp - 1000.0)
        out = analyzer.process(frame)
        if out:
            closed_at.append(round(frame.timestamp - 1000.0, 3))
            messages += out  # type: ignore[arg-type]
    assert closed_at == [2.0, 4.0]  # the first frame of the next window closes the last one
    now[0] += timedelta(seconds=0.1)
    messages += analyzer.flush()  # type: ignore[arg-type]
    assert [m.seq for m in messages] == [1, 2, 3]
    assert [m.frames for m in messages] == [20, 20, 10]
    for m in messages:
        _check_wire(m)
    first, second, third = messages
    assert (first.window_end - first.window_start).total_seconds() == pytest.approx(2.0)
    assert second.window_start == first.window_end
    assert (third.window_end - third.window_start).total_seconds() == pytest.approx(1.0, abs=0.11)
    tilt = first.metrics["head_tilt_deg"]
    assert tilt.valid_frames == 20 and tilt.bands == pytest.approx({"ok": 0.5, "moderate": 0.3, "high": 0.2})
    assert tilt.p50 == pytest.approx(np.percentile(tilts[:20], 50)) and tilt.mean == pytest.approx(np.mean(tilts[:20]))
    assert second.metrics["head_tilt_deg"].bands == {"ok": 0.0, "moderate": 0.0, "high": 1.0}
    assert second.metrics["head_tilt_deg"].p90 == pytest.approx(-15.0)
    assert first.metrics["cva_deg"].valid_frames == 0 and first.metrics["cva_deg"].mean is None  # front view
    assert first.presence_s == pytest.approx(2.0, abs=0.01) and first.models[0].name == "pose_landmark_full"
    # ok → moderate → high in window 1, high → ok in window 3 (window 2 stays high)
    assert [m.posture_changes for m in messages] == [2, 0, 1]


def test_same_frames_give_the_same_windows() -> None:
    tilts: list[float | None] = [float(i % 13) for i in range(45)]
    runs = [_run(PostureAnalyzer(_ctx(), PostureConfig(window_s=1.5)), _frames(tilts)) for _ in range(2)]
    strip = [[m.model_dump(exclude={"message_id", "window_start", "window_end"}) for m in run] for run in runs]
    assert strip[0] == strip[1] and len(strip[0]) == 3


def test_sustained_risk_needs_a_long_enough_run_and_carries_across_windows() -> None:
    cfg = PostureConfig(window_s=2.0, sustained_s=2.5, max_gap_s=0.5, min_change_s=0.0)
    # 0–2 s: high tilt broken every 0.5 s by an ok frame → no sustained run
    broken: list[float | None] = [12.0, 12.0, 12.0, 12.0, 1.0] * 4
    # 2–6 s: 3.5 s of continuous high tilt (spanning two windows; a short 0.3 s gap of no-one is bridged)
    sustained: list[float | None] = [12.0] * 15 + [None] * 3 + [12.0] * 17 + [1.0] * 5
    messages = _run(PostureAnalyzer(_ctx(), cfg), _frames(broken + sustained))
    flags = [m.metrics["head_tilt_deg"].sustained_risk for m in messages]
    assert flags == [False, False, True]  # the run reaches 2.5 s at t = 4.5 s
    assert not any(m.metrics["shoulder_asymmetry_deg"].sustained_risk for m in messages)
    # the same run with a longer gap (0.8 s > max_gap_s) is two short runs
    split: list[float | None] = [12.0] * 15 + [None] * 8 + [12.0] * 17
    messages = _run(PostureAnalyzer(_ctx(), cfg), _frames(broken + split))
    assert not any(m.metrics["head_tilt_deg"].sustained_risk for m in messages)


def test_window_with_nobody_in_view_sends_nothing_and_is_counted() -> None:
    analyzer = PostureAnalyzer(_ctx(), PostureConfig(window_s=1.0))
    tilts: list[float | None] = [3.0] * 10 + [None] * 10 + [None] * 10 + [3.0, None, None, None, None] * 2
    messages = _run(analyzer, _frames(tilts))
    assert [m.seq for m in messages] == [1, 2] and analyzer.absent_windows == 2
    last = messages[-1]
    assert last.frames == 10 and last.presence_s == pytest.approx(0.2, abs=0.01)
    assert last.metrics["head_tilt_deg"].valid_frames == 2


def test_brief_posture_flicker_is_not_a_posture_change() -> None:
    cfg = PostureConfig(window_s=10.0, min_change_s=1.0)
    tilts = [1.0] * 20 + [12.0] * 3 + [1.0] * 20 + [12.0] * 15 + [1.0] * 5
    (message,) = _run(PostureAnalyzer(_ctx(), cfg), _frames(tilts))
    assert message.posture_changes == 1  # the 0.3 s spike is ignored; the 1.5 s stretch counts, its end does not


def test_created_through_the_role_registry_with_profile_thresholds() -> None:
    cfg = PostureConfig.model_validate({"window_s": 1.0, "thresholds": {"head_tilt_deg": {
        "moderate": 2.0, "high": 4.0, "direction": "abs_above"}}})  # fmt: skip
    analyzer = create_analyzer("posture", _ctx(), cfg)
    assert isinstance(analyzer, PostureAnalyzer)
    (message,) = _run(analyzer, _frames([3.0] * 10))
    assert message.metrics["head_tilt_deg"].bands["moderate"] == 1.0
    with pytest.raises(ValueError, match=r"direction 'below' need moderate >= high, got 40\.0, 50\.0"):
        PostureConfig.model_validate({"thresholds": {"cva_deg": {"moderate": 40, "high": 50, "direction": "below"}}})


def _tiny_model(path: Path, weight: float, bias: float, inputs: int = 1) -> None:
    """logits [N, 2] = [0, weight·|x0| + bias]: the softmax's class 1 is sigmoid(weight·|x0| + bias)."""
    x = helper.make_tensor_value_info("metrics", TensorProto.FLOAT, ["N", inputs])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [inputs, 2], [0.0, weight] + [0.0, 0.0] * (inputs - 1))
    b = helper.make_tensor("b", TensorProto.FLOAT, [2], [0.0, bias])
    graph = helper.make_graph(
        [helper.make_node("Abs", ["metrics"], ["a"]), helper.make_node("Gemm", ["a", "w", "b"], ["logits"])],
        "posture_risk", [x], [y], [w, b],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_risk_score_from_a_posture_model(tmp_path: Path) -> None:
    path = tmp_path / "posture-risk.onnx"
    _tiny_model(path, weight=0.5, bias=-4.0)
    cfg = PostureConfig.model_validate(
        {"window_s": 1.0, "model": {"path": str(path), "input": "metrics", "metrics": ["head_tilt_deg"]}}
    )
    tilts: list[float | None] = [2.0] * 5 + [14.0] * 5 + [None] * 10
    messages = _run(PostureAnalyzer(_ctx(), cfg), _frames(tilts))
    assert len(messages) == 1
    expected = np.mean([1 / (1 + math.exp(-(0.5 * t - 4.0))) for t in (2.0,) * 5 + (14.0,) * 5])
    assert messages[0].risk_score == pytest.approx(expected, abs=1e-5)
    raw = _check_wire(messages[0])
    import hashlib

    assert raw["models"][-1] == {"name": "posture-risk", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    # no model configured: no score
    assert _run(PostureAnalyzer(_ctx(), PostureConfig(window_s=1.0)), _frames([2.0] * 5))[0].risk_score is None


def test_posture_model_with_a_mismatched_input_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.onnx"
    _tiny_model(path, weight=1.0, bias=0.0, inputs=3)
    cfg = PostureConfig.model_validate({"model": {"path": str(path), "metrics": ["head_tilt_deg"]}})
    with pytest.raises(ValueError, match=r"wide\.onnx: input 'metrics' takes 3 values per frame"):
        PostureAnalyzer(_ctx(), cfg)
    with pytest.raises(ValueError, match="unknown metric"):
        PostureConfig.model_validate({"model": {"path": str(path), "metrics": ["cva"]}})


def test_head_tilt_follows_the_photo_rotation_with_real_perception(tmp_path: Path, model_dir: Path) -> None:
    from edge.grabber import FrameGrabber
    from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline
    from edge.sources.factory import make_source
    from edgescreen.clips import make_posture_clip

    schedule = ((0.0, 0.0), (1 / 3, 12.0), (2 / 3, -8.0))  # 2 s level, 2 s at +12°, 2 s at −8°
    clip = make_posture_clip(tmp_path / "tilt.avi", seconds=6.0, fps=5.0, tilt_deg=schedule, sway_px=8.0)
    config = PerceptionConfig.model_validate({"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 1}})
    pipeline = PerceptionPipeline(config, model_dir)
    analyzer = PostureAnalyzer(_ctx(), PostureConfig(window_s=1.0))
    results = []
    with FrameGrabber(make_source(str(clip.path))) as grabber:
        while not grabber.finished:
            item = grabber.get(2.0)
            if item is not None:
                results.append(pipeline.process(item.frame, item.timestamp))
    messages = _run(analyzer, results)
    assert len(messages) == 6 and analyzer.absent_windows == 0
    tilts = []
    for message in messages:
        stats = message.metrics["head_tilt_deg"]
        assert stats.valid_frames >= 3 and stats.p50 is not None
        tilts.append(stats.p50)
    # The photo's own head tilt is the baseline; turning it by +12° then −8° must move the measure by as much.
    # The second window of each step is compared: the tracker's keypoint smoothing settles during the first.
    level, turned, back = tilts[1], tilts[3], tilts[5]
    assert turned - level == pytest.approx(12.0, abs=3.0), tilts
    assert back - level == pytest.approx(-8.0, abs=3.0), tilts


def test_empty_clip_with_real_perception_sends_nothing(tmp_path: Path, model_dir: Path) -> None:
    from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline
    from edge.sources.factory import open_source
    from edgescreen.clips import make_empty_clip

    clip = make_empty_clip(tmp_path / "empty.avi", seconds=2.0, fps=5.0, size=(320, 240))
    config = PerceptionConfig.model_validate({"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 1}})
    pipeline = PerceptionPipeline(config, model_dir)
    analyzer = PostureAnalyzer(_ctx(), PostureConfig(window_s=1.0))
    source = open_source(str(clip.path))
    results = []
    while (item := source.read()) is not None:
        results.append(pipeline.process(item[0], item[1]))
    source.close()
    assert len(results) == clip.frames == 10
    assert _run(analyzer, results) == [] and analyzer.absent_windows == 2
