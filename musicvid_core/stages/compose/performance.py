"""Performance: what a player adds to written notes (the composer calls these on its MIDI parts).

A sustain pedal for the piano (CC64 in the MIDI, and the note-offs held to the pedal-up, so a
renderer that ignores the controller sounds the same), strum timing for guitars, legato for bowed
and blown melodies, octave-layered string pads, ghost notes on the snare, and the two clean-ups
every part gets: cuts stay on their beat whatever the humanising did, and a re-struck pitch ends
the previous note. Times are seconds from the segment start; pretty_midi objects are edited in
place. Nothing here draws random numbers except where an ``rng`` is passed (then in a fixed order).
"""

from __future__ import annotations

import bisect

import pretty_midi

__all__ = ["GHOST_STEPS", "GHOST_VELOCITY", "PEDAL_PROGRAMS", "legato", "lock_cuts", "pedal",
           "strum_offsets", "untangle"]

MIN_NOTE_S = 0.01
PEDAL_PROGRAMS = frozenset(range(0, 8))  # acoustic and electric pianos
PEDAL_LIFT_S = 0.03  # the pedal comes up this long before the change and goes down as long after
LEGATO_PROGRAMS = frozenset(range(40, 80)) - {45, 46, 47}  # strings (not pizzicato/harp/timpani), brass, reeds, pipes
LEGATO_OVERLAP_S = 0.03  # a bowed or blown melody's note ends just after the next begins
LEGATO_MAX_GAP_BEATS = 1.0  # ... when it is at most this far away (a rest stays a rest)
STRUM_S = (0.010, 0.030)  # a strum spreads the chord over this long, faster when played harder
GHOST_STEPS = (3, 6, 11, 14)  # 16ths between backbeats where a drummer drops ghost strokes
GHOST_VELOCITY = (18, 32)
GHOST_CHANCE = 0.45


def pedal(inst: pretty_midi.Instrument, changes: list[float], end: float) -> None:
    """Sustain pedal on ``inst``: down just after each time in ``changes`` (chord changes, seconds,
    ascending, the first at 0), up just before the next (legato pedalling); every note's off is held
    to the pedal-up after it (never past ``end``). Adds the CC64 events."""
    if not inst.notes or not changes:
        return
    ups = [c - PEDAL_LIFT_S for c in changes[1:]] + [end]
    for c, up in zip(changes, ups):
        if up - c > 2 * PEDAL_LIFT_S:
            inst.control_changes += [pretty_midi.ControlChange(64, 127, c + PEDAL_LIFT_S),
                                     pretty_midi.ControlChange(64, 0, up)]
    for n in inst.notes:
        k = bisect.bisect_right(changes, n.start + PEDAL_LIFT_S) - 1
        if k >= 0 and n.end < ups[k]:
            n.end = min(end, max(n.end, ups[k]))


def legato(inst: pretty_midi.Instrument, beat_s: float) -> None:
    """Each note of a monophonic line held into the next one's start plus LEGATO_OVERLAP_S when the
    gap is at most LEGATO_MAX_GAP_BEATS beats: a bowed or blown phrase, not detached notes."""
    notes = sorted(inst.notes, key=lambda n: (n.start, n.pitch))
    for a, b in zip(notes, notes[1:]):
        if b.start > a.start and b.start - a.end <= LEGATO_MAX_GAP_BEATS * beat_s and b.pitch != a.pitch:
            a.end = max(a.end, b.start + LEGATO_OVERLAP_S)


def strum_offsets(n: int, velocity: int, rng) -> list[float]:
    """Onset offsets (s) of ``n`` strings in the order they are struck: the whole strum takes
    STRUM_S (10-30 ms), quicker the harder it is played, with a little variation (one draw)."""
    lo, hi = STRUM_S
    spread = hi - (hi - lo) * min(1.0, max(0.0, (velocity - 40) / 80)) * rng.uniform(0.8, 1.0)
    return [spread * k / max(1, n - 1) for k in range(n)]


def lock_cuts(inst: pretty_midi.Instrument | None, accents: list[float], window: float, duration: float) -> None:
    """Humanising never moves a beat that lands on a cut: notes that the jitter pushed off an
    accent (by at most ``window`` s) go back onto it exactly, the rest keep their feel."""
    if inst is None or not accents or window <= 1e-4:
        return
    for n in inst.notes:
        k = bisect.bisect_left(accents, n.start)
        near = min((accents[i] for i in (k - 1, k) if 0 <= i < len(accents)), key=lambda a: abs(a - n.start))
        if 0 < abs(near - n.start) <= window:
            n.end, n.start = max(near + MIN_NOTE_S, min(duration, n.end + near - n.start)), near


def untangle(inst: pretty_midi.Instrument) -> None:
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
    inst.control_changes.sort(key=lambda c: c.time)
