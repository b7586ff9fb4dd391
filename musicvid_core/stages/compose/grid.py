"""The time grid of a segment: beat and bar start times, and the 16th-note steps between them.

Takes a tempo (beats per minute), a duration (seconds), a meter (beats per bar) and optionally the
cut-locked beat times of ``Segment.beats``; gives a :class:`BeatGrid` that turns (bar, 16th step) into
seconds from the segment start.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from musicvid_core.stages.plan.timing import nominal_grid

__all__ = ["STEPS_PER_BEAT", "BeatGrid", "beat_grid"]

STEPS_PER_BEAT = 4  # the grid is 16th notes


@dataclass(frozen=True)
class BeatGrid:
    """Beat and bar start times of a segment, seconds from its start (bar 0 starts at 0). The beats
    may be unevenly spaced (a cut-locked grid drifts a little around ``bpm``); times between beats
    are interpolated, times past the last beat continue at the last beat's length."""

    bpm: float
    meter: int
    duration: float
    beats: tuple[float, ...]  # every beat that starts inside [0, duration)
    bars: tuple[float, ...]  # every bar that starts inside [0, duration)

    @property
    def beat_s(self) -> float:
        """The nominal beat length, seconds (60 / bpm)."""
        return 60.0 / self.bpm

    @property
    def step_s(self) -> float:
        return self.beat_s / STEPS_PER_BEAT

    def beat_time(self, position: float) -> float:
        """Seconds of beat ``position`` (a beat index, may be fractional or past the end)."""
        beats = self.beats
        k = math.floor(position)
        if k < 0:
            return position * self.beat_s
        if k + 1 < len(beats):
            return beats[k] + (position - k) * (beats[k + 1] - beats[k])
        last = beats[-1] - beats[-2] if len(beats) > 1 else self.beat_s
        return beats[-1] + (position - len(beats) + 1) * last

    def time(self, bar: int, step: float) -> float:
        """Seconds of 16th-note ``step`` (may be fractional) of ``bar``, unswung."""
        return self.beat_time(bar * self.meter + step / STEPS_PER_BEAT)

    def bar_at(self, t: float) -> int:
        """Index of the bar that contains time ``t`` (seconds)."""
        return max(0, min(len(self.bars) - 1, bisect.bisect_right(self.bars, t + 1e-9) - 1))

    def nearest_beat(self, t: float) -> int:
        """Index of the beat closest to ``t`` (seconds)."""
        k = bisect.bisect_left(self.beats, t)
        options = [i for i in (k - 1, k) if 0 <= i < len(self.beats)]
        return min(options, key=lambda i: abs(self.beats[i] - t))


def beat_grid(bpm: float, duration: float, meter: int = 4, beats: list[float] | None = None) -> BeatGrid:
    """The beat/bar grid of a segment: ``bpm`` beats per minute, ``duration`` seconds, ``meter``
    beats per bar; ``beats`` (seconds from the segment start, the cut-locked grid of
    ``Segment.beats``) when given, else an even grid. The one place beat times are computed.
    Raises ValueError for a non-positive argument or beats that do not start at 0 and increase."""
    if bpm <= 0 or duration <= 0 or meter < 1:
        raise ValueError(f"beat grid needs positive bpm, duration and meter, got {bpm}, {duration}, {meter}")
    if beats:
        if abs(beats[0]) > 1e-3 or any(b <= a for a, b in zip(beats, beats[1:])):
            raise ValueError("beats must start at 0 and strictly increase")
        grid = tuple(b for b in beats if b < duration)
    else:
        grid = nominal_grid(bpm, duration)
    return BeatGrid(bpm=bpm, meter=meter, duration=duration, beats=grid, bars=grid[::meter])
