"""ONNX Runtime backend: session options that matter for speed when several models share two cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.backends.base import BackendConfig
from edge.backends.onnxruntime_backend import OnnxRuntimeBackend


def _load(model_dir: Path, threads: int) -> OnnxRuntimeBackend:
    backend = OnnxRuntimeBackend(BackendConfig(threads=threads))
    backend.load(model_dir / "face_landmark.onnx")
    return backend


def test_multi_threaded_sessions_stop_spinning_when_a_run_returns(model_dir: Path) -> None:
    """A pool's workers must not keep spinning after a run: the next model's threads need the cores."""
    two, one = _load(model_dir, 2), _load(model_dir, 1)
    options = two.session.get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    assert one.session.get_session_options().intra_op_num_threads == 1  # no pool, nothing to spin
    x = np.random.default_rng(0).random((1, 192, 192, 3), dtype=np.float32)
    for a, b in zip(two.infer({"input_1": x}), one.infer({"input_1": x}), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
