"""Window aggregation shared by the roles: time windows by frame timestamps, distribution statistics, risk
bands, sustained runs and band changes. Numbers only; per-frame values are dropped when a window closes.

Windows are cut on the frames' own timestamps (media time for a file), never on the wall clock, so a
replay gives the same windows every time. Their UTC times (`FrameTimeline.wall`) never run ahead of the wall
clock: a file read faster than real time is stamped no later than the moment its window closes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import numpy as np

from contract.wire import utcnow
from edge.roles.common import BandThresholds

log = logging.getLogger(__name__)

BANDS: tuple[str, ...] = ("ok", "moderate", "high")  # in order of risk


def band_of(value: float, thresholds: BandThresholds) -> str:
    """The risk band of one value under `thresholds` (boundaries belong to the worse band)."""
    if thresholds.direction == "below":
        return "high" if value <= thresholds.high else "moderate" if value <= thresholds.moderate else "ok"
    v = abs(value) if thresholds.direction == "abs_above" else value
    return "high" if v >= thresholds.high else "moderate" if v >= thresholds.moderate else "ok"


def band_rank(band: str) -> int:
    return BANDS.index(band)


@dataclass(frozen=True)
class Distribution:
    mean: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    count: int


def distribution(values: Sequence[float]) -> Distribution:
    """Mean and 10th/50th/90th percentiles (linear interpolation); None for no values."""
    if not values:
        return Distribution(None, None, None, None, 0)
    a = np.asarray(values, np.float64)
    p10, p50, p90 = (float(x) for x in np.percentile(a, [10, 50, 90]))
    return Distribution(float(a.mean()), p10, p50, p90, len(values))


def band_fractions(bands: Iterable[str], names: Sequence[str] = BANDS) -> dict[str, float]:
    """Fraction of entries in each band (all bands listed, zeros included); empty for no entries."""
    counts = dict.fromkeys(names, 0)
    total = 0
    for band in bands:
        counts[band] += 1
        total += 1
    return {name: counts[name] / total for name in names} if total else {}


class FrameTimeline:
    """The frame timestamps one analyzer has taken, in order, and their UTC wall time.

    A frame older than the last one (a source restarted its clock) is refused and counted so that
    windows stay monotonic. Wall time is anchored at the first frame: media time on a file, monotonic
    time on a camera, both become UTC for the message, and never later than now: a file processed faster
    than real time would otherwise stamp windows in the future, which a collector refuses (reason `clock`).
    Such windows end at the moment they close instead (shorter on the wall clock than in the media).
    """

    def __init__(self) -> None:
        self.last: float | None = None
        self.dt: float | None = None  # seconds since the previous accepted frame; None for the first
        self.out_of_order = 0
        self.ahead = 0  # times that would have been ahead of the wall clock, stamped now instead
        self._anchor: tuple[float, datetime] | None = None

    def accept(self, t: float) -> bool:
        if self.last is not None and t < self.last:
            self.out_of_order += 1
            log.debug("frame at %.3f s is older than the last (%.3f s); skipped", t, self.last)
            return False
        if self._anchor is None:
            self._anchor = (t, utcnow())
        self.dt = None if self.last is None else t - self.last
        self.last = t
        return True

    def wall(self, t: float) -> datetime:
        assert self._anchor is not None, "wall() before the first frame"
        t0, wall0 = self._anchor
        stamped = wall0 + timedelta(seconds=t - t0)
        now = utcnow()
        if stamped <= now:
            return stamped
        if not self.ahead:
            log.info("input runs ahead of the wall clock (a file faster than real time): window times end at now")
        self.ahead += 1
        return now


class WindowClock:
    """Cuts time into windows [origin + k·length, origin + (k+1)·length); the origin is the first timestamp."""

    def __init__(self, length_s: float) -> None:
        if not length_s > 0:
            raise ValueError(f"window length must be positive, got {length_s}")
        self.length_s = length_s
        self.origin: float | None = None
        self.index = 0  # the open window

    def start(self, index: int | None = None) -> float:
        assert self.origin is not None
        return self.origin + (self.index if index is None else index) * self.length_s

    def end(self, index: int | None = None) -> float:
        return self.start(index) + self.length_s

    def advance(self, t: float) -> list[tuple[float, float]]:
        """Move to the window holding `t`; returns the (start, end) of each window that closed (oldest first)."""
        if self.origin is None:
            self.origin = t
            return []
        closed = []
        target = max(self.index, math.floor((t - self.origin) / self.length_s))
        while self.index < target:
            closed.append((self.start(), self.end()))
            self.index += 1
        return closed


M = TypeVar("M")


def close_windows(clock: WindowClock, t: float, close: Callable[[float, float], M | None]) -> list[M]:
    """Advance `clock` to `t` and build the message of each window that closed, oldest first (`close` may
    return None for a window with nothing to report)."""
    return [message for start, end in clock.advance(t) if (message := close(start, end)) is not None]


class SustainedRun:
    """Tracks a run of "at risk" frames over time; a run survives measurement gaps up to `max_gap_s`.

    Runs carry across windows, so a sustained-risk limit longer than a window still works; `window_flag()`
    says whether a run reached `min_duration_s` during the window and starts the next window's flag.
    """

    def __init__(self, min_duration_s: float, max_gap_s: float = 2.0) -> None:
        self.min_duration_s = min_duration_s
        self.max_gap_s = max_gap_s
        self.run_start: float | None = None
        self.last_risk: float | None = None
        self.longest_s = 0.0  # longest run seen in the current window (its part up to now)
        self._flag = False

    def update(self, t: float, at_risk: bool | None) -> None:
        """`at_risk` None = not measured in this frame: a gap, which ends the run only once it is longer than
        `max_gap_s` since the run's last at-risk frame (so `max_gap_s` must exceed the frame interval)."""
        if self.last_risk is not None and t - self.last_risk > self.max_gap_s:
            self.run_start = self.last_risk = None
        if at_risk is None:
            return
        if not at_risk:
            self.run_start = self.last_risk = None
            return
        if self.run_start is None:
            self.run_start = t
        self.last_risk = t
        duration = t - self.run_start
        self.longest_s = max(self.longest_s, duration)
        if duration >= self.min_duration_s:
            self._flag = True

    @property
    def duration_s(self) -> float:
        """Length of the run in progress (0 when none)."""
        if self.run_start is None or self.last_risk is None:
            return 0.0
        return self.last_risk - self.run_start

    def window_flag(self) -> bool:
        """Whether a run was sustained in the window just closed; resets for the next window."""
        flag, self._flag = self._flag, False
        self.longest_s = self.duration_s
        return flag


