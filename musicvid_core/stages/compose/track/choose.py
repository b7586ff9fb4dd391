"""Choosing a library track for a prompt and a picture.

Every indexed track gets a score in 0..1, a weighted sum of:

- **mood** (W_MOOD): the prompt's mood (stages/plan/prompt.py) mapped onto the library's five
  (MOOD_MAP); a track without a mood folder gets one from its analysis (intensity and mode);
- **genre** (W_GENRE): a genre the prompt names (its style, when it came from genre words) against
  the track's tags ("acoustic", "electronic", ...); neutral when none is named;
- **tempo** (W_TEMPO): an explicit "128 bpm" (half and double time count, a little less), else a
  pace word (slow / medium / fast), else neutral;
- **cutting rate** (W_PACE): the picture's median gap between cuts wants about PACE_BEATS beats
  per shot: the tempo that gives it (within 70-160 bpm) against the track's;
- **tempo** (W_TEMPO): a bpm asked, or a tempo word's range (TEMPO_RANGES), against the track's
  tempo, its half or its double at a cost (a tracker's metrical level is ambiguous by an octave);
- **energy** (W_ENERGY): the picture's mean energy (0..1) against the track's intensity, and the
  shape of its energy curve (rising or falling) against the track's bar energies;
- **beat** (W_BEAT): how clear the track's beat is (analysis.beat_agreement): cuts land on beats
  only where the beat is unambiguous; a track whose beat holds two or three equally strong events
  (analysis.beat_events: off-beats as strong as the beat, or a triplet feel -- which one is the beat
  is not in the onsets) keeps only AMBIGUOUS of it: a triplet-feel track 0.3 (on the library at
  60 s such tracks put 28 % of cuts on beats, against 81 % with two events and 88 % with one), so
  a track that fits about as well (within ~0.07) ranks above it; the why says so.

The seed adds up to NEAR_TIE to each score: tracks that close swap places with another seed, so a
regenerate with a new seed can pick another track. The choice says why in one line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from musicvid_core.domain.errors import BadInput
from musicvid_core.stages.compose.track.library import IndexedTrack
from musicvid_core.stages.plan.prompt import parse_prompt

W_MOOD, W_GENRE, W_TEMPO, W_PACE, W_ENERGY, W_BEAT = 0.35, 0.15, 0.15, 0.15, 0.1, 0.1
NEAR_TIE = 0.03
AMBIGUOUS = {2: 0.8, 3: 0.3}  # the beat part left to a track with two or three equal events a beat
EVENTS = {2: "off-beats as strong as the beat", 3: "triplet feel"}
PACE_BEATS = 4.0
MOOD_MAP = {
    "epic": ("energetic",), "tense": ("energetic", "nostalgic"), "dark": ("nostalgic",),
    "sad": ("nostalgic", "tender"), "mysterious": ("calm", "nostalgic"), "calm": ("calm",),
    "dreamy": ("calm", "tender"), "romantic": ("tender",), "warm": ("tender", "happy"),
    "nostalgic": ("nostalgic",), "playful": ("happy",), "happy": ("happy",), "energetic": ("energetic",),
}
ACOUSTIC_STYLES = {"acoustic", "piano", "jazz", "orchestral", "cinematic"}
ELECTRONIC_STYLES = {"electronic", "lofi", "ambient", "corporate"}
OCTAVE_COST = 0.15  # log2 distance added for a track's half or double tempo (the tracker's level is ambiguous)
TEMPO_RANGES = {"slow": (50.0, 95.0), "medium": (90.0, 125.0), "fast": (120.0, 190.0)}


@dataclass(frozen=True)
class Choice:
    """The chosen ``track``, its ``score`` (0..1), ``why`` in one line, and every track's
    (name, score) best first."""

    track: IndexedTrack
    score: float
    why: str
    ranking: list[tuple[str, float]] = field(default_factory=list)


def choose_track(tracks: Sequence[IndexedTrack], *, prompt: str = "", duration: float,
                 cuts: Sequence[float] = (), energy: Sequence[float] = (), seed: int = 0) -> Choice:
    """The best track for ``prompt`` and a picture of ``duration`` seconds with ``cuts`` (seconds)
    and an ``energy`` curve (values 0..1 evenly spread over the duration; may be empty). Raises
    BadInput for an empty library or a non-positive duration."""
    if not tracks:
        raise BadInput("the music library is empty")
    if not duration > 0:
        raise BadInput(f"duration must be positive, got {duration}")
    intent = parse_prompt(prompt)
    gaps = np.diff([0.0, *sorted(c for c in cuts if 0 < c < duration), duration])
    pace_bpm = float(np.clip(60.0 * PACE_BEATS / float(np.median(gaps)), 70.0, 160.0)) if len(cuts) else None
    picture = np.asarray(list(energy), dtype=float)
    rng = np.random.default_rng(seed)
    scored = []
    for t in tracks:
        parts = _parts(t, intent, pace_bpm, picture)
        total = sum(w * v for w, (v, _) in zip((W_MOOD, W_GENRE, W_TEMPO, W_PACE, W_ENERGY, W_BEAT), parts))
        scored.append((total + float(rng.uniform(0, NEAR_TIE)), total, t, parts))
    scored.sort(key=lambda x: -x[0])
    top, total, best, parts = scored[0]
    notes = [note for _, note in parts if note]
    # a track its ambiguous beat alone put below the choice: say so (it would have won on the rest)
    passed = [t for s, _, t, p in scored[1:]
              if _events(t) > 1 and s + W_BEAT * p[5][0] * (1 / AMBIGUOUS[_events(t)] - 1) > top]
    if passed:
        notes.append(f"over {passed[0].name} ({EVENTS[_events(passed[0])]}: its beat is ambiguous)")
    why = f"{best.name}: " + ", ".join(notes) if notes else best.name
    return Choice(track=best, score=round(total, 4), why=why,
                  ranking=[(t.name, round(s, 4)) for s, _, t, _ in scored])


def track_mood(t: IndexedTrack) -> str:
    """The track's mood: its folder's, else one from its analysis."""
    if t.track.mood:
        return t.track.mood
    a = t.analysis
    if a.intensity >= 0.62:
        return "energetic"
    if a.intensity < 0.35:
        return "calm"
    if a.key.endswith("minor"):
        return "nostalgic"
    return "happy" if a.intensity >= 0.45 else "tender"


def _parts(t: IndexedTrack, intent, pace_bpm: float | None, picture: np.ndarray) -> list[tuple[float, str]]:
    a = t.analysis
    bpm = a.bpm or 0.0
    mood = track_mood(t)
    wanted = MOOD_MAP.get(intent.mood)
    if wanted:
        m = (1.0 if mood == wanted[0] else 0.7 if mood in wanted else 0.0,
             f"mood {mood} for '{intent.mood}'")
    else:
        m = (0.5, f"mood {mood}")
    genre = _genre(intent)
    if genre:
        g = (1.0 if genre in t.track.tags else 0.0, f"{genre}" if genre in t.track.tags else "")
    else:
        g = (0.5, "")
    tempo = _tempo_score(bpm, intent)
    pace = (0.5, "") if pace_bpm is None or not bpm else (
        max(0.0, 1 - abs(_octave_distance(bpm, pace_bpm)) / 0.6),
        f"{bpm:.0f} bpm for a cut every {60 * PACE_BEATS / pace_bpm:.1f} s")
    e = (0.5, "")
    if picture.size:
        level = 1 - abs(float(np.mean(picture)) - a.intensity)
        shape = 0.5
        bars = [b.energy for b in a.bars]
        if picture.size >= 2 and len(bars) >= 2:
            rising_pic = float(np.polyfit(np.linspace(0, 1, picture.size), picture, 1)[0])
            rising_trk = float(np.polyfit(np.linspace(0, 1, len(bars)), bars, 1)[0])
            shape = 1.0 if rising_pic * rising_trk > 0 else 0.5 if abs(rising_pic) < 0.05 else 0.0
        e = (0.7 * level + 0.3 * shape, f"energy {a.intensity:.2f} vs picture {float(np.mean(picture)):.2f}")
    if a.free_time:
        beat = (0.3, "free time")
    elif _events(t) > 1:
        beat = (AMBIGUOUS[_events(t)] * float(a.beat_agreement), f"{EVENTS[_events(t)]}: cuts may be heard off the beat")
    else:
        beat = (float(a.beat_agreement), "")
    return [m, g, tempo, pace, e, beat]


def _events(t: IndexedTrack) -> int:
    """Equally strong onset events a beat (1 unless the analysis found 2 or 3; free time: 1)."""
    n = 1 if t.analysis.free_time else int(getattr(t.analysis, "beat_events", 1))
    return n if n in EVENTS else 1


def _genre(intent) -> str | None:
    if intent.understood.get("style_from") != "keywords":
        return None
    if intent.style in ACOUSTIC_STYLES:
        return "acoustic"
    if intent.style in ELECTRONIC_STYLES:
        return "electronic"
    return None


def _octave_distance(bpm: float, lo: float, hi: float | None = None) -> float:
    """log2 distance from ``bpm`` to the tempo ``lo`` (or the range [lo, hi]; 0 inside it), the
    nearest of bpm/2, bpm and bpm*2 taken, plus OCTAVE_COST when not bpm itself."""
    hi = lo if hi is None else hi

    def outside(t: float) -> float:
        return 0.0 if lo <= t <= hi else min(abs(math.log2(t / lo)), abs(math.log2(t / hi)))

    return min(outside(bpm * k) + (0.0 if k == 1 else OCTAVE_COST) for k in (0.5, 1.0, 2.0))


def _tempo_score(bpm: float, intent) -> tuple[float, str]:
    if not bpm:
        return 0.3, ""
    if intent.bpm:
        d = _octave_distance(bpm, intent.bpm)
        return max(0.0, 1 - d / 0.2), f"{bpm:.0f} bpm for {intent.bpm:.0f} asked"
    if intent.tempo_hint in TEMPO_RANGES:
        # the metrical level a tracker reads is ambiguous by an octave (a 68 bpm ballad of even
        # sixteenths is edited at 136: metrics.bars._binary_pulse), so half and double count too,
        # at OCTAVE_COST
        lo, hi = TEMPO_RANGES[intent.tempo_hint]
        d = _octave_distance(bpm, lo, hi)
        return max(0.0, 1 - d / 0.3), f"{bpm:.0f} bpm, {intent.tempo_hint}"
    return 0.5, ""
