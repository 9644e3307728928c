"""Shared fixtures for the training tests: one anny body model per test session.

The model's first build (anny's cache under ~/.cache/edgescreen/anny, or $EDGESCREEN_ANNY_DIR) takes minutes;
later sessions load it in seconds. Every avatar test goes through `anny_model`, so a session builds or loads it
once and never per test.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def anny_model() -> Any:
    """The process-wide anny model with the truth-point choices made on it (skips without the train extra)."""
    pytest.importorskip("anny")
    from training.synth.avatar.anny_model import get_model
    from training.synth.avatar.points import point_spec

    model = get_model()
    point_spec()
    return model
