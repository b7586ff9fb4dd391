"""Arrangement: which section each bar of a segment belongs to, who plays in it, and how it ends.

Takes the plan (every segment's per-bar energy, the speech regions, the fade-out) and one segment's
beat grid; gives a :class:`Arrangement`: per bar a section (intro, A, B, build, peak, outro, end)
with the roles that may play there, an energy lift (added to the bar's energy before the composer
decides density and velocity) and a fader ride (dB, on the mix before the master bus), which bars
lie under speech, and in the last segment when the final chord is struck.

Sections follow the plan's energy, measured over the whole plan so that every segment agrees on
what "high" means, and last a four-bar phrase (a motion curve that flickers bar to bar must not
flip the band between a build and a peak every bar): phrases whose mean energy is at or above the
plan's upper quartile of phrase energies (and 0.55) are a peak, the last bar before a peak is a
build, the first bars of the video an intro, the bar before the final chord an outro, the rest
alternate A and B by phrase. The ending: the tonic struck on the last cut (or bar
line) at least the plan's fade-out before the video's end, ringing out to its last frame (the mixer
fades the last ``fade_out_s``: the fade acts on a ringing chord, never on a playing groove).

Pure functions of the plan and the grid: the composer and the generator's fader ride compute the
same arrangement independently (nothing random here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicvid_core.domain.plan import Plan
from musicvid_core.stages.compose.grid import BeatGrid

__all__ = ["SECTIONS", "Arrangement", "Section", "arrange", "ride_gain"]


@dataclass(frozen=True)
class Section:
    name: str
    roles: frozenset[str]  # roles that may play (still subject to the style's min_energy)
    lift: float  # added to the bar's energy (0..1 scale) for the parts' density and velocity (not the groove)
    ride_db: float  # fader ride (dB) on the mix before the master bus: the section against the segment


_ALL = frozenset({"drums", "bass", "chords", "pad", "lead"})
SECTIONS = {
    # Harmony alone (a light pulse where the style has drums), the bass waits.
    "intro": Section("intro", frozenset({"drums", "chords", "pad"}), 0.0, -2.0),
    "A": Section("A", frozenset({"drums", "bass", "chords", "lead"}), 0.0, -0.5),
    "B": Section("B", _ALL, 0.0, 0.0),
    # The melody rests, the band leans into the peak (a rising fader, a fill at its end).
    "build": Section("build", frozenset({"drums", "bass", "chords", "pad"}), 0.0, 0.0),
    "peak": Section("peak", _ALL, 0.1, 1.5),
    "outro": Section("outro", frozenset({"drums", "bass", "chords", "pad"}), 0.0, -1.5),
    "end": Section("end", _ALL, 0.0, 0.0),  # the final chord's ring-out
}
# Under speech the mid-range leaves the words room: no pad, no lead; chords played light.
SPEECH_DROPS = frozenset({"pad", "lead"})
SPEECH_CHORD_ENERGY = 0.3
PEAK_QUANTILE = 0.75
PEAK_MIN = 0.55
INTRO_SHARE = 0.12  # the intro is at most this share of the video ...
INTRO_MAX_BARS = 4  # ... and at most this many bars
MIN_BARS_FOR_FORM = 6  # a shorter plan is one section (B), plus its ending
OUTRO_BARS = 1
RING_MIN_S = 1.0  # the final chord rings at least this long ...
RING_SLACK_S = 1.5  # ... and at most the fade-out plus a bar, or this, whichever is less
RIDE_RAMP_S = 0.05  # a fader move lands on the section's downbeat, ramped over this long before it


@dataclass(frozen=True)
class Arrangement:
    sections: tuple[Section, ...]  # one per bar of the grid
    speech: tuple[bool, ...]  # one per bar: speech overlaps it
    end_at: float | None  # segment-relative seconds of the final chord (the last segment only)

    def section_spans(self, grid: BeatGrid) -> list[tuple[float, float, Section]]:
        """(start s, end s, section) per bar, segment-relative; the last bar runs to the duration."""
        edges = list(grid.bars) + [grid.duration]
        return [(edges[i], edges[i + 1], s) for i, s in enumerate(self.sections)]


PHRASE_BARS = 4


def _bar_energies(seg) -> list[float]:
    return list(seg.energy_curve) or [seg.energy]


def _phrase_means(energies: list[float]) -> list[float]:
    chunks = [energies[i:i + PHRASE_BARS] for i in range(0, len(energies), PHRASE_BARS)]
    return [sum(c) / len(c) for c in chunks]


def _quantile(values: list[float], q: float) -> float:
    """The value with a share ``q`` of ``values`` below it (the top one for few values)."""
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def arrange(plan: Plan, index: int, grid: BeatGrid, accents: list[float] = ()) -> Arrangement:
    """The arrangement of segment ``index`` of ``plan`` on its ``grid`` (``accents``: the composer's
    segment-relative accent times, where the ending may land). Deterministic; raises nothing for a
    valid plan."""
    seg = plan.segments[index]
    n_bars = len(grid.bars)
    curve = _bar_energies(seg)
    energies = [curve[min(b, len(curve) - 1)] for b in range(n_bars)]
    phrases = _phrase_means(energies)
    peak_at = max(PEAK_MIN, _quantile([m for s in plan.segments for m in _phrase_means(_bar_energies(s))],
                                      PEAK_QUANTILE))
    peak = [phrases[b // PHRASE_BARS] >= peak_at - 1e-9 for b in range(n_bars)]
    if index + 1 < len(plan.segments):  # the next segment's first phrase: this one's last bar may build into it
        peak.append(_phrase_means(_bar_energies(plan.segments[index + 1]))[0] >= peak_at - 1e-9)
    total_bars = sum(max(1, round(s.duration * s.bpm / 240.0)) for s in plan.segments)
    form = total_bars >= MIN_BARS_FOR_FORM
    last = index == len(plan.segments) - 1
    end_at = _ending(plan, grid, accents) if last else None
    names: list[str] = []
    for b in range(n_bars):
        t = grid.bars[b]
        if end_at is not None and t >= end_at - 1e-6:
            names.append("end")
        elif not form:
            names.append("B")
        elif index == 0 and b < min(INTRO_MAX_BARS, int(INTRO_SHARE * plan.duration / (grid.beat_s * grid.meter))):
            names.append("intro")
        elif end_at is not None and b < n_bars and grid.bar_at(end_at) - OUTRO_BARS <= b:
            names.append("outro")
        elif peak[b]:
            names.append("peak")
        elif b + 1 < len(peak) and peak[b + 1]:
            names.append("build")
        else:
            names.append("A" if (b // PHRASE_BARS) % 2 == (index % 2) else "B")
    speech = tuple(any(r.start < seg.start + hi and r.end > seg.start + lo for r in plan.speech)
                   for lo, hi in zip(grid.bars, list(grid.bars[1:]) + [grid.duration]))
    return Arrangement(tuple(SECTIONS[n] for n in names), speech, end_at)


def _ending(plan: Plan, grid: BeatGrid, accents) -> float:
    """When the final chord is struck, segment-relative seconds: the last cut, else the last bar
    line (else beat), that leaves it at least the plan's fade-out (and RING_MIN_S) to ring, and at
    most that plus a bar or RING_SLACK_S, whichever is less; 0 when the segment is shorter."""
    ring = max(plan.fade_out_s, RING_MIN_S)
    latest = grid.duration - ring
    earliest = latest - min(grid.meter * grid.beat_s, RING_SLACK_S)
    for options in (accents, grid.bars, grid.beats):
        fits = [t for t in options if earliest - 1e-6 <= t <= latest + 1e-6]
        if fits:
            return max(fits)
    return max([t for t in grid.beats if t <= latest + 1e-6] or [0.0])


def ride_gain(spans: list[tuple[float, float, Section]], n: int, sample_rate: int) -> np.ndarray:
    """Linear gain per sample (float32, ``n``) riding the fader by section: each span at its
    ``ride_db``, moved over RIDE_RAMP_S before the next section's downbeat; a build rises over its
    whole length into what follows. Past the last span the last level holds (the release tail)."""
    if not spans:
        return np.ones(n, np.float32)
    xs: list[float] = []
    ys: list[float] = []
    for i, (start, end, sec) in enumerate(spans):
        after = spans[i + 1][2].ride_db if i + 1 < len(spans) else sec.ride_db
        ramp = min(RIDE_RAMP_S, (end - start) / 2)
        xs += [start, end - ramp]
        ys += [sec.ride_db, after if sec.name == "build" else sec.ride_db]
    t = np.arange(n, dtype=np.float64) / sample_rate
    return (10 ** (np.interp(t, xs, ys) / 20)).astype(np.float32)
