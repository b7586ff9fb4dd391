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
"""

from __future__ import annotations

import bisect
import math
import random
import re
import statistics
from dataclasses import dataclass

import pretty_midi

from musicvid_core.domain.errors import GenerationError
from musicvid_core.domain.plan import Plan
from musicvid_core.domain.styles import ROLES, Style, instrument_program
from musicvid_core.stages.plan.prompt import resolve_style
from musicvid_core.stages.plan.timing import nominal_grid

STEPS_PER_BEAT = 4  # the grid is 16th notes
FILL_STEPS = 1  # fills are 16th-note rolls ...
DENSE_ACCENT_BEATS = 2.0  # ... but with accents a median of fewer beats apart (fast cutting), one note a beat
MIN_NOTE_S = 0.01
DRUM_NOTE_S = 0.12

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

# GM percussion key numbers and the velocity each drum gets at full energy on an accented hit.
DRUM_NOTES = {"kick": 36, "kick2": 35, "snare": 38, "rim": 37, "clap": 39, "hat": 42, "pedal": 44,
              "ohat": 46, "ride": 51, "crash": 49, "tom_lo": 43, "tom_mid": 47, "tom_hi": 50,
              "shaker": 70, "tamb": 54}
DRUM_VELOCITY = {"kick": 112, "kick2": 100, "snare": 104, "rim": 84, "clap": 100, "hat": 80,
                 "pedal": 70, "ohat": 84, "ride": 86, "crash": 108, "tom_lo": 104, "tom_mid": 100,
                 "tom_hi": 98, "shaker": 74, "tamb": 82}
HIT_SCALE = {"X": 1.0, "x": 0.8, "o": 0.45}
# Drums that keep time: the only ones (with the downbeat kick) left in the low-energy groove.
TIMEKEEPERS = ("hat", "ohat", "ride", "shaker", "pedal")

ROLE_VELOCITY = {"bass": 96, "chords": 80, "pad": 66, "lead": 94}
ROLE_PAN = {"drums": 64, "bass": 64, "chords": 46, "pad": 82, "lead": 72}  # CC10, 64 = centre

# Energy thresholds for the drum groove levels (below min_energy["drums"]: no drums at all).
LIGHT_BELOW, MAIN_BELOW = 0.45, 0.78
PHRASE_BARS = 4


# ---------------------------------------------------------------------------------------------
# time grid
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# harmony
# ---------------------------------------------------------------------------------------------
def parse_key(key: str) -> tuple[int, str]:
    """("F# minor") -> (tonic pitch class 0..11, "minor"); GenerationError if unreadable."""
    m = re.match(r"^([A-G])([#b]?) (major|minor)$", key)
    if not m:
        raise GenerationError(f"cannot read the key {key!r}; expected e.g. 'A minor' or 'F# major'")
    shift = {"#": 1, "b": -1, "": 0}[m[2]]
    return (_LETTERS[m[1]] + shift) % 12, m[3]


@dataclass(frozen=True)
class Chord:
    root: int  # pitch class 0..11
    intervals: tuple[int, ...]  # semitones above the root, ascending, starting with 0

    @property
    def third(self) -> int:
        return self.intervals[1]

    @property
    def fifth(self) -> int:
        return next((i for i in (7, 6, 8) if i in self.intervals), 7)


_NUMERAL = re.compile(r"^([b#]?)(VII|VI|V|IV|III|II|I|vii|vi|v|iv|iii|ii|i)([°ø+]?)(maj7|add9|sus2|sus4|7|6|9)?$")
_DEGREE = {"i": 0, "ii": 1, "iii": 2, "iv": 3, "v": 4, "vi": 5, "vii": 6}


def chord_from_numeral(numeral: str, tonic: int, mode: str) -> Chord:
    """A roman numeral ("V7", "bVII", "iiø7", "IVadd9") in a key -> Chord. ValueError if unknown."""
    m = _NUMERAL.match(numeral)
    if not m:
        raise ValueError(f"unknown roman numeral {numeral!r}")
    accidental, degree, quality, ext = m.groups()
    root = (tonic + SCALES[mode][_DEGREE[degree.lower()]] + {"b": -1, "#": 1, "": 0}[accidental]) % 12
    tones = {"°": [0, 3, 6], "ø": [0, 3, 6, 10], "+": [0, 4, 8]}.get(
        quality, [0, 4, 7] if degree.isupper() else [0, 3, 7])
    if ext == "maj7":
        tones.append(11)
    elif ext == "7":
        tones.append(9 if quality == "°" else 10)
    elif ext == "6":
        tones.append(9)
    elif ext == "9":
        tones += [10, 14]
    elif ext == "add9":
        tones.append(14)
    elif ext in ("sus2", "sus4"):
        tones[1] = 2 if ext == "sus2" else 5
    return Chord(root, tuple(sorted(set(tones))))


def _place(pc: int, lo: int, hi: int, near: float) -> int:
    """The pitch of class ``pc`` inside [lo, hi] closest to ``near`` (the lowest one >= lo when the
    range holds none)."""
    options = [p for p in range(lo, hi + 1) if p % 12 == pc]
    if not options:
        return lo + (pc - lo) % 12
    return min(options, key=lambda p: (abs(p - near), p))


def voice_chord(chord: Chord, register: tuple[int, int], spread: str,
                prev: list[int] | None = None) -> list[int]:
    """MIDI pitches for ``chord`` inside ``register``: the inversion that moves least from ``prev``
    (smooth voice leading), near the register's centre, shaped by ``spread``."""
    lo, hi = register
    centre = (lo + hi) / 2
    if spread == "power":  # root, fifth, octave: what a distorted guitar plays
        root = _place(chord.root, lo, hi - 12, prev[0] if prev else lo + 7)
        return [root, root + 7, root + 12]
    if spread == "guitar":  # open-position shape: low root, fifth, octave, tenth, twelfth
        root = _place(chord.root, lo, lo + 11, lo)
        return [p for p in (root, root + chord.fifth, root + 12, root + 12 + chord.third, root + 19)
                if p <= hi]
    tones = list(chord.intervals)
    if spread == "shell":  # jazz piano: rootless third + seventh (+ ninth / fifth)
        sevenths = [t for t in tones if t in (9, 10, 11)]
        tones = [chord.third] + sevenths + ([14] if sevenths else [chord.fifth])
    pcs = [(chord.root + t) % 12 for t in tones]
    close = [_stack(pcs[k:] + pcs[:k], base) for k in range(len(pcs)) for base in range(lo, hi + 1)
             if base % 12 == pcs[k]]
    close = [v for v in close if v[-1] <= hi] or [_stack(pcs, lo + (pcs[0] - lo) % 12)]
    candidates = close
    if spread in ("open", "wide"):
        opened = [v for v in map(_open, close) if lo <= v[0] and v[-1] <= hi]
        # A register too narrow for the open shape keeps the close one.
        candidates = [_double_root(v, chord.root, lo) for v in opened] if spread == "wide" else opened
        candidates = candidates or close

    def cost(v: list[int]) -> tuple[float, list[int]]:
        c = 0.3 * abs(sum(v) / len(v) - centre)
        if prev:
            if len(v) == len(prev):
                c += sum(abs(a - b) for a, b in zip(v, prev))
            else:
                c += abs(sum(v) / len(v) - sum(prev) / len(prev)) * len(v)
        return c, v

    return min(candidates, key=cost)


