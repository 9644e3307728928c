"""Where the frame loop gets perception results from: a `FrameResultSource`.

`CameraResults` (the grabber's frames run through perception) is the usual one; `ReplayResults` (the gait
booth's `--replay FILE`) plugs recorded results in without touching the loop. Frames live only inside
`CameraResults.poll` (grabbed, run through perception, dropped), or until the loop hands one to an analyzer
that reads pixels.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from edge.grabber import CameraHealth
from edge.heartbeat import StageMeter
from edge.perception.pipeline import PerceptionPipeline
from edge.perception.types import FrameResult
from edge.roles.base import Image


class FrameResultSource(Protocol):
    """Where the loop gets perception results from."""

    def start(self) -> None: ...

    def poll(self, timeout: float, meter: StageMeter) -> FrameResult | None:
        """The next result, or None when nothing arrived within `timeout`."""

    def take_image(self) -> Image | None:
        """The frame of the result `poll` returned last, handed over once (None when frames are not kept)."""

    @property
    def finished(self) -> bool:
        """True once a finite input is exhausted."""

    def health(self) -> CameraHealth: ...

    def stop(self) -> None: ...


class FrameFeed(Protocol):
    """The grabber as the runtime uses it (latest frame wins; reopen with backoff)."""

    def start(self) -> None: ...

    def get(self, timeout: float) -> tuple[object, float] | None: ...

    @property
    def finished(self) -> bool: ...

    def health(self) -> CameraHealth: ...

    def stop(self) -> None: ...


class CameraResults:
    """Grabber frames run through the perception pipeline, one at a time. A frame is kept only for an analyzer
    that reads pixels (`keep_image`), and only until the loop has handed it to the analyzer (`take_image`)."""

    def __init__(self, feed: FrameFeed, pipeline: PerceptionPipeline, keep_image: bool = False) -> None:
        self.feed = feed
        self.pipeline = pipeline
        self.keep_image = keep_image
        self._image: Image | None = None

    def take_image(self) -> Image | None:
        image, self._image = self._image, None
        return image

    def start(self) -> None:
        self.feed.start()

    def poll(self, timeout: float, meter: StageMeter) -> FrameResult | None:
        item = self.feed.get(timeout)
        if item is None:
            return None
        frame, timestamp = item
        t0 = time.perf_counter()
        result = self.pipeline.process(frame, timestamp)  # type: ignore[arg-type]
        self._image = frame if self.keep_image else None  # type: ignore[assignment]
        del frame, item
        meter.add_time("perception", (time.perf_counter() - t0) * 1e3)
        for stage, ms in result.stage_ms.items():
            if stage != "total":
                meter.add_time(stage, ms)
        return result

    @property
    def finished(self) -> bool:
        return self.feed.finished

    def health(self) -> CameraHealth:
        return self.feed.health()

    def stop(self) -> None:
        self.feed.stop()


class ReplayResults:
    """Recorded or synthetic perception results from a replay file (`edgescreen edge run --replay FILE`),
    fed as fast as the analyzer takes them; the file is validated before the first frame."""

    def __init__(self, path: Path) -> None:
        from edge.replay import read_replay

        self.path = path
        self._frames = read_replay(path)
        self._first = next(self._frames, None)  # validates the whole file now, before the runtime starts
        self._done = self._first is None

    def start(self) -> None:
        pass

    def take_image(self) -> Image | None:
        return None  # a replay holds perception results only

    def poll(self, timeout: float, meter: StageMeter) -> FrameResult | None:
        first, self._first = self._first, None
        if first is not None:
            return first
        frame = next(self._frames, None)
        self._done = frame is None
        return frame

    @property
    def finished(self) -> bool:
        return self._done

    def health(self) -> CameraHealth:
        return CameraHealth(state="ended" if self._done else "open")

    def stop(self) -> None:
        self._done = True
