"""The role analyzer interface every role implements (see contract.roles for the registry)."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from contract.wire import ModelRef, Window
from edge.perception.types import FrameResult

ScoreMessage = Window  # every role's wire message is a window (a walk-through is one too)
Image = npt.NDArray[np.uint8]  # a BGR frame


@dataclass
class EmitContext:
    """What an analyzer needs to build a message: identity, models, and the device's sequence counter."""

    site: str
    device_id: str
    models: list[ModelRef] = field(default_factory=list)
    next_seq: Callable[[], int] = field(default_factory=lambda: itertools.count().__next__)


@dataclass(frozen=True)
class PerceptionNeeds:
    """Which perception outputs a role uses, so the pipeline runs only those models."""

    pose: bool = True
    segmentation: bool = False
    face: bool = False


class RoleAnalyzer(ABC):
    """Consumes FrameResults in time order; returns score messages when a window or walk closes.

    Analyzers keep only numbers derived per frame; they must drop per-frame data once a message is built.
    """

    role: ClassVar[str]
    needs: ClassVar[PerceptionNeeds]

    def __init__(self, ctx: EmitContext) -> None:
        self.ctx = ctx
        self.absent_windows = 0  # windows with nobody in view: counted, reported in the heartbeat

    @property
    def reads_image(self) -> bool:
        """True when the analyzer also reads the frame's pixels; the runtime then passes them as `image`."""
        return False

    @abstractmethod
    def process(self, frame: FrameResult, image: Image | None = None) -> list[ScoreMessage]:
        """Add one frame; return messages for windows/walks that closed at this frame's time.

        `image` is the BGR frame the result came from, given only to an analyzer that `reads_image` and only
        for the length of this call: it must not be kept.
        """

    @abstractmethod
    def flush(self) -> list[ScoreMessage]:
        """Close what is open (on shutdown or end of input)."""