def _stack(pcs: list[int], base: int) -> list[int]:
    """Close position: ``base`` (of class ``pcs[0]``), then each next class just above."""
    notes = [base]
    for pc in pcs[1:]:
        notes.append(notes[-1] + 1 + (pc - notes[-1] - 1) % 12)
    return notes


def _open(close: list[int]) -> list[int]:
    """Open a close-position voicing: drop the second voice from the top an octave (drop-2), or
    for a triad raise its middle voice an octave."""
    v = list(close)
    if len(v) >= 4:
        v[-2] -= 12
    elif len(v) == 3:
        v[1] += 12
    return sorted(v)


def _double_root(v: list[int], root_pc: int, lo: int) -> list[int]:
    """Add the root an octave or so under the voicing (string-section weight), if not too low."""
    below = v[0] - 1 - (v[0] - 1 - root_pc) % 12
    return [below] + v if below >= max(36, lo - 12) else v


# ---------------------------------------------------------------------------------------------
# playing patterns: what one role plays in one bar, as (step, length in steps, velocity x, how)
# ---------------------------------------------------------------------------------------------
def _chords_sustain(e, rng, span, chord_start):
    return [(0, span, 1.0, "block")] if chord_start else []


def _chords_halves(e, rng, span, chord_start):
    return [(0, 16, 1.0, "block")] if e < 0.35 else [(0, 8, 1.0, "block"), (8, 8, 0.85, "block")]


