"""Gait booth parts: student-code HMACs, silhouettes, the walk detector's timing, and ScoNet-MT through ONNX."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

import numpy as np
import pytest

from contract.wire import encode
from edge.perception.types import FrameResult
from edge.roles.base import EmitContext
from edge.roles.gait.analyzer import GaitAnalyzer
from edge.roles.gait.config import GaitConfig
from edge.roles.gait.message import GaitScreening
from edge.roles.gait.silhouette import SIL_HEIGHT, SIL_WIDTH, model_input, silhouette_from_mask
from edge.roles.gait.walk import WalkDetector, WalkFrame
from edge.subject_code import SubjectCodes, subject_token
from training.synth.walkthrough import render_walkthrough

SECRET = b"north-school-secret"


# -- student codes -------------------------------------------------------------------------------------------


def test_same_code_same_token_other_secret_other_token() -> None:
    token = subject_token("STU-001", SECRET)
    assert token == subject_token("  STU-001\r\n", SECRET)  # what a reader appends does not matter
    assert token == hmac.new(SECRET, b"STU-001", hashlib.sha256).hexdigest()
    assert token != subject_token("STU-002", SECRET)
    assert token != subject_token("STU-001", b"south-school-secret")
    assert len(token) == 64 and "STU-001" not in token


def test_empty_code_or_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="code is empty"):
        subject_token("   ", SECRET)
    with pytest.raises(ValueError, match="secret is empty"):
        subject_token("STU-001", b"")


def test_pending_code_expires_and_overlong_lines_are_rejected() -> None:
    codes = SubjectCodes(SECRET, valid_s=10.0, max_length=12)
    assert codes.enter("# comment", now=0.0) is False and codes.current(now=0.0) is None
    assert codes.enter("A" * 13, now=0.0) is False and codes.rejected == 1
    assert codes.enter("STU-001\n", now=100.0)
    assert codes.current(now=105.0) == subject_token("STU-001", SECRET)
    assert codes.current(now=111.0) is None  # expired unused


def test_codes_are_read_from_a_file_input(tmp_path: Path) -> None:
    source = tmp_path / "codes"
    source.write_text("STU-777\n")
    codes = SubjectCodes(SECRET)
    codes.start_reader(str(source))
    assert codes._thread is not None
    codes._thread.join(5)
    assert codes.current() == subject_token("STU-777", SECRET)
    with pytest.raises(OSError, match=r"subject_codes\.input: cannot open"):
        SubjectCodes(SECRET).start_reader(str(tmp_path / "missing"))


def test_an_input_that_ends_before_any_code_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What a booth sees under systemd without its console: standard input is /dev/null."""
    codes = SubjectCodes(SECRET)
    with caplog.at_level(logging.INFO, logger="edge.subject_code"):
        codes.start_reader("/dev/null")
        assert codes._thread is not None
        codes._thread.join(5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no student codes will be read" in warnings[0] and "subject-codes.conf" in warnings[0]


# -- silhouettes ---------------------------------------------------------------------------------------------


def test_silhouette_is_height_normalised_and_centred() -> None:
    mask = np.zeros((480, 640), np.float32)
    mask[100:400, 50:110] = 1.0  # a 300 x 60 person at the left of the image
    sil = silhouette_from_mask(mask)
    assert sil is not None and sil.shape == (SIL_HEIGHT, SIL_WIDTH) and sil.dtype == np.uint8
    cols = np.flatnonzero(sil.max(axis=0) > 127)
    assert cols.size and abs((cols[0] + cols[-1]) / 2 - (SIL_WIDTH - 1) / 2) <= 1.0  # centred
    rows = np.flatnonzero(sil.max(axis=1) > 127)
    assert rows[0] == 0 and rows[-1] == SIL_HEIGHT - 1  # full height
    assert silhouette_from_mask(np.zeros((480, 640), np.float32)) is None
    assert silhouette_from_mask(None) is None
    x = model_input([sil] * 50, max_frames=30)
    assert x.shape == (1, 30, 64, 44) and x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0


# -- walk detector -------------------------------------------------------------------------------------------


def test_walk_closes_leave_s_after_the_person_left_and_glitches_are_ignored() -> None:
    detector = WalkDetector(GaitConfig(leave_s=0.4, min_walk_frames=5))
    closed = []
    # 3 frames of someone (a glitch), a gap, then 20 frames, then nobody; 25 fps
    people = [1] * 3 + [0] * 20 + [1] * 20 + [0] * 30
    for i, n in enumerate(people):
        walk = detector.update(WalkFrame(t=i / 25, people=n, cx=0.5 if n else None))
        if walk is not None:
            closed.append((i / 25, walk))
    assert detector.ignored == 1 and len(closed) == 1
    at, walk = closed[0]
    assert len(walk.frames) == 20 and walk.last_seen == pytest.approx(42 / 25)
    assert 0.4 <= at - walk.last_seen <= 0.4 + 1 / 25 + 1e-9  # well within the 1 s budget


def _run(analyzer: GaitAnalyzer, frames: list[FrameResult]) -> list[GaitScreening]:
    out = []
    for frame in frames:
        out += analyzer.process(frame)
    out += analyzer.flush()
    return [m for m in out if isinstance(m, GaitScreening)]


# -- ScoNet-MT through ONNX Runtime -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sconet_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from contract.labels import GAIT_LABELS
    from export.onnx_export import export_module
    from training.models.sconet import sconet_mt

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = sconet_mt(width=0.125)  # untrained: this checks the device path, not the classifier
    sils = (np.random.default_rng(2).random((2, 8, 64, 44)) > 0.5).astype(np.float32)
    meta = {
        "format": 1, "task": "gait", "arch": "sconet_mt", "model_kwargs": {"num_classes": 3, "width": 0.125},
        "label_map": GAIT_LABELS, "input_spec": {"name": "silhouettes", "shape": [-1, -1, 64, 44],
                                                 "dtype": "float32", "layout": "NTHW"},
        "normalisation": None, "data_sha256": "ab" * 32, "git_commit": "0123abc",
    }  # fmt: skip
    out = tmp_path_factory.mktemp("sconet") / "sconet-mt.onnx"
    export_module(model, meta, out, sils)
    # the booth runs only models whose card says they were trained; this stand-in carries one
    _add_card(out, {"trained": True, "data_sha256": "ab" * 32})
    return out


def _add_card(path: Path, card: dict[str, object]) -> None:
    import onnx

    from contract.model_card import card_metadata

    proto = onnx.load(str(path))
    for key, value in card_metadata(card).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def test_screened_walk_carries_sconet_probabilities_and_the_model_hash(sconet_onnx: Path) -> None:
    config = GaitConfig.model_validate({"model": {"path": str(sconet_onnx), "max_frames": 12}})
    analyzer = GaitAnalyzer(EmitContext(site="north", device_id="booth-1"), config)
    frames, _ = render_walkthrough("negative", 1, 0)
    codes = SubjectCodes(SECRET)
    analyzer.codes = codes
    codes.enter("STU-123")
    (message,) = _run(analyzer, frames)
    assert message.outcome == "screened"
    assert message.probabilities is not None and set(message.probabilities) == {"negative", "neutral", "positive"}
    assert sum(message.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert message.predicted == max(message.probabilities, key=lambda c: message.probabilities[c])  # type: ignore[index]
    ref = message.models[-1]
    assert ref.name == "sconet-mt" and ref.sha256 == hashlib.sha256(sconet_onnx.read_bytes()).hexdigest()
    assert message.subject == subject_token("STU-123", SECRET) and codes.current() is None  # used up
    assert b"STU-123" not in encode(message)
    # nothing of the walk is kept once the message is built
    assert analyzer.detector.open is None


def test_bad_walk_gets_no_probabilities_even_with_a_model(sconet_onnx: Path) -> None:
    config = GaitConfig.model_validate({"model": {"path": str(sconet_onnx)}})
    analyzer = GaitAnalyzer(EmitContext(site="north", device_id="booth-1"), config)
    frames, _ = render_walkthrough("wrong_direction", 1, 7)
    (message,) = _run(analyzer, frames)
    assert message.outcome == "wrong_direction" and message.probabilities is None and message.measures == {}


def test_a_model_of_the_wrong_input_shape_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "wrong.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ValueError, match=r"wrong\.onnx: input 'x' has shape .* expected \[N, T, 64, 44\]"):
        GaitAnalyzer(EmitContext(site="n", device_id="b"), GaitConfig.model_validate({"model": {"path": str(path)}}))


# -- never screening with untrained weights ------------------------------------------------------------------


def test_booth_without_a_model_says_so_in_one_line_and_classes_nobody(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge.roles.gait.analyzer"):
        analyzer = GaitAnalyzer(EmitContext(site="north", device_id="booth-1"), GaitConfig())
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.roles.gait.analyzer"]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert "no trained gait model" in lines[0] and "without a risk class" in lines[0]
    frames, _ = render_walkthrough("positive", 1, 0)
    (message,) = _run(analyzer, frames)
    assert message.probabilities is None and message.predicted is None
    assert all(ref.name != "sconet-mt" for ref in message.models)


def test_a_booth_whose_model_is_not_installed_does_not_start_and_says_why(tmp_path: Path) -> None:
    from contract.errors import UsageError

    missing = tmp_path / "bundles" / "gait" / "current" / "models" / "gait-skeleton.onnx"
    config = GaitConfig.model_validate({"model": {"path": str(missing)}})
    with pytest.raises(UsageError) as caught:
        GaitAnalyzer(EmitContext(site="north", device_id="booth-1"), config)
    text = str(caught.value)
    assert "\n" not in text and str(missing) in text and "no trained gait model is installed" in text


def test_an_untrained_export_is_refused_at_start_with_one_line(tmp_path: Path, sconet_onnx: Path) -> None:
    import onnx

    from contract.errors import UsageError
    from contract.model_card import MODEL_CARD_KEY

    proto = onnx.load(str(sconet_onnx))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != MODEL_CARD_KEY]
    del proto.metadata_props[:]
    for key, value in kept:
        proto.metadata_props.add(key=key, value=value)
    bare = tmp_path / "fresh-sconet.onnx"
    onnx.save(proto, str(bare))
    config = GaitConfig.model_validate({"model": {"path": str(bare)}})
    with pytest.raises(UsageError) as caught:
        GaitAnalyzer(EmitContext(site="north", device_id="booth-1"), config)
    text = str(caught.value)
    assert "\n" not in text and "fresh-sconet.onnx" in text and "never screens with untrained weights" in text
    _add_card(bare, {"trained": False, "data_sha256": "cd" * 32})  # a card that does not claim training
    with pytest.raises(UsageError, match="does not say it was trained"):
        GaitAnalyzer(EmitContext(site="north", device_id="booth-1"), config)
