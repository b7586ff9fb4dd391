"""Procedural composer: one plan segment -> a General MIDI arrangement (a pretty_midi object).

The segment's fields drive everything: ``bpm`` sets the beat grid, ``key`` the scale and the
chords, ``style`` the instruments, grooves, progressions and playing patterns (``styles.py``),
``energy`` / ``energy_curve`` how many layers play and how hard (per bar), ``accents`` where a
crash and a fill (or, without drums, a restruck chord) mark a scene cut, ``instruments`` which GM
instruments take the melodic roles.

Time 0 of the MIDI is the segment start and bar 0 starts there. Notes start and end inside
``[0, duration)``; the synthesizer's release rings on into the clip's tail. The same (plan, index,
seed) always gives the same MIDI: every random choice comes from one ``random.Random`` seeded
from the seed and the index, in a fixed order.

This module assembles the parts: ``grid.py`` (beat and bar times), ``harmony.py`` (keys, chords,
voicing), ``patterns.py`` (drum kit and what each role plays in a bar), ``roles.py`` (which GM
instrument plays which role, at what level).
"""


from __future__ import annotations

import bisect
import random
import statistics

import pretty_midi

from musicvid_core.domain.errors import GenerationError
from musicvid_core.domain.plan import Plan
from musicvid_core.domain.styles import ROLES
from musicvid_core.stages.compose.grid import STEPS_PER_BEAT, beat_grid
from musicvid_core.stages.compose.harmony import SCALES, Chord, chord_from_numeral, parse_key, place_pitch, voice_chord
from musicvid_core.stages.compose.patterns import (
    BASS_PATTERNS,
    CADENCES,
    CHORD_PATTERNS,
    DRUM_NOTES,
    DRUM_VELOCITY,
    HIT_SCALE,
    LEAD_RHYTHMS,
    LOOPING_RHYTHMS,
    MELODY_MOVES,
    MOVE_WEIGHTS,
    TIMEKEEPERS,
)
from musicvid_core.stages.compose.roles import ROLE_PAN, ROLE_VELOCITY, assign_roles, plucked, volume_cc
from musicvid_core.stages.plan.prompt import resolve_style

__all__ = ["compose_segment"]

FILL_STEPS = 1  # fills are 16th-note rolls ...
DENSE_ACCENT_BEATS = 2.0  # ... but with accents a median of fewer beats apart (fast cutting), one note a beat
MIN_NOTE_S = 0.01
DRUM_NOTE_S = 0.12

# Energy thresholds for the drum groove levels (below min_energy["drums"]: no drums at all).
LIGHT_BELOW, MAIN_BELOW = 0.45, 0.78
PHRASE_BARS = 4


