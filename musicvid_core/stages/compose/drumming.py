"""The drum part of the composer: grooves by energy and section, ghost strokes, fills at phrase and
section ends and before each cut (a mixin of ``composer._Composer``, which supplies the grid, the
style, the RNG, the arrangement and ``note``/``t``/``vel``/``jitter``/``energy``/``plays``).

Times are seconds from the segment start; every random draw comes from the composer's one RNG in
a fixed order (part of its determinism).
"""

from __future__ import annotations

import statistics

from musicvid_core.stages.compose.grid import STEPS_PER_BEAT
from musicvid_core.stages.compose.patterns import DRUM_NOTES, DRUM_VELOCITY, HIT_SCALE, TIMEKEEPERS
from musicvid_core.stages.compose.performance import GHOST_CHANCE, GHOST_STEPS, GHOST_VELOCITY

__all__ = ["DRUM_NOTE_S", "FILL_STEPS", "LIGHT_BELOW", "MAIN_BELOW", "PHRASE_BARS", "DrumPart", "dense_cutting"]

FILL_STEPS = 1  # fills are 16th-note rolls ...
DENSE_ACCENT_BEATS = 2.0  # ... but with accents a median of fewer beats apart (fast cutting), one note a beat
DRUM_NOTE_S = 0.12
# Energy thresholds for the drum groove levels (below min_energy["drums"]: no drums at all).
LIGHT_BELOW, MAIN_BELOW = 0.45, 0.78
PHRASE_BARS = 4


def dense_cutting(accents: list[float], beat_s: float) -> bool:
    """Cuts a median of fewer than DENSE_ACCENT_BEATS beats apart (``accents`` in seconds, sorted)."""
    gaps = [b - a for a, b in zip(accents, accents[1:])]
    return len(gaps) >= 2 and statistics.median(gaps) < DENSE_ACCENT_BEATS * beat_s


class DrumPart:
    """The drum methods of the composer (see the module docstring for what the host supplies)."""

    def _plan_fills(self, accents: list[float]) -> None:
        """Windows where a fill replaces the groove: the beat before each accent, the end of every
        phrase that leads into another bar at medium-high energy, and the end of a section that leads
        into another (a build's into its peak: two beats)."""
        g = self.grid
        if "drums" not in self.roles:
            return
        if self.dense:
            # A cut every beat or two: 16th rolls would fill most bars and hide the pulse (a listener's
            # and a beat tracker's); lead-ins on the beat keep it.
            self.fill_steps = STEPS_PER_BEAT
        for t in accents:  # the fill starts on the last beat at least two 16ths before the accent
            before = [b for b in g.beats if b <= t - 2 * g.step_s + 1e-6]
            if before and t - before[-1] <= 2 * g.beat_s:
                self.fill_windows.append((before[-1], t))
        turns = {b for b in range(len(g.bars) - 1) if self.section(b + 1).name not in (self.section(b).name, "outro")}
        if self.section(len(g.bars) - 1).name == "build":  # into the next segment's peak
            turns.add(len(g.bars) - 1)
        for bar in sorted(set(range(PHRASE_BARS - 1, len(g.bars) - 1, PHRASE_BARS)) | turns):
            e = self.energy(bar)
            if self.plays("drums", bar) and (e >= 0.5 or bar in turns and e >= 0.35):
                steps = 8 if e >= 0.8 or self.section(bar).name == "build" else 4
                end = g.bars[bar + 1] if bar + 1 < len(g.bars) else self.duration
                if not any(a - 1e-6 <= end <= b + 1e-6 for a, b in self.fill_windows):
                    self.fill_windows.append((g.time(bar, 16 - steps), end))

    def _in_fill(self, t: float) -> bool:
        return any(a - 1e-6 <= t < b - 1e-6 for a, b in self.fill_windows)

    def _groove(self, e: float, section: str = "B") -> dict[str, str]:
        grooves = self.style.grooves
        if e >= MAIN_BELOW and "peak" in grooves and section not in ("intro", "outro"):
            return grooves["peak"]
        if e >= LIGHT_BELOW and section not in ("intro", "outro"):
            return grooves["main"]
        # An intro or outro keeps the main kick under the light time-keeping: with the downbeat
        # alone, house's off-beat open hat led the beat tracker onto the off-beats, and its
        # backtracking carried that phase through the whole stem (cut hits 29 % on the regular video).
        full_kick = section in ("intro", "outro")
        light = {}
        for drum, pattern in grooves["main"].items():
            if drum in TIMEKEEPERS:
                light[drum] = pattern.replace("X", "x")
            elif drum in ("kick", "kick2"):
                light[drum] = pattern if full_kick else pattern[0] + "." * (len(pattern) - 1)
        return light

    def _drums(self) -> None:
        if "drums" not in self.roles or not self.style.grooves:
            return
        g = self.grid
        for bar in range(len(g.bars)):
            e = self.energy(bar)
            if not self.plays("drums", bar):
                continue
            # The groove follows the plan's own energy, not the section's lift: a lifted peak groove or a
            # lowered light one in double time bent the tracked tempo of fast-cut segments by 3-6 %.
            groove = self._groove(self.energy(bar, lifted=False), self.section(bar).name)
            for drum, pattern in groove.items():
                for step, hit in enumerate(pattern):
                    if hit == ".":
                        continue
                    t = self.t(bar, step) + self.jitter(0.3)
                    if drum != "kick" and self._in_fill(t):
                        continue
                    v = self.vel(DRUM_VELOCITY[drum], e, HIT_SCALE[hit])
                    self.note("drums", DRUM_NOTES[drum], t, t + DRUM_NOTE_S, v)
            if "snare" in groove and e >= LIGHT_BELOW:  # ghost strokes between the backbeats
                for step in GHOST_STEPS:
                    t = self.t(bar, step) + self.jitter(0.3)
                    if self.rng.random() < GHOST_CHANCE and groove["snare"][step] == "." and not self._in_fill(t):
                        self.note("drums", DRUM_NOTES["snare"], t, t + DRUM_NOTE_S, self.rng.randint(*GHOST_VELOCITY))
            new_section = bar > 0 and self.section(bar).name != self.section(bar - 1).name
            if (bar % PHRASE_BARS == 0 and bar > 0 or new_section) and e >= 0.6:  # a new phrase opens on a crash
                self.note("drums", DRUM_NOTES["crash"], g.bars[bar], g.bars[bar] + DRUM_NOTE_S,
                          self.vel(DRUM_VELOCITY["crash"], e, 0.85))
        for a, b in self.fill_windows:
            if a >= 0 and self.plays("drums", g.bar_at(a)):
                self._fill(a, b, max(0.6, self.energy(g.bar_at(a))))

    def _fill(self, start: float, end: float, e: float) -> None:
        """Notes every ``fill_steps`` 16ths over [start, end), the style's fill drums from first to last,
        rising in velocity."""
        if not self.style.fill:
            return
        n = max(1, round((end - start) / (self.grid.step_s * self.fill_steps)))
        step = (end - start) / n  # the grid's local 16th note
        for i in range(n):
            drum = self.style.fill[min(i * len(self.style.fill) // n, len(self.style.fill) - 1)]
            t = start + i * step
            self.note("drums", DRUM_NOTES[drum], t, t + DRUM_NOTE_S,
                      self.vel(DRUM_VELOCITY[drum], e, 0.6 + 0.4 * (i + 1) / n))
