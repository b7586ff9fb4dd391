"""Playing patterns: what each role plays in one bar, on the 16th-note grid (16 steps a 4/4 bar).

The drum kit (GM percussion keys and velocities), chord patterns ``(energy, rng, span, chord_start) ->
[(step, length in steps, velocity x, how)]``, bass patterns ``(energy, rng) -> [(step, length, tones)]``,
melody rhythm cells, cadences and melodic steps. The names are what a style picks
(``Style.chord_pattern``, ``bass_pattern``, ``lead_rhythm``). Patterns that draw from ``rng`` draw in a
fixed order: that order is part of the composer's determinism.
"""

from __future__ import annotations

__all__ = ["BASS_PATTERNS", "CADENCES", "CHORD_PATTERNS", "DRUM_NOTES", "DRUM_VELOCITY", "HIT_SCALE",
           "LEAD_RHYTHMS", "LOOPING_RHYTHMS", "MELODY_MOVES", "MOVE_WEIGHTS", "TIMEKEEPERS"]

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
MELODY_MOVES = (1, -1, 2, -2, 0, 3, -3, 4, -4)
MOVE_WEIGHTS = (28, 28, 12, 12, 8, 4, 4, 2, 2)