def _chords_pulse8(e, rng, span, chord_start):
    if e < 0.4:
        return [(0, 8, 1.0, "block"), (8, 8, 0.9, "block")]
    return [(s, 1.8, 1.0 if s % 4 == 0 else 0.78, "block") for s in range(0, 16, 2)]


def _chords_stabs(e, rng, span, chord_start):
    # Anchored on the downbeat, then syncopated: with the bass already on the off-beats, stabs on
    # every off-beat too would make the off-beat sound like the beat.
    steps = (0, 10) if e < 0.45 else (0, 3, 6, 10)
    return [(s, 1.2, 1.0, "block") for s in steps]


def _chords_syncopated(e, rng, span, chord_start):
    if e < 0.3:
        return [(0, 16, 1.0, "block")]
    return [(0, 7, 1.0, "block"), (7, 9, 0.8, "block")]


# Comping rhythms (Charleston and its cousins); the swing moves the off-beats.
_COMP_RHYTHMS = (((0, 3, 1.0), (6, 2, 0.85)), ((2, 2, 0.9), (6, 4, 0.85)),
                 ((0, 2, 1.0), (10, 4, 0.85)), ((4, 2, 0.9), (10, 2, 0.85), (14, 2, 0.8)))


def _chords_comp(e, rng, span, chord_start):
    if e < 0.3:
        return [(0, 8, 0.9, "block"), (8, 8, 0.8, "block")]
    return [(s, d, v, "block") for s, d, v in rng.choice(_COMP_RHYTHMS)]


def _chords_strum(e, rng, span, chord_start):
    if e < 0.4:
        return [(0, 8, 1.0, "down"), (8, 8, 0.9, "down")]
    # The folk "down, down-up, up-down-up" pattern.
    return [(0, 4, 1.0, "down"), (4, 2, 0.85, "down"), (6, 4, 0.7, "up"), (10, 2, 0.7, "up"),
            (12, 2, 0.85, "down"), (14, 2, 0.7, "up")]


def _chords_arpeggio(e, rng, span, chord_start):
    unit = 4 if e < 0.4 else 2
    # Each note rings on for two slots, like a held sustain pedal.
    return [(s, min(2 * unit, 16 - s), 1.0 if s % 8 == 0 else 0.85, f"arp{i}")
            for i, s in enumerate(range(0, 16, unit))]


def _chords_power8(e, rng, span, chord_start):
    if e < 0.45:
        return [(0, 16, 1.0, "block")]
    if e < 0.75:
        return [(0, 6, 1.0, "block"), (6, 2, 0.8, "block"), (8, 8, 0.95, "block")]
    return [(s, 1.6, 1.0 if s % 4 == 0 else 0.82, "block") for s in range(0, 16, 2)]


CHORD_PATTERNS = {"sustain": _chords_sustain, "halves": _chords_halves, "pulse8": _chords_pulse8,
                  "stabs": _chords_stabs, "syncopated": _chords_syncopated, "comp": _chords_comp,
                  "strum": _chords_strum, "arpeggio": _chords_arpeggio, "power8": _chords_power8}

