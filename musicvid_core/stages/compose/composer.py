"""Procedural composer: one plan segment -> a General MIDI arrangement (a pretty_midi object).

The segment's fields drive everything: ``bpm`` sets the beat grid, ``key`` the scale and the
chords, ``style`` the instruments, grooves, progressions and playing patterns (``styles.py``),
``energy`` / ``energy_curve`` how many layers play and how hard (per bar), ``accents`` where a
crash and a fill (or, without drums, a restruck chord) mark a scene cut, ``instruments`` which GM
instruments take the melodic roles. From the whole plan (``arrangement.py``): the section of each bar
(intro, A, B, build, peak, outro; who plays and how hard), the bars under speech (thinned), and in
the last segment the final chord that rings out to the video's last frame.

Time 0 of the MIDI is the segment start and bar 0 starts there. Notes start and end inside
``[0, duration)``; the synthesizer's release rings on into the clip's tail. The same (plan, index,
seed) always gives the same MIDI: every random choice comes from one ``random.Random`` seeded
from the seed and the index, in a fixed order.

This module assembles the parts: ``grid.py`` (beat and bar times), ``harmony.py`` (keys, chords,
voicing), ``patterns.py`` (drum kit and what each role plays in a bar), ``roles.py`` (which GM
instrument plays which role, at what level).
"""


from __future__ import annotations

import random

import pretty_midi

from musicvid_core.domain.errors import GenerationError
from musicvid_core.domain.plan import Plan
from musicvid_core.domain.styles import ROLES
from musicvid_core.stages.compose.arrangement import SPEECH_CHORD_ENERGY, SPEECH_DROPS, Arrangement, Section, arrange
from musicvid_core.stages.compose.drumming import DRUM_NOTE_S, FILL_STEPS, PHRASE_BARS, DrumPart, dense_cutting
from musicvid_core.stages.compose.grid import beat_grid
from musicvid_core.stages.compose.harmony import SCALES, Chord, chord_from_numeral, parse_key, place_pitch, voice_chord
from musicvid_core.stages.compose.patterns import (
    BASS_PATTERNS,
    CADENCES,
    CHORD_PATTERNS,
    DRUM_NOTES,
    DRUM_VELOCITY,
    LEAD_RHYTHMS,
    LOOPING_RHYTHMS,
    MELODY_MOVES,
    MOVE_WEIGHTS,
)
from musicvid_core.stages.compose.performance import (
    LEGATO_PROGRAMS,
    PEDAL_PROGRAMS,
    legato,
    lock_cuts,
    pedal,
    strum_offsets,
    untangle,
)
from musicvid_core.stages.compose.roles import ROLE_PAN, ROLE_VELOCITY, assign_roles, plucked, volume_cc
from musicvid_core.stages.plan.prompt import resolve_style

__all__ = ["compose_arranged", "compose_segment"]

MIN_NOTE_S = 0.01
Span = tuple[float, float, Section]


def compose_segment(plan: Plan, index: int, seed: int) -> pretty_midi.PrettyMIDI:
    """The MIDI arrangement of segment ``index`` of ``plan``: time 0 = the segment start, notes
    inside [0, segment duration) seconds. Deterministic in (plan, index, seed). Raises
    GenerationError for an index outside the plan or an unreadable key."""
    return compose_arranged(plan, index, seed)[0]