def compose_segment(plan: Plan, index: int, seed: int) -> pretty_midi.PrettyMIDI:
    """The MIDI arrangement of segment ``index`` of ``plan``: time 0 = the segment start, notes
    inside [0, segment duration) seconds. Deterministic in (plan, index, seed). Raises
    GenerationError for an index outside the plan or an unreadable key."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(plan.segments):
        raise GenerationError(f"segment index {index!r} is outside the plan (0..{len(plan.segments) - 1})",
                              index=index)
    return _Composer(plan, index, seed).compose()


class _Composer:
    def __init__(self, plan: Plan, index: int, seed: int) -> None:
        self.seg = seg = plan.segments[index]
        self.index = index
        self.style = resolve_style(seg.style, seg.prompt)
        # Hash-free seed derivation: stable across processes (unlike hash()) and distinct per segment.
        # A re-rolled segment (variation > 0) draws a different, still reproducible, sequence.
        self.rng = random.Random(seed * 1_000_003 + index + seg.variation * 1_000_000_007)
        self.grid = beat_grid(seg.bpm, seg.duration, beats=[b - seg.start for b in seg.beats] or None)
        self.duration = seg.duration
        self.tonic, self.mode = parse_key(seg.key)
        self.roles, self.named = assign_roles(self.style, seg.instruments)
        progression = self.rng.choice(self.style.progressions[self.mode])
        self.progression = [chord_from_numeral(n, self.tonic, self.mode) for n in progression]
        self.instruments: dict[str, pretty_midi.Instrument] = {}
        self.fill_windows: list[tuple[float, float]] = []  # (start, end) s where the groove yields
        self.fill_steps = FILL_STEPS  # 16th notes between two fill notes (a beat's worth in fast cutting)
        self.sections: list[int] = []  # bars where an accent on the bar line restarts the harmony

    # --- helpers ---------------------------------------------------------------------------
    def energy(self, bar: int) -> float:
        curve = self.seg.energy_curve
        return curve[min(bar, len(curve) - 1)] if curve else self.seg.energy

    def plays(self, role: str, e: float) -> bool:
        if role not in self.roles:
            return False
        default = 0.2 if role == "drums" else 0.0
        return role in self.named or e >= self.style.min_energy.get(role, default)

    def chord(self, bar: int) -> Chord:
        # A strong accent on a bar line opens a new section: the progression starts again there.
        since = bar - max((b for b in self.sections if b <= bar), default=0)
        return self.progression[(since // self.style.bars_per_chord) % len(self.progression)]

    def t(self, bar: int, step: float) -> float:
        """Seconds of ``step`` in ``bar`` with the style's swing applied to off-beat notes."""
        style, whole = self.style, int(step)
        if style.swing and whole == step:
            if style.swing_unit == 8 and whole % 4 == 2:
                step += 2 * style.swing
            elif style.swing_unit == 16 and whole % 2 == 1:
                step += style.swing
        return self.grid.time(bar, step)

    def jitter(self, scale: float = 1.0) -> float:
        s = self.style.humanize_s * scale
        return max(-2 * s, min(2 * s, self.rng.gauss(0.0, s))) if s else 0.0

    def vel(self, base: float, e: float, mult: float = 1.0) -> int:
        v = base * mult * (0.55 + 0.5 * e) + self.rng.uniform(-3.0, 3.0)
        return int(max(1, min(127, round(v))))

    def instrument(self, role: str) -> pretty_midi.Instrument:
        if role not in self.instruments:
            inst = pretty_midi.Instrument(program=self.roles[role], is_drum=role == "drums", name=role)
            inst.control_changes += [pretty_midi.ControlChange(7, volume_cc(self.style.level_db(role)), 0.0),
                                     pretty_midi.ControlChange(10, ROLE_PAN[role], 0.0)]
            self.instruments[role] = inst
        return self.instruments[role]

    def note(self, role: str, pitch: int, start: float, end: float, velocity: int) -> None:
        """Add a note, kept inside [0, duration): the tail past the end is the synth's release."""
        start = max(0.0, start)
        end = min(end, self.duration)
        if start >= self.duration - MIN_NOTE_S or not 0 <= pitch <= 127:
            return
        end = max(end, start + MIN_NOTE_S)
        self.instrument(role).notes.append(pretty_midi.Note(velocity, pitch, start, end))

    # --- the parts -------------------------------------------------------------------------
    def compose(self) -> pretty_midi.PrettyMIDI:
        pm = pretty_midi.PrettyMIDI(initial_tempo=self.seg.bpm)
        pm.time_signature_changes.append(pretty_midi.TimeSignature(self.grid.meter, 4, 0.0))
        pm.key_signature_changes.append(
            pretty_midi.KeySignature(pretty_midi.key_name_to_key_number(self.seg.key), 0.0))
        accents = self._accent_times()
        self.sections = sorted({self.grid.bar_at(t) for t in accents
                                if any(abs(t - b) < 1e-3 for b in self.grid.bars)} - {0})
        self._plan_fills(accents)
        # Fixed order: each part draws from the one RNG, so the order is part of determinism.
        self._drums()
        self._bass()
        self._chords()
        self._pad()
        self._lead()
        self._accents(accents)
        self._lock_cuts(accents)
        for role in ROLES:  # stable instrument order in the file
            if role in self.instruments and self.instruments[role].notes:
                inst = self.instruments[role]
                _untangle(inst)
                pm.instruments.append(inst)
        return pm

    def _lock_cuts(self, accents: list[float]) -> None:
        """Humanising never moves a beat that lands on a cut: drum and bass notes that the jitter
        pushed off an accent (within its +-2 sigma clamp) go back onto it exactly, the rest keep
        their feel. (Chords keep their strums: the rhythm section is what marks the beat.)"""
        window = 2 * self.style.humanize_s + 1e-4
        if not accents or window <= 1e-4:
            return
        for role in ("drums", "bass"):
            for n in self.instruments[role].notes if role in self.instruments else ():
                k = bisect.bisect_left(accents, n.start)
                near = min((accents[i] for i in (k - 1, k) if 0 <= i < len(accents)), key=lambda a: abs(a - n.start))
                if 0 < abs(near - n.start) <= window:
                    n.end, n.start = max(near + MIN_NOTE_S, min(self.duration, n.end + near - n.start)), near

    def _accent_times(self) -> list[float]:
        """Segment-relative seconds to mark: the segment start (after the first) and every cut or
        hit (the planner's grid puts fitted cuts exactly on a beat; an accent within a 16th note of
        a beat is moved onto it, one further away is marked where it is)."""
        times = [0.0] if self.index > 0 else []
        for a in self.seg.accents:
            t = a - self.seg.start
            beat = self.grid.beats[self.grid.nearest_beat(t)]
            times.append(beat if abs(beat - t) <= self.grid.step_s else t)
        out: list[float] = []
        for t in sorted(x for x in times if 0.0 <= x < self.duration - MIN_NOTE_S):
            if not out or t - out[-1] > self.grid.step_s:
                out.append(t)
        return out

    def _plan_fills(self, accents: list[float]) -> None:
        """Windows where a fill replaces the groove: the beat before each accent, and the end of
        every phrase that leads into another bar at medium-high energy."""
        g = self.grid
        if "drums" not in self.roles:
            return
        gaps = [b - a for a, b in zip(accents, accents[1:])]
        if len(gaps) >= 2 and statistics.median(gaps) < DENSE_ACCENT_BEATS * g.beat_s:
            # A cut every beat or two: 16th rolls would fill most bars and hide the pulse (a listener's
            # and a beat tracker's); lead-ins on the beat keep it.
            self.fill_steps = STEPS_PER_BEAT
        for t in accents:  # the fill starts on the last beat at least two 16ths before the accent
            before = [b for b in g.beats if b <= t - 2 * g.step_s + 1e-6]
            if before and t - before[-1] <= 2 * g.beat_s:
                self.fill_windows.append((before[-1], t))
        for bar in range(PHRASE_BARS - 1, len(g.bars) - 1, PHRASE_BARS):
            e = self.energy(bar)
            if self.plays("drums", e) and e >= 0.5:
                steps = 8 if e >= 0.8 else 4
                end = g.bars[bar + 1]
                if not any(a - 1e-6 <= end <= b + 1e-6 for a, b in self.fill_windows):
                    self.fill_windows.append((g.time(bar, 16 - steps), end))

    def _in_fill(self, t: float) -> bool:
        return any(a - 1e-6 <= t < b - 1e-6 for a, b in self.fill_windows)

    def _groove(self, e: float) -> dict[str, str]:
        grooves = self.style.grooves
        if e >= MAIN_BELOW and "peak" in grooves:
            return grooves["peak"]
        if e >= LIGHT_BELOW:
            return grooves["main"]
        light = {}
        for drum, pattern in grooves["main"].items():
            if drum in TIMEKEEPERS:
                light[drum] = pattern.replace("X", "x")
            elif drum in ("kick", "kick2"):
                light[drum] = pattern[0] + "." * (len(pattern) - 1)
        return light

    def _drums(self) -> None:
        if "drums" not in self.roles or not self.style.grooves:
            return
        g = self.grid
        for bar in range(len(g.bars)):
            e = self.energy(bar)
            if not self.plays("drums", e):
                continue
            for drum, pattern in self._groove(e).items():
                for step, hit in enumerate(pattern):
                    if hit == ".":
                        continue
                    t = self.t(bar, step) + self.jitter(0.3)
                    if drum != "kick" and self._in_fill(t):
                        continue
                    v = self.vel(DRUM_VELOCITY[drum], e, HIT_SCALE[hit])
                    self.note("drums", DRUM_NOTES[drum], t, t + DRUM_NOTE_S, v)
            if bar % PHRASE_BARS == 0 and bar > 0 and e >= 0.6:  # a new phrase opens on a crash
                self.note("drums", DRUM_NOTES["crash"], g.bars[bar], g.bars[bar] + DRUM_NOTE_S,
                          self.vel(DRUM_VELOCITY["crash"], e, 0.85))
        for a, b in self.fill_windows:
            if a >= 0 and self.plays("drums", self.energy(g.bar_at(a))):
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

    def _bass(self) -> None:
        if "bass" not in self.roles:
            return
        g, style = self.grid, self.style
        lo, hi = style.register("bass")
        pattern = BASS_PATTERNS[style.bass_pattern]
        prev_root = lo + 7
        for bar in range(len(g.bars)):
            e = self.energy(bar)
            if not self.plays("bass", e):
                continue
            chord = self.chord(bar)
            root = place_pitch(chord.root, lo, max(lo + 11, hi - 12), prev_root)
            prev_root = root
            next_root = place_pitch(self.chord(bar + 1).root, lo, max(lo + 11, hi - 12), root)
            for step, length, tones in pattern(e, self.rng):
                start = self.t(bar, step) + self.jitter()
                end = self.t(bar, step + length) - 0.02 * g.step_s * length
                for tone in tones:
                    pitch = self._bass_tone(tone, chord, root, next_root)
                    while pitch > hi:
                        pitch -= 12
                    self.note("bass", pitch, start, end, self.vel(ROLE_VELOCITY["bass"], e,
                                                                   1.0 if step % 8 == 0 else 0.88))

    def _bass_tone(self, tone: str, chord: Chord, root: int, next_root: int) -> int:
        if tone == "R":
            return root
        if tone == "F":
            return root + chord.fifth
        if tone == "O":
            return root + 12
        if tone == "T":
            return root + 12 + chord.third
        if tone == "A":  # a semitone above or below where the next bar's root lands
            return next_root + self.rng.choice((-1, 1))
        if tone == "S":  # the scale tone just above or below the next root
            return self.scale_neighbour(next_root, self.rng.choice((-1, 1)))
        # "W": a walking tone: the chord's third or fifth, or the scale tone under the fifth
        return self.rng.choice((root + chord.third, root + chord.fifth,
                                self.scale_neighbour(root + chord.fifth + 3, -1)))

    def scale_neighbour(self, pitch: int, direction: int) -> int:
        """The nearest pitch of the key's scale strictly above (direction 1) or below (-1) ``pitch``."""
        scale = {(self.tonic + s) % 12 for s in SCALES[self.mode]}
        p = pitch + direction
        while p % 12 not in scale:
            p += direction
        return p

    def _chords(self) -> None:
        if "chords" not in self.roles:
            return
        g, style = self.grid, self.style
        name = style.chord_pattern
        if name == "sustain" and plucked(self.roles["chords"]):
            name = "arpeggio"  # a held piano or guitar chord just dies away: break it instead
        pattern = CHORD_PATTERNS[name]
        register = style.register("chords")
        voicing: list[int] | None = None
        for bar in range(len(g.bars)):
            e = self.energy(bar)
            chord_start = bar % style.bars_per_chord == 0
            if chord_start or voicing is None:
                voicing = voice_chord(self.chord(bar), register, style.spread, voicing)
            if not self.plays("chords", e):
                continue
            span = 16 * min(style.bars_per_chord, len(g.bars) - bar)
            order = list(range(len(voicing))) + list(range(len(voicing) - 2, 0, -1))
            for step, length, mult, how in pattern(e, self.rng, span, chord_start):
                start = self.t(bar, step) + self.jitter()
                end = self.grid.time(bar, step + length) - 0.02 * g.step_s * length
                v = self.vel(ROLE_VELOCITY["chords"], e, mult)
                if how.startswith("arp"):
                    self.note("chords", voicing[order[int(how[3:]) % len(order)]], start, end, v)
                elif how == "up":  # an up-strum catches the top strings, high to low, softer
                    for k, p in enumerate(reversed(voicing[-3:])):
                        self.note("chords", p, start + 0.01 * k, end, max(1, v - 8))
                else:  # block chord; a down-strum spreads it low to high
                    spread_s = 0.012 if how == "down" else 0.0
                    for k, p in enumerate(voicing):
                        self.note("chords", p, start + spread_s * k, end, v)

    def _pad(self) -> None:
        if "pad" not in self.roles:
            return
        g, style = self.grid, self.style
        voicing: list[int] | None = None
        for bar in range(0, len(g.bars), style.bars_per_chord):
            e = self.energy(bar)
            voicing = voice_chord(self.chord(bar), style.register("pad"), "open", voicing)
            if not self.plays("pad", e):
                continue
            end = g.time(bar, 16 * style.bars_per_chord) - 0.01
            v = self.vel(ROLE_VELOCITY["pad"], e)
            for p in voicing:
                self.note("pad", p, g.bars[bar] + self.jitter(), end, v)

    def _lead(self) -> None:
        if "lead" not in self.roles:
            return
        g, style, rng = self.grid, self.style, self.rng
        lo, hi = style.register("lead")
        scale = {(self.tonic + s) % 12 for s in SCALES[self.mode]}
        pitches = [p for p in range(lo, hi + 1) if p % 12 in scale]
        cells = LEAD_RHYTHMS[style.lead_rhythm]
        looping = style.lead_rhythm in LOOPING_RHYTHMS
        idx = len(pitches) // 2
        motif: tuple | None = None
        for bar in range(len(g.bars)):
            e = self.energy(bar)
            if not self.plays("lead", e):
                motif = None  # the melody re-enters with a fresh phrase
                continue
            pos = bar % PHRASE_BARS
            if motif is None or pos == 0:
                motif = rng.choice(cells)
                moves = [rng.choices(MELODY_MOVES, MOVE_WEIGHTS)[0] for _ in range(8)]
                answer = motif if looping else rng.choice(cells)
                # Each phrase starts halfway back to the middle of the register, so a long
                # melody wanders but never drifts off to one end; a riff restarts here every bar.
                anchor = idx = (idx + len(pitches) // 2) // 2
            last_bar = bar == len(g.bars) - 1
            cadence = not looping and (pos == PHRASE_BARS - 1 or last_bar)
            cell = rng.choice(CADENCES) if cadence else answer if pos == 2 else motif
            chord_pcs = {(self.chord(bar).root + i) % 12 for i in self.chord(bar).intervals}
            keep = min(1.0, 0.25 + 0.5 * style.density + 0.45 * e)
            for i, (step, length) in enumerate(cell):
                if i and not (cadence or looping) and rng.random() > keep:
                    continue  # thin the line at low energy (a riff stays whole)
                if i == 0:  # each bar starts on a chord tone
                    idx = _nearest(pitches, anchor if looping else idx, chord_pcs)
                else:
                    # Motif bars reuse the phrase's steps (a recognisable sequence); the answer
                    # bar invents its own.
                    move = rng.choices(MELODY_MOVES, MOVE_WEIGHTS)[0] if pos == 2 and not looping else moves[i]
                    idx += move
                    if not 0 <= idx < len(pitches):  # bounce off the register's edge
                        idx -= 2 * move
                        moves = [-m for m in moves]
                        idx = max(0, min(len(pitches) - 1, idx))
                if step % 8 == 0 or (cadence and i == len(cell) - 1):
                    idx = _nearest(pitches, idx, chord_pcs)
                start = self.t(bar, step) + self.jitter()
                legato = 0.6 if looping else 0.95
                end = start + length * g.step_s * legato
                shape = (1.0, 1.03, 1.08, 0.95)[pos]
                self.note("lead", pitches[idx], start, end,
                          self.vel(ROLE_VELOCITY["lead"], e, shape * (1.0 if i == 0 else 0.9)))

    def _accents(self, accents: list[float]) -> None:
        """Mark cuts: a crash on the kick after the fill with drums, else a restruck chord over a
        low root."""
        g = self.grid
        for t in accents:
            bar = g.bar_at(t)
            e = max(0.5, self.energy(bar))
            if "drums" in self.roles:
                for drum in ("crash", "kick"):
                    self.note("drums", DRUM_NOTES[drum], t, t + DRUM_NOTE_S,
                              self.vel(DRUM_VELOCITY[drum], e))
                continue
            chord = self.chord(bar)
            if "chords" in self.roles:
                for p in voice_chord(chord, self.style.register("chords"), self.style.spread):
                    self.note("chords", p, t, t + g.beat_s, self.vel(ROLE_VELOCITY["chords"], e, 1.1))
            if "bass" in self.roles:
                lo = self.style.register("bass")[0]
                self.note("bass", place_pitch(chord.root, lo, lo + 11, lo), t, t + 2 * g.beat_s,
                          self.vel(ROLE_VELOCITY["bass"], e, 1.1))



def _nearest(pitches: list[int], idx: int, pcs: set[int]) -> int:
    """Index of the pitch nearest ``pitches[idx]`` whose class is in ``pcs`` (else ``idx``)."""
    options = [i for i, p in enumerate(pitches) if p % 12 in pcs]
    return min(options, key=lambda i: (abs(i - idx), i)) if options else idx


def _untangle(inst: pretty_midi.Instrument) -> None:
    """Sort notes and cut a note short where the same pitch starts again: a synthesizer releases
    every voice of a key on its note-off, which would silence the new note too."""
    inst.notes.sort(key=lambda n: (n.start, n.pitch))
    last: dict[int, pretty_midi.Note] = {}
    keep = []
    for n in inst.notes:
        prev = last.get(n.pitch)
        if prev is not None and prev.end > n.start:
            prev.end = n.start
        keep.append(n)
        last[n.pitch] = n
    inst.notes = [n for n in keep if n.end - n.start >= MIN_NOTE_S / 2]
