"""The rule planner: measured video features + a text prompt -> a Plan, deterministically.

Segments: the music may change only at scene cuts, so boundaries are chosen among the cuts by a
small dynamic programme that rewards strong cuts and segments near ``TARGET_SEGMENT_S``, and
punishes segments outside [``MIN_SEGMENT_S``, ``MAX_SEGMENT_S``] (allowed only when the video
leaves no choice). Stretches without cuts longer than ``MAX_SEGMENT_S`` get even split points
every ~``EVEN_SPLIT_S``. The segments always tile [0, duration] exactly.

Music: from the prompt (``music.prompt.parse_prompt``): style, mood, explicit tempo/key (kept
exactly), named instruments, energy level and arc. What the prompt leaves open comes from the
picture: tempo from the style's default nudged by the mean motion, the mode from the brightness,
per-segment and per-bar energy from motion, accents at the cuts. The seed only picks the tonic.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re

from musicvid_core.domain.features import Curve, VideoFeatures
from musicvid_core.domain.plan import SPEECH_CLEARANCE_LU, Plan, Segment

MIN_SEGMENT_S = 6.0
MAX_SEGMENT_S = 30.0
TARGET_SEGMENT_S = 15.0
EVEN_SPLIT_S = 20.0  # spacing of the split points added to long stretches without cuts
_OUT_OF_RANGE_PENALTY = 10.0  # per segment outside [MIN, MAX] (plus 1 per second outside)
_CUT_BONUS = 1.0  # per boundary, times the cut's strength
_WINDOW_S = 2 * MAX_SEGMENT_S  # longest segment the programme considers (besides the whole video)

MOTION_NEUTRAL = 0.35  # between a still shot (~0.15) and a steady pan (~0.5): no tempo nudge
TEMPO_MOTION_SPAN = 0.6  # a motion 1.0 above neutral moves the tempo by 0.6 x the style's range
SEGMENT_MOTION_WEIGHT = 0.5  # energy offset per unit of (segment motion - video motion)
ARC_MOTION_WEIGHT = 0.25  # the same when the prompt gives an arc: its shape leads, motion modulates
MIN_ENERGY = 0.05  # the quietest segment still plays something
BAR_MOTION_WEIGHT = 0.3  # energy offset per unit of (bar motion - segment motion)
DARK_PICTURE = 0.3  # mean brightness below which an unspecified mode is minor
BEATS_PER_BAR = 4
PEAK_END_LIFT = 0.4  # energy added to the last segment when the prompt asks for a big finish
MUSIC_NOMINAL_LUFS = -18.0  # the composer's segment loudness at energy 0.5 (music/fx.py)

# Tonics from darker-sounding (flat) to brighter (sharp) keys; the picture's brightness picks the
# neighbourhood, the seed picks within it.
_TONICS = {"major": ("Eb", "Bb", "F", "C", "G", "D", "A", "E"),
           "minor": ("F", "C", "G", "D", "A", "E", "B", "F#")}
_TEMPO_HINTS = {"slow": 0.2, "medium": 0.5, "fast": 0.85}  # position in the style's bpm range
_ARC_PHRASES = {"build": "building energy", "fade": "winding down"}


class RulePlanner:
    """Planner port implementation without any model: fast, offline, deterministic per seed."""

    name = "rules"

    def __init__(self, settings=None) -> None:
        self.settings = settings

    def plan(self, features: VideoFeatures, prompt: str, seed: int) -> Plan:
        """A Plan tiling [0, features.media.duration] (seconds), its beat grids fitted to the cuts.
        Raises PlanValidationError only if the rules produced something invalid (a bug), never
        for a prompt."""
        return lock_timing(self.draft(features, prompt, seed), features)

    def draft(self, features: VideoFeatures, prompt: str, seed: int) -> Plan:
        """The plan before :func:`lock_timing` fits its beat grids (no beats, no energy curves):
        what a model planner takes its mix-level fields from."""
        from musicvid_core.domain.styles import DEFAULT_STYLE, STYLES
        from musicvid_core.stages.plan.prompt import parse_prompt

        intent = parse_prompt(prompt)
        style = STYLES.get(intent.style) or STYLES[DEFAULT_STYLE]
        duration = features.media.duration
        cuts = sorted(features.cuts, key=lambda c: c.time)
        bounds = segment_bounds(duration, [(c.time, c.strength) for c in cuts])

        video_motion = _mean(features.motion, 0.0, duration, default=MOTION_NEUTRAL)
        brightness = _mean(features.brightness, 0.0, duration, default=0.5)
        mood = intent.mood if intent.mood != "neutral" else style.default_mood
        bpm = choose_bpm(intent, style, video_motion)
        key = choose_key(intent, style, brightness, mood, seed)
        level = intent.energy if intent.energy is not None else 0.5

        energies = []
        for i, (start, end) in enumerate(itertools.pairwise(bounds)):
            seg_motion = _mean(features.motion, start, end, default=video_motion)
            arc = _arc(intent.arc, (start + end) / 2 / duration) - 0.5 if intent.arc else 0.0
            if intent.arc == "peak_end" and i == len(bounds) - 2:
                arc = PEAK_END_LIFT
            weight = ARC_MOTION_WEIGHT if intent.arc else SEGMENT_MOTION_WEIGHT
            energies.append(_clip(level + arc + weight * (seg_motion - video_motion), MIN_ENERGY))
        energies = _shape(energies, intent.arc)

        cut_times = [c.time for c in cuts]
        text_instruments = intent.instruments or _style_instrument_names(style)
        segments = []
        for i, (start, end) in enumerate(itertools.pairwise(bounds)):
            energy = energies[i]
            # The per-bar energy curve is drawn by lock_timing, on the fitted bars.
            segments.append(Segment(
                index=i, start=start, end=end, style=style.name, mood=mood, bpm=bpm, key=key,
                energy=round(energy, 3),
                # Only instruments the prompt named: the composer plays those whatever the energy
                # and otherwise keeps the style's arrangement (see stages/compose/roles.assign_roles).
                instruments=list(intent.instruments),
                accents=[t for t in cut_times if start + 1e-3 < t < end - 1e-3],
                prompt=_describe(style, mood, bpm, key, text_instruments, energy, intent.arc,
                                 last=i == len(bounds) - 2)))
        return Plan(duration=duration, prompt=prompt, seed=seed, segments=segments,
                    understood=dict(intent.understood), cuts=cut_times,
                    # short clips: fades that fit (the defaults suit clips of 8 s and more)
                    fade_in_s=min(0.5, duration / 8), fade_out_s=min(2.0, duration / 4),
                    speech=list(features.speech), **self._ducking(features),
                    source_music=list(features.music),
                    source_music_policy=getattr(self.settings, "source_music", "duck"),
                    planner=self.name)

    def _ducking(self, features: VideoFeatures) -> dict:
        """The plan's ducking fields: attack and release from the settings, depth from
        :func:`duck_db` (the Plan's defaults when the planner was built without settings)."""
        def setting(name: str) -> float:
            if self.settings is None:
                return Plan.model_fields[name].default
            return getattr(self.settings, name)

        return {"duck_db": duck_db(features, setting("duck_db")), "duck_attack_s": setting("duck_attack_s"),
                "duck_release_s": setting("duck_release_s")}


def reroll_segment(plan: Plan, index: int, features: VideoFeatures | None = None, *,
                   prompt: str | None = None, hits: list[float] | None = None) -> Plan:
    """The plan with segment ``index`` re-rolled: its ``variation`` bumped (the composer draws new
    random choices) and, with ``prompt``, its style, mood, tempo, energy and instruments taken from
    that prompt; the key stays the plan's (its mode changes only when the prompt names one, or a
    key when it names one) so the segment still belongs with its neighbours. Its beat grid is
    refitted (with ``hits`` inside it). The other segments are returned unchanged. Raises
    BadInput for an index outside the plan."""
    from musicvid_core.domain.errors import BadInput
    from musicvid_core.domain.styles import DEFAULT_STYLE, STYLES
    from musicvid_core.stages.plan.prompt import parse_prompt

    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(plan.segments):
        raise BadInput(f"segment {index!r} is outside the plan (0..{len(plan.segments) - 1})")
    seg = plan.segments[index]
    update: dict = {"variation": seg.variation + 1}
    understood = dict(plan.understood)
    explicit = None
    if prompt:
        intent = parse_prompt(prompt)
        style = STYLES.get(intent.style) or STYLES[DEFAULT_STYLE]
        motion = _mean(features.motion, seg.start, seg.end, default=MOTION_NEUTRAL) if features else MOTION_NEUTRAL
        tonic, mode = seg.key.split()
        key = intent.key or f"{tonic} {intent.mode or mode}"
        mood = intent.mood if intent.mood != "neutral" else style.default_mood
        bpm = choose_bpm(intent, style, motion)
        energy = round(_clip(intent.energy, MIN_ENERGY) if intent.energy is not None else seg.energy, 3)
        update.update(style=style.name, mood=mood, bpm=bpm, key=key, energy=energy,
                      instruments=list(intent.instruments),
                      prompt=_describe(style, mood, bpm, key, intent.instruments or _style_instrument_names(style),
                                       energy, None, last=False))
        explicit = intent.bpm is not None
        understood["segments"] = {**understood.get("segments", {}), str(index): intent.understood}
    segments = [s.model_copy(update=update) if s.index == index else s for s in plan.segments]
    plan = plan.model_copy(update={"segments": segments, "understood": understood})
    return lock_timing(plan, features, hits=hits, only={index}, explicit=explicit)


def lock_timing(plan: Plan, features: VideoFeatures | None = None, *, hits: list[float] | None = None,
                only: set[int] | None = None, explicit: bool | None = None) -> Plan:
    """The plan with each segment's tempo and beat grid fitted to its scene cuts (and ``hits``,
    seconds from the video start, which replace the plan's requested accents when given) by
    :func:`musicvid_core.stages.plan.timing.fit_beats`; the per-bar energy curve re-drawn on the fitted
    bars (from ``features.motion`` when given, else resampled from the old curve). ``only``: the
    segment indexes to refit (the others are returned unchanged); ``explicit``: whether the
    tempo was asked for exactly (default: whether the prompt named one). Works on any planner's plan."""
    from musicvid_core.stages.plan.prompt import resolve_style
    from musicvid_core.stages.plan.timing import Anchor, fit_beats

    hits = sorted({round(float(h), 6) for h in (plan.hits if hits is None else hits)
                   if 0.0 <= float(h) < plan.duration})
    strength = {c.time: c.strength for c in features.cuts} if features is not None else {}
    if explicit is None:
        explicit = plan.understood.get("bpm") is not None
    arc = plan.understood.get("arc")
    last = len(plan.segments) - 1
    segments: list[Segment] = []
    for seg in plan.segments:
        if only is not None and seg.index not in only:
            segments.append(seg)
            continue
        family = segments[-1].bpm if segments and segments[-1].style == seg.style else None
        style = resolve_style(seg.style, seg.prompt)
        cuts = [t for t in plan.cuts if seg.start + 1e-3 < t < seg.end - 1e-3]
        mine = [h for h in hits if seg.start - 1e-3 <= h < seg.end - 1e-3]
        anchors = [Anchor(t - seg.start, strength.get(t, 1.0)) for t in cuts]
        anchors += [Anchor(h - seg.start, 1.0, hit=True) for h in mine]
        fit = fit_beats(seg.duration, anchors, bpm=seg.bpm, bpm_range=style.bpm_range, explicit=explicit,
                        end_on_bar=seg.index != last, family=family)
        beats = [t for t in (round(seg.start + b, 6) for b in fit.beats) if t < seg.end]
        bars = beats[::BEATS_PER_BAR]
        if features is not None:
            curve = _bar_energies_at(features.motion, bars, seg.end, seg.energy, arc, plan.duration)
        else:
            curve = _resample_curve(seg, bars)
        # A hit on the segment's first beat is marked by the segment-start accent already.
        # The description follows the fitted tempo (a text-to-music backend reads it; double time
        # for fast cutting can move it far from the requested one).
        prompt = re.sub(rf"\b{seg.bpm:.0f} ?bpm\b", f"{fit.bpm:.0f} bpm", seg.prompt)
        segments.append(seg.model_copy(update={
            "bpm": fit.bpm, "prompt": prompt, "beats": beats, "energy_curve": curve, "hits": mine,
            "accents": sorted({*cuts, *(h for h in mine if h > seg.start + 1e-3)})}))
    return plan.model_copy(update={"segments": segments, "hits": hits})


def _bar_energies_at(motion: Curve, bars: list[float], end: float, energy: float, arc: str | None,
                     duration: float) -> list[float]:
    """Per-bar energy (0..1) on bars starting at ``bars`` (seconds) and ending at ``end``: the
    segment's energy, plus the arc's slope across the segment, plus how much more (or less) each
    bar moves than the segment does."""
    start = bars[0]
    seg_motion = _mean(motion, start, end, default=MOTION_NEUTRAL)
    mid_arc = _arc(arc, (start + end) / 2 / duration)
    out = []
    for a, z in zip(bars, [*bars[1:], end]):
        bar_arc = _arc(arc, (a + z) / 2 / duration)
        bar_motion = _mean(motion, a, z, default=seg_motion)
        out.append(round(_clip(energy + bar_arc - mid_arc + BAR_MOTION_WEIGHT * (bar_motion - seg_motion)), 3))
    return out


def _resample_curve(seg: Segment, bars: list[float]) -> list[float]:
    """The segment's old per-bar energies read at the middle of each new bar."""
    if not seg.energy_curve:
        return []
    old_bars = seg.beats[::BEATS_PER_BAR] if seg.beats else [
        seg.start + k * BEATS_PER_BAR * 60.0 / seg.bpm for k in range(len(seg.energy_curve))]
    out = []
    for a, z in zip(bars, [*bars[1:], seg.end]):
        k = bisect.bisect_right(old_bars, (a + z) / 2) - 1
        out.append(seg.energy_curve[max(0, min(k, len(seg.energy_curve) - 1))])
    return out


def duck_db(features: VideoFeatures, default: float) -> float:
    """How far (dB) the music is ducked under speech: ``default``, or deeper when the music at its
    nominal level would sit less than SPEECH_CLEARANCE_LU under the original's loudness (dominated by
    the speech when there is speech). Outside speech the music leads at full level. The mixer
    measures both buses and deepens this further when the real music or speech needs it."""
    loud = features.audio_integrated_lufs
    if loud is None or loud <= -60 or not features.speech:
        return default
    return round(_clip(MUSIC_NOMINAL_LUFS - (loud - SPEECH_CLEARANCE_LU), default, 40.0), 2)


def segment_bounds(duration: float, cuts: list[tuple[float, float]]) -> list[float]:
    """Segment boundaries [0, ..., duration] (seconds) chosen among ``cuts`` ((time, strength 0..1)):
    the path through the candidate points with the best score (cut strengths at boundaries,
    minus each segment's distance from the target length). Pure function of its arguments."""
    strongest: dict[float, float] = {}
    for t, s in cuts:
        if 1e-3 < t < duration - 1e-3:
            strongest[t] = max(s, strongest.get(t, 0.0))
    points = [(0.0, 0.0), *sorted(strongest.items())]
    points.append((duration, 0.0))
    # Stretches with no cut longer than MAX get evenly spaced split points (strength 0).
    filled = [points[0]]
    for (a, _), (b, s) in itertools.pairwise(points):
        if b - a > MAX_SEGMENT_S:
            parts = math.ceil((b - a) / EVEN_SPLIT_S)
            filled += [(round(a + (b - a) * k / parts, 6), 0.0) for k in range(1, parts)]
        filled.append((b, s))
    times = [t for t, _ in filled]
    last = len(filled) - 1
    best = [-math.inf] * len(filled)
    back = [0] * len(filled)
    best[0] = 0.0
    lo = 0
    for j in range(1, len(filled)):
        while times[j] - times[lo] > _WINDOW_S:
            lo += 1
        bonus = 0.0 if j == last else _CUT_BONUS * filled[j][1]
        for i in sorted({0, *range(lo, j)}):
            score = best[i] - _length_cost(times[j] - times[i]) + bonus
            if score > best[j]:
                best[j], back[j] = score, i
    path = [last]
    while path[-1] != 0:
        path.append(back[path[-1]])
    return [times[k] for k in reversed(path)]


def _length_cost(length: float) -> float:
    cost = abs(math.log(length / TARGET_SEGMENT_S))
    if length < MIN_SEGMENT_S:
        cost += _OUT_OF_RANGE_PENALTY + (MIN_SEGMENT_S - length)
    elif length > MAX_SEGMENT_S:
        cost += _OUT_OF_RANGE_PENALTY + (length - MAX_SEGMENT_S)
    return cost


def choose_bpm(intent, style, motion: float) -> float:
    """An explicit tempo exactly; else the style's default (or the prompt's pace word's place in
    the style's range), moved by how much the picture moves, kept within the style's range."""
    if intent.bpm is not None:
        return float(intent.bpm)
    lo, hi = style.bpm_range
    base = lo + _TEMPO_HINTS[intent.tempo_hint] * (hi - lo) if intent.tempo_hint in _TEMPO_HINTS \
        else style.default_bpm
    return float(round(min(hi, max(lo, base + (motion - MOTION_NEUTRAL) * TEMPO_MOTION_SPAN * (hi - lo)))))


def choose_key(intent, style, brightness: float, mood: str, seed: int) -> str:
    """An explicit key exactly; else the mode from the prompt (mood words), a dark picture (minor)
    or the style, and a tonic near the picture's brightness, picked by the seed."""
    if intent.key:
        return intent.key
    mode = intent.mode or ("minor" if brightness < DARK_PICTURE else style.default_mode)
    tonics = _TONICS[mode]
    centre = round(_clip(brightness) * (len(tonics) - 1))
    nearby = tonics[max(0, centre - 2):centre + 3]
    # random.Random seeded with a str hashes it with SHA-512: stable across processes.
    return f"{random.Random(f'{seed}:{mood}:{mode}').choice(nearby)} {mode}"


def _arc(arc: str | None, x: float) -> float:
    """The prompt's energy shape at relative position ``x`` (0..1) of the video."""
    if arc == "build":
        return 0.2 + 0.6 * x
    if arc == "fade":
        return 0.8 - 0.6 * x
    if arc == "peak_end":
        return 0.3 + 0.3 * x
    return 0.5


def _shape(energies: list[float], arc: str | None) -> list[float]:
    """Make the arc hold whatever the motion did: build never falls, fade never rises, and with
    peak_end the last segment is clearly the highest."""
    out = list(energies)
    if arc == "build":
        out = [max(out[:i + 1]) for i in range(len(out))]
    elif arc == "fade":
        out = [min(out[:i + 1]) for i in range(len(out))]
    elif arc == "peak_end" and len(out) > 1:
        top = min(1.0, max(out) + 0.1)
        out = [min(e, top - 0.1) for e in out[:-1]] + [top]
    return out


def _mean(curve: Curve, start: float, end: float, *, default: float) -> float:
    """Mean of the curve's samples in [start, end) (times sorted); the nearest sample when none
    falls inside; ``default`` for an empty curve."""
    times, values = curve.times, curve.values
    if not times:
        return default
    a, z = bisect.bisect_left(times, start), bisect.bisect_left(times, end)
    if z > a:
        return sum(values[a:z]) / (z - a)
    mid = (start + end) / 2
    k = min(bisect.bisect_left(times, mid), len(times) - 1)
    nearest = k - 1 if k and abs(times[k - 1] - mid) <= abs(times[k] - mid) else k
    return values[nearest]


def _clip(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return min(hi, max(lo, x))


def _style_instrument_names(style) -> list[str]:
    """Readable names of the style's melodic instruments (for the text prompt), plus drums."""
    from musicvid_core.domain.styles import GM_INSTRUMENTS

    by_program: dict[int, str] = {}
    for name, program in GM_INSTRUMENTS.items():
        by_program.setdefault(program, name)
    names = [by_program[p] for role, p in style.instruments.items() if role != "drums" and p in by_program]
    names = list(dict.fromkeys(names))
    return names + (["drums"] if "drums" in style.instruments else [])


def _describe(style, mood: str, bpm: float, key: str, instruments: list[str], energy: float,
              arc: str | None, *, last: bool) -> str:
    """A MusicGen-style description: "warm acoustic folk, 96 bpm, A major, guitar and flute, ..."."""
    genre = style.label.lower().replace(" / ", " ")
    if len(instruments) > 1:
        played = ", ".join(instruments[:-1]) + " and " + instruments[-1]
    else:
        played = instruments[0] if instruments else ""
    feel = ("gentle" if energy < 0.3 else "steady" if energy < 0.55 else "energetic" if energy < 0.8
            else "intense")
    shape = ("big finish" if last else "rising") if arc == "peak_end" else _ARC_PHRASES.get(arc or "", "")
    parts = [f"{mood} {genre}" if mood != "neutral" else genre, f"{bpm:.0f} bpm", key, played, feel, shape]
    return ", ".join(p for p in parts if p)