# Bass tones: R root, F fifth, O octave, T tenth, A chromatic and S diatonic approach to the next
# bar's root, W a walking tone (third, fifth or sixth). Several letters sound together.


def _bass_sustain(e, rng):
    return [(0, 16, "R")]


def _bass_halves(e, rng):
    return [(0, 16, "R")] if e < 0.35 else [(0, 8, "R"), (8, 8, "F")]


def _bass_root_fifth(e, rng):
    if e < 0.35:
        return [(0, 8, "R"), (8, 8, "F")]
    if e < 0.7:
        return [(0, 6, "R"), (6, 2, "R"), (8, 8, "F")]
    return [(0, 4, "R"), (4, 2, "R"), (6, 2, "R"), (8, 4, "F"), (12, 2, "F"), (14, 2, "S")]


def _bass_eighths(e, rng):
    if e < 0.4:
        return [(0, 8, "R"), (8, 8, "R")]
    return [(s, 1.7, "O" if e >= 0.8 and s in (6, 14) else "R") for s in range(0, 16, 2)]


def _bass_offbeat(e, rng):  # house: the bass answers the four-on-the-floor kick
    if e < 0.4:
        return [(2, 1.6, "R"), (10, 1.6, "R")]
    return [(s, 1.6, "O" if e >= 0.8 and s == 14 else "R") for s in (2, 6, 10, 14)]


def _bass_lofi(e, rng):
    if e < 0.35:
        return [(0, 12, "R"), (12, 4, "F")]
    return [(0, 6, "R"), (7, 2, "R"), (10, 4, "F"), (14, 2, "A")]


def _bass_walking(e, rng):
    if e < 0.3:  # two-feel
        return [(0, 8, "R"), (8, 8, "F")]
    return [(0, 4, "R"), (4, 4, "W"), (8, 4, "W"), (12, 4, "A")]


def _bass_ostinato(e, rng):
    if e < 0.45:
        return [(0, 16, "R")]
    if e < 0.75:
        return [(s, 1.8, "R") for s in range(0, 16, 2)]
    return [(s, 1.8, "R" if s % 4 == 0 else "O") for s in range(0, 16, 2)]


