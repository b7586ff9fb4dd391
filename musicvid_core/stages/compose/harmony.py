"""Harmony: keys and scales, chords from roman numerals, and voicing a chord in a register.

Takes key names ("F# minor"), roman numerals ("V7", "bVII", "iiø7") and MIDI registers; gives pitch
classes (0..11), :class:`Chord` objects and MIDI pitch lists. Pure functions, no randomness.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from musicvid_core.domain.errors import GenerationError

__all__ = ["SCALES", "Chord", "chord_from_numeral", "parse_key", "place_pitch", "voice_chord"]

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


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


def place_pitch(pc: int, lo: int, hi: int, near: float) -> int:
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
        root = place_pitch(chord.root, lo, hi - 12, prev[0] if prev else lo + 7)
        return [root, root + 7, root + 12]
    if spread == "guitar":  # open-position shape: low root, fifth, octave, tenth, twelfth
        root = place_pitch(chord.root, lo, lo + 11, lo)
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