class BandChanges:
    """Counts changes of band, a new band counting only once it has held for `min_hold_s` (no jitter)."""

    def __init__(self, min_hold_s: float = 0.0) -> None:
        self.min_hold_s = min_hold_s
        self.current: str | None = None
        self._candidate: str | None = None
        self._since = 0.0
        self.changes = 0  # in the current window

    def update(self, t: float, band: str | None) -> None:
        if band is None:
            return
        if self.current is None:
            self.current = band
            return
        if band == self.current:
            self._candidate = None
            return
        if band != self._candidate:
            self._candidate, self._since = band, t
        if t - self._since >= self.min_hold_s:
            self.current, self._candidate = band, None
            self.changes += 1

    def take(self) -> int:
        """Changes counted in the window just closed; resets the count (the current band carries on)."""
        n, self.changes = self.changes, 0
        return n


@dataclass
class MetricWindow:
    """One metric within one window: its valid values and their bands."""

    thresholds: BandThresholds
    values: list[float] = field(default_factory=list)
    bands: list[str] = field(default_factory=list)

    def add(self, value: float) -> str:
        band = band_of(value, self.thresholds)
        self.values.append(value)
        self.bands.append(band)
        return band

    def summary(self) -> tuple[Distribution, dict[str, float]]:
        return distribution(self.values), band_fractions(self.bands)

    def clear(self) -> None:
        self.values.clear()
        self.bands.clear()
