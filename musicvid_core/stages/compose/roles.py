"""Roles and instruments: which General MIDI program plays each role (drums, bass, chords, pad, lead),
and at what velocity, pan and channel volume.

Takes a :class:`~musicvid_core.domain.styles.Style` and the instrument names a segment asks for; gives
role -> GM program (0..127). Levels are dB (<= 0) turned into CC7 values.
"""

from __future__ import annotations

from musicvid_core.domain.styles import Style, instrument_program

__all__ = ["ROLE_PAN", "ROLE_VELOCITY", "assign_roles", "natural_role", "plucked", "volume_cc"]

ROLE_VELOCITY = {"bass": 96, "chords": 80, "pad": 66, "lead": 94}
ROLE_PAN = {"drums": 64, "bass": 64, "chords": 46, "pad": 82, "lead": 72}  # CC10, 64 = centre


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


def plucked(program: int) -> bool:
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


def volume_cc(db: float) -> int:
    """MIDI volume (CC7) for a level in dB (<= 0) on the GM curve 40*log10(cc/127)."""
    return max(1, min(127, round(127 * 10 ** (min(0.0, db) / 40))))