def _bass_broken(e, rng):  # piano left hand, pedal down: every note rings to the bar's end
    if e < 0.35:
        return [(0, 16, "RO")]
    if e < 0.7:
        return [(0, 16, "R"), (4, 12, "F"), (8, 8, "O"), (12, 4, "T")]
    return [(s, 16 - s, "RFOTOFRF"[s // 2]) for s in range(0, 16, 2)]


BASS_PATTERNS = {"sustain": _bass_sustain, "halves": _bass_halves, "root_fifth": _bass_root_fifth,
                 "eighths": _bass_eighths, "offbeat": _bass_offbeat, "lofi": _bass_lofi,
                 "walking": _bass_walking, "ostinato": _bass_ostinato, "broken": _bass_broken}

# One-bar rhythm cells for melodies: (step, length in steps).
LEAD_RHYTHMS = {
    "sparse": (((0, 16),), ((0, 8), (8, 8)), ((0, 12), (12, 4)), ((4, 12),)),
    "lyrical": (((0, 4), (4, 4), (8, 8)), ((0, 6), (6, 2), (8, 8)),
                ((0, 2), (2, 2), (4, 4), (8, 4), (12, 4)), ((0, 8), (8, 4), (12, 4)),
                ((0, 4), (4, 2), (6, 6), (12, 4))),
    "busy": (((0, 2), (2, 2), (4, 2), (6, 2), (8, 4), (12, 4)),
             ((0, 2), (2, 1), (3, 1), (4, 4), (8, 2), (10, 2), (12, 4)),
             ((0, 3), (3, 3), (6, 2), (8, 2), (10, 2), (12, 2), (14, 2))),
    "riff": (((0, 2), (3, 2), (6, 2), (8, 2), (10, 1), (11, 2), (14, 2)),
             ((0, 1), (2, 1), (3, 2), (6, 2), (10, 2), (12, 2)),
             ((0, 2), (3, 1), (6, 1), (8, 2), (11, 2), (14, 1))),
    "swing": (((0, 2), (2, 2), (4, 2), (6, 4), (10, 2), (12, 4)),
              ((2, 2), (4, 2), (6, 2), (8, 2), (10, 6)),
              ((0, 4), (6, 2), (8, 2), (10, 2), (12, 2), (14, 2))),
}
# Riffs loop unchanged; the other rhythms make phrases (motif, its sequence, an answer, a cadence).
LOOPING_RHYTHMS = ("riff",)
CADENCES = (((0, 4), (4, 12)), ((0, 8), (8, 8)), ((0, 16),), ((0, 2), (2, 2), (4, 12)))
# Melodic steps in scale degrees and how likely each is: mostly stepwise, some thirds, few leaps.
_MOVES = (1, -1, 2, -2, 0, 3, -3, 4, -4)
_MOVE_WEIGHTS = (28, 28, 12, 12, 8, 4, 4, 2, 2)


# ---------------------------------------------------------------------------------------------
# roles and instruments
# ---------------------------------------------------------------------------------------------
def natural_role(program: int) -> str:
    """The role a GM instrument plays best: basses bass, plucked and keyboard instruments chords,
    ensembles and pads sustain, solo strings, winds and synth leads carry the melody."""
    if 32 <= program <= 39:
        return "bass"
    if program <= 31 or program in (45, 46) or 104 <= program <= 108:
        return "chords"
    if 44 <= program <= 55 or 88 <= program <= 95:
        return "pad"
    return "lead"


def _plucked(program: int) -> bool:
    """True for instruments whose notes decay (piano, guitar, harp, bells): a held chord dies."""
    return program <= 15 or 24 <= program <= 31 or program in (45, 46) or 104 <= program <= 108


def assign_roles(style: Style, names: list[str]) -> tuple[dict[str, int], set[str]]:
    """Role -> GM program for a segment: the style's arrangement with the named instruments
    (``Segment.instruments``) put in their natural roles, else the next free melodic one. Returns
    the roles and which of them were named (those play whatever the energy). Unknown names are
    skipped."""
    roles = dict(style.instruments)
    named: set[str] = set()
    for name in names:
        program = instrument_program(name)
        if program is None:
            continue
        want = natural_role(program)
        for role in [want] + [r for r in ("lead", "chords", "pad") if r != want]:
            if role not in named:
                roles[role] = program
                named.add(role)
                break
    return roles, named


# ---------------------------------------------------------------------------------------------
# the composer
# ---------------------------------------------------------------------------------------------
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
        for role in ROLES:  # stable instrument order in the file
            if role in self.instruments and self.instruments[role].notes:
                inst = self.instruments[role]
                _untangle(inst)
                pm.instruments.append(inst)
        return pm

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
            root = _place(chord.root, lo, max(lo + 11, hi - 12), prev_root)
            prev_root = root
            next_root = _place(self.chord(bar + 1).root, lo, max(lo + 11, hi - 12), root)
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
        if name == "sustain" and _plucked(self.roles["chords"]):
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
                moves = [rng.choices(_MOVES, _MOVE_WEIGHTS)[0] for _ in range(8)]
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
                    move = rng.choices(_MOVES, _MOVE_WEIGHTS)[0] if pos == 2 and not looping else moves[i]
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
                self.note("bass", _place(chord.root, lo, lo + 11, lo), t, t + 2 * g.beat_s,
                          self.vel(ROLE_VELOCITY["bass"], e, 1.1))


def volume_cc(db: float) -> int:
    """MIDI volume (CC7) for a level in dB (<= 0) on the GM curve 40*log10(cc/127)."""
    return max(1, min(127, round(127 * 10 ** (min(0.0, db) / 40))))


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
