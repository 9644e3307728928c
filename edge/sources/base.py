"""The camera source interface. A source yields BGR uint8 frames; it never writes them anywhere."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import numpy.typing as npt

from contract.errors import EdgeScreenError

Frame = npt.NDArray[np.uint8]  # (H, W, 3) BGR


class SourceError(EdgeScreenError, RuntimeError):
    """The source could not be opened or failed while reading (the grabber reopens it with backoff)."""


class CorruptFrame(SourceError):
    """One frame could not be decoded; the grabber skips and counts it."""


class FrameSource(ABC):
    """A camera, stream, file or folder of images."""

    #: True for sources that end (file, folder); False for live cameras that should be reopened.
    finite: bool = False

    @abstractmethod
    def open(self) -> None:
        """Open the source; raises SourceError naming the source and the cause."""

    @abstractmethod
    def read(self) -> tuple[Frame, float] | None:
        """Next frame and its timestamp in seconds; None at the end of a finite source.

        Raises CorruptFrame for an undecodable frame and SourceError when the source is lost.
        """

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> str:
        """A short human description for logs and `edge check` (no credentials)."""