def compose_arranged(plan: Plan, index: int, seed: int) -> tuple[pretty_midi.PrettyMIDI, list[Span]]:
    """``compose_segment``'s MIDI and the arrangement's sections as (start s, end s, Section) per bar,
    segment-relative (the generator rides the faders by them). Raises as compose_segment."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(plan.segments):
        raise GenerationError(f"segment index {index!r} is outside the plan (0..{len(plan.segments) - 1})",
                              index=index)
    c = _Composer(plan, index, seed)
    pm = c.compose()
    return pm, c.arr.section_spans(c.grid)


class _Composer(DrumPart):
    def __init__(self, plan: Plan, index: int, seed: int) -> None:
        self.plan = plan
        self.seg = seg = plan.segments[index]
        self.index = index
        self.seed = seed
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
        self.arr: Arrangement | None = None  # set by compose(): sections, speech, the ending
        self.end_at: float | None = None  # the final chord (last segment): nothing else starts after it
        self.cast: list[set[str]] = []  # per bar: the roles that play
        self.dense = self.busy = False  # cuts a median of under two / four beats apart (set by compose())

    # --- helpers ---------------------------------------------------------------------------
    def energy(self, bar: int, lifted: bool = True) -> float:
        """The bar's energy from the plan's curve, lifted or lowered by its section (``lifted``)."""
        curve = self.seg.energy_curve
        e = curve[min(bar, len(curve) - 1)] if curve else self.seg.energy
        return e if self.arr is None or not lifted else min(1.0, max(0.0, e + self.section(bar).lift))

    def section(self, bar: int) -> Section:
        return self.arr.sections[max(0, min(bar, len(self.arr.sections) - 1))]

    def _base_plays(self, role: str, e: float) -> bool:
        default = 0.2 if role == "drums" else 0.0
        return role in self.roles and (role in self.named or e >= self.style.min_energy.get(role, default))

    def _cast_bars(self) -> list[set[str]]:
        """Per bar, who plays: the style's roles at that energy, within the section's roles (a named
        instrument always plays); under speech no pad and no lead. A section that would leave no
        melodic part keeps the style's own, and so does fast cutting (a cut a median of under a bar
        apart): there parts leaving took onsets the beat needs (the tracked tempo of double-time
        segments bent by 3 %)."""
        cast = []
        for bar in range(len(self.grid.bars)):
            base = {r for r in self.roles if self._base_plays(r, self.energy(bar))}
            roles = {r for r in base if r in self.section(bar).roles or r in self.named}
            if not roles - {"drums"} or self.busy:
                roles = base
            if self.arr.speech[bar] and roles - {"drums"} - SPEECH_DROPS:
                roles -= SPEECH_DROPS
            cast.append(roles)
        return cast

    def plays(self, role: str, bar: int) -> bool:
        return role in self.cast[max(0, min(bar, len(self.cast) - 1))]

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

    def note(self, role: str, pitch: int, start: float, end: float, velocity: int, final: bool = False) -> None:
        """Add a note, kept inside [0, duration): the tail past the end is the synth's release. In
        the last segment nothing but the final chord (``final``) sounds past its strike."""
        start = max(0.0, start)
        end = min(end, self.duration)
        if self.end_at is not None and not final:
            if start >= self.end_at - MIN_NOTE_S:
                return
            end = min(end, self.end_at)
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
        self.arr = arrange(self.plan, self.index, self.grid, accents)
        self.end_at = self.arr.end_at
        self.dense = dense_cutting(accents, self.grid.beat_s)
        self.busy = dense_cutting(accents, 2 * self.grid.beat_s)  # a cut a median of under a bar apart
        self.cast = self._cast_bars()
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
        self._ending()
        # Humanising never moves a beat on a cut: drum and bass notes go back onto it (chords keep
        # their strums: the rhythm section is what marks the beat).
        for role in ("drums", "bass"):
            lock_cuts(self.instruments.get(role), accents, 2 * self.style.humanize_s + 1e-4, self.duration)
        self._perform()
        for role in ROLES:  # stable instrument order in the file
            if role in self.instruments and self.instruments[role].notes:
                inst = self.instruments[role]
                untangle(inst)
                pm.instruments.append(inst)
        return pm

    def _perform(self) -> None:
        """The pianist's sustain pedal (changed with the chords) and the legato of a bowed or blown
        melody."""
        g, per = self.grid, self.style.bars_per_chord
        changes = {g.bars[b] for b in range(0, len(g.bars), per)} | {g.bars[b] for b in self.sections}
        end = self.duration if self.end_at is None else self.end_at
        for role, inst in self.instruments.items():
            if role != "drums" and inst.program in PEDAL_PROGRAMS:
                pedal(inst, sorted(c for c in changes if c < end - 1e-6), end)
        lead = self.instruments.get("lead")
        if lead is not None and lead.program in LEGATO_PROGRAMS:
            legato(lead, g.beat_s)

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

    def _bass(self) -> None:
        if "bass" not in self.roles:
            return
        g, style = self.grid, self.style
        lo, hi = style.register("bass")
        pattern = BASS_PATTERNS[style.bass_pattern]
        prev_root = lo + 7
        for bar in range(len(g.bars)):
            e = self.energy(bar)
            if not self.plays("bass", bar):
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
            if not self.plays("chords", bar):
                continue
            if self.arr.speech[bar]:  # light keys under the words
                e = min(e, SPEECH_CHORD_ENERGY)
            span = 16 * min(style.bars_per_chord, len(g.bars) - bar)
            order = list(range(len(voicing))) + list(range(len(voicing) - 2, 0, -1))
            for step, length, mult, how in pattern(e, self.rng, span, chord_start):
                start = self.t(bar, step) + self.jitter()
                end = self.grid.time(bar, step + length) - 0.02 * g.step_s * length
                v = self.vel(ROLE_VELOCITY["chords"], e, mult)
                if how.startswith("arp"):
                    self.note("chords", voicing[order[int(how[3:]) % len(order)]], start, end, v)
                elif how == "up":  # an up-strum catches the top strings, high to low, softer
                    top = list(reversed(voicing[-3:]))
                    for p, dt in zip(top, strum_offsets(len(top), v, self.rng)):
                        self.note("chords", p, start + dt, end, max(1, v - 8))
                elif how == "down":  # a down-strum sweeps low to high, 10-30 ms
                    for p, dt in zip(voicing, strum_offsets(len(voicing), v, self.rng)):
                        self.note("chords", p, start + dt, end, v)
                else:  # block chord
                    for p in voicing:
                        self.note("chords", p, start, end, v)

    def _pad(self) -> None:
        if "pad" not in self.roles:
            return
        g, style = self.grid, self.style
        voicing: list[int] | None = None
        for bar in range(0, len(g.bars), style.bars_per_chord):
            e = self.energy(bar)
            voicing = voice_chord(self.chord(bar), style.register("pad"), "open", voicing)
            if not self.plays("pad", bar):
                continue
            end = g.time(bar, 16 * style.bars_per_chord) - 0.01
            v = self.vel(ROLE_VELOCITY["pad"], e)
            for p in voicing:
                self.note("pad", p, g.bars[bar] + self.jitter(), end, v)
            lo, hi = style.register("pad")
            if self.section(bar).name == "peak" and 40 <= self.roles["pad"] <= 51:
                # layered strings: the top line doubled an octave up (violins over the section), else
                # the bass line an octave down, inside the pad's register
                layer = voicing[-1] + 12 if voicing[-1] + 12 <= hi else voicing[0] - 12
                if lo <= layer <= hi:
                    self.note("pad", layer, g.bars[bar] + self.jitter(), end, max(1, v - 14))

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
        # The theme: one rhythm cell and its steps for the whole plan (seeded without the segment),
        # so the motif returns in every phrase and segment; B sections invert it, a peak lifts it.
        theme = random.Random(self.seed * 1_000_003 + 999_983)
        theme_cell = theme.choice(cells)
        theme_moves = [theme.choices(MELODY_MOVES, MOVE_WEIGHTS)[0] for _ in range(8)]
        for bar in range(len(g.bars)):
            e = self.energy(bar)
            if not self.plays("lead", bar):
                motif = None  # the melody re-enters with a fresh phrase
                continue
            pos = bar % PHRASE_BARS
            if motif is None or pos == 0:
                section = self.section(bar).name
                motif = theme_cell
                moves = [-m for m in theme_moves] if section == "B" else list(theme_moves)
                answer = motif if looping else rng.choice(cells)
                # Each phrase starts halfway back to the middle of the register, so a long
                # melody wanders but never drifts off to one end; a riff restarts here every bar.
                anchor = idx = min(len(pitches) - 1, (idx + len(pitches) // 2) // 2 + (2 if section == "peak" else 0))
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
            if "drums" in self.roles:  # a cut in the ending's ring-out is still marked
                for drum in ("crash", "kick"):
                    self.note("drums", DRUM_NOTES[drum], t, t + DRUM_NOTE_S,
                              self.vel(DRUM_VELOCITY[drum], e), final=True)
                continue
            chord = self.chord(bar)
            if "chords" in self.roles:
                for p in voice_chord(chord, self.style.register("chords"), self.style.spread):
                    self.note("chords", p, t, t + g.beat_s, self.vel(ROLE_VELOCITY["chords"], e, 1.1))
            if "bass" in self.roles:
                lo = self.style.register("bass")[0]
                self.note("bass", place_pitch(chord.root, lo, lo + 11, lo), t, t + 2 * g.beat_s,
                          self.vel(ROLE_VELOCITY["bass"], e, 1.1))

    def _ending(self) -> None:
        """The last segment's final chord: the tonic, struck by every part at ``end_at`` (the kick
        and a crash under it) and held to the video's last frame, where the mixer's fade-out
        catches it ringing."""
        if self.end_at is None:
            return
        t, style = self.end_at, self.style
        tonic = chord_from_numeral("I" if self.mode == "major" else "i", self.tonic, self.mode)
        e = min(0.85, self.energy(self.grid.bar_at(max(0.0, t - 1e-3))))  # as loud as the bar before
        if "drums" in self.roles:
            for drum in ("crash", "kick"):
                self.note("drums", DRUM_NOTES[drum], t, t + DRUM_NOTE_S, self.vel(DRUM_VELOCITY[drum], e), final=True)
            # The drummer keeps time softly on the closed hat (or ride) while the chord rings, dying
            # away: without a pulse the beat tracker bent the last segment's tempo by up to 8 % over
            # the ring-out, and a cut there would mark nothing but a lone crash.
            keeper = next((d for d in ("hat", "ride") if d in self.style.grooves.get("main", {})), None)
            ring = [b for b in self.grid.beats if b > t + 1e-6]
            for k, b in enumerate(ring if keeper else ()):
                self.note("drums", DRUM_NOTES[keeper], b, b + DRUM_NOTE_S, max(1, round(44 - 26 * k / max(1, len(ring)))),
                          final=True)
        if "bass" in self.roles:
            lo = style.register("bass")[0]
            self.note("bass", place_pitch(tonic.root, lo, lo + 11, lo), t, self.duration,
                      self.vel(ROLE_VELOCITY["bass"], e), final=True)
        for role in ("chords", "pad"):
            if role in self.roles:
                for p in voice_chord(tonic, style.register(role), style.spread if role == "chords" else "open"):
                    self.note(role, p, t, self.duration, self.vel(ROLE_VELOCITY[role], e, 0.95), final=True)
        if "lead" in self.roles:  # the melody comes home to the tonic
            lo, hi = style.register("lead")
            self.note("lead", place_pitch(tonic.root, lo, hi, (lo + hi) / 2), t, self.duration,
                      self.vel(ROLE_VELOCITY["lead"], e, 0.9), final=True)



def _nearest(pitches: list[int], idx: int, pcs: set[int]) -> int:
    """Index of the pitch nearest ``pitches[idx]`` whose class is in ``pcs`` (else ``idx``)."""
    options = [i for i, p in enumerate(pitches) if p % 12 in pcs]
    return min(options, key=lambda i: (abs(i - idx), i)) if options else idx

