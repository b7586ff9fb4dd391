"""Cut-locked beat grids: a segment's tempo and beat times chosen so that scene cuts land on beats.

A segment starts on a downbeat (its first scene cut, or the video start). Inside it, every scene
cut (and every requested hit) is an *anchor*. :func:`fit_beats` picks a nominal tempo near the one
the planner asked for, and between consecutive anchors a whole number of beats, so that each
anchor falls on a beat: exactly, or within SYNC_S (a frame) of it where that saves bending the
tempo -- a sound within a frame of a cut is in sync with it. Where the gap between two anchors is not a whole number of beats
at the nominal tempo, the beats in that gap are stretched or squeezed evenly (tempo drift, at most
``max_drift``); an anchor that no drift within the limit can reach is left off the grid (a miss).
Where cuts come faster than one every DENSE_BEATS beats, tempos of FAST_RANGE (the style's own, or
its double time) compete too: a finer grid reaches more cuts with less bending. Strong cuts and
hits prefer bar lines, and the segment's end (the next segment's first downbeat)
must be a bar line. The choice is a small dynamic programme over (anchor, beat count modulo the
meter), run for a handful of candidate tempos, then again with the sync offsets for the best
REFINE of them; a segment is pulled towards its predecessor's tempo family (``family``). See
docs/music.md ("Cut-locked timing").

Pure functions of their arguments; times in seconds from the segment start, tempos in bpm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

METER = 4
STRONG_CUT = 0.6  # a cut at least this strong wants a bar line
MERGE_S = 0.15  # anchors closer than this are one musical event (the stronger is kept)
SEARCH = 0.12  # nominal tempos searched within +-12 % of the asked tempo (and the style's range)
TEMPO_STEP = 0.25  # bpm between candidate tempos
CANDIDATES = 8  # candidate tempos that get the full dynamic programme
MAX_SKIP = 6  # an anchor may be left off the grid; at most this many in a row
MAX_DRIFT = 0.10  # local tempo within +-10 % of the nominal one (a free tempo) ...
SHORT_DRIFT = 0.18  # ... or +-18 % for a gap of one or two beats (fast cutting: a nudged beat, not a
SHORT_BEATS = 2  # tempo change; the cost still grows with the square of the drift). Bent further, the
# gap is heard (and tracked) as one beat more or less: see docs/music.md, "Cut-locked timing"
EXPLICIT_DRIFT = 0.03  # ... within +-3 % when the prompt named the tempo
# Costs (dimensionless): drift is charged per beat as (log tempo ratio)^2 so that a long stretch of
# rubato costs more than a short nudge; a missed anchor costs about as much as 10 % drift over 8 beats.
W_DRIFT = 1.0
MISS = 0.08
HIT_MISS = 0.5  # a requested hit is all but mandatory
DOWNBEAT = 0.01  # a strong cut off the bar line (times its strength); a hit: HIT_DOWNBEAT
HIT_DOWNBEAT = 0.1
END_OFF_BAR = 0.05  # the segment's end is not a bar line (its last bar is cut short)
DENSE_BEATS = 2.0  # fast cutting: anchors a median of fewer than this many beats apart ...
FAST_RANGE = (140.0, 190.0)  # ... also try tempos here (beats 0.32-0.43 s), in or at double the style's range
SYNC_S = 1 / 30  # a beat within a frame (at 30 fps) of a cut is in sync with it
SYNC_OFFSETS = (-SYNC_S, -SYNC_S / 2, 0.0, SYNC_S / 2, SYNC_S)  # where an anchor's beat may sit
W_OFFSET = 0.01  # a beat a whole SYNC_S off its anchor (scaled by the square of the offset)
REFINE = 3  # candidate tempos refitted with the sync offsets
RELATED = 0.03  # a segment in its predecessor's tempo family: within +-3 % of it, its half or double
W_TEMPO = 0.3  # per beat, (log of nominal / asked tempo)^2: stay near the asked tempo


@dataclass(frozen=True)
class Anchor:
    """A moment the music should mark: seconds from the segment start, strength 0..1, and whether
    it is a requested hit (which wants a downbeat and must not be missed)."""

    time: float
    strength: float = 1.0
    hit: bool = False


@dataclass(frozen=True)
class BeatFit:
    """The fitted grid. ``beats`` are seconds from the segment start (``beats[0] == 0``, every
    ``meter``-th beat a bar line, all before the segment's end); ``hit`` / ``missed`` the anchor
    times that are / are not on a beat; ``max_drift`` the largest local tempo deviation from
    ``bpm`` (a fraction, 0.05 = 5 %)."""

    bpm: float
    beats: tuple[float, ...]
    hit: tuple[float, ...]
    missed: tuple[float, ...]
    max_drift: float
    cost: float


def fit_beats(duration: float, anchors: list[Anchor], *, bpm: float,
              bpm_range: tuple[float, float] | None = None, explicit: bool = False,
              end_on_bar: bool = True, meter: int = METER, family: float | None = None) -> BeatFit:
    """Fit a beat grid to a segment of ``duration`` seconds whose ``anchors`` should fall on beats.

    ``bpm`` is the tempo asked for (kept exactly as the nominal tempo when ``explicit``, else
    searched within +-SEARCH and ``bpm_range`` and, for fast cutting, also in FAST_RANGE within the
    style's range or its double time; the result's ``bpm`` is the grid's mean tempo);
    ``end_on_bar``: the segment's end must be a bar
    line (every segment but the last); ``family``: the previous segment's tempo, whose half, own
    and double tempo (where the style allows) are tried too and become the tempo the fit is pulled
    towards, so that consecutive segments stay in one tempo family. Raises ValueError for a
    non-positive duration or tempo."""
    if duration <= 0 or bpm <= 0 or meter < 1:
        raise ValueError(f"fit_beats needs a positive duration, tempo and meter, got {duration}, {bpm}, {meter}")
    points = _merge(anchors, duration)
    if explicit:
        families = [(float(bpm), [float(bpm)])]
        drift = short = EXPLICIT_DRIFT
    else:
        style_lo, style_hi = bpm_range or (bpm, bpm)
        lo, hi = max(min(style_lo, bpm), bpm * (1 - SEARCH)), min(max(style_hi, bpm), bpm * (1 + SEARCH))
        families = [(float(bpm), _shortlist(np.arange(lo, hi + 1e-9, TEMPO_STEP), points, duration, bpm,
                                            end_on_bar))]
        dense = _dense(points, bpm)
        if dense:
            families += _fast_families(points, duration, bpm, (style_lo, style_hi), end_on_bar)
        if family:
            families = [(t, tempos) for _, tempos in families for t in [_octave_near(family, tempos)]]
            families += _related(points, duration, family, (style_lo, style_hi), dense, end_on_bar)
        drift, short = MAX_DRIFT, SHORT_DRIFT
    scored = []  # (cost, tempo, target): every candidate with the anchors exactly on beats
    for target, tempos in families:
        for tempo in tempos:
            cost, _ = _programme(points, duration, tempo, drift, end_on_bar, meter, short)
            scored.append((cost + _pull(duration, tempo, target), tempo, target))
    scored.sort(key=lambda c: c[0])
    best: tuple[float, float, list] = (math.inf, float(families[0][1][0]), [])
    for _, tempo, target in scored[:REFINE]:  # the best few again, anchors within the sync window
        cost, path = _programme(points, duration, tempo, drift, end_on_bar, meter, short, SYNC_OFFSETS)
        cost += _pull(duration, tempo, target)
        if cost < best[0] - 1e-12:
            best = (cost, tempo, path)
    cost, tempo, path = best
    return _grid(points, duration, tempo, path, cost, explicit)


def nominal_grid(bpm: float, duration: float) -> tuple[float, ...]:
    """Evenly spaced beats at ``bpm`` from 0 up to (not including) ``duration`` seconds."""
    beat = 60.0 / bpm
    return tuple(i * beat for i in range(max(1, math.ceil(duration / beat - 1e-9))))


# ---------------------------------------------------------------------------------------------
def _merge(anchors: list[Anchor], duration: float) -> list[Anchor]:
    """Anchors strictly inside the segment (not within MERGE_S of its edges), sorted; anchors
    closer than MERGE_S merged into the strongest (a hit wins)."""
    inside = sorted((a for a in anchors if MERGE_S <= a.time <= duration - MERGE_S), key=lambda a: a.time)
    out: list[Anchor] = []
    for a in inside:
        if out and a.time - out[-1].time < MERGE_S:
            if (a.hit, a.strength) > (out[-1].hit, out[-1].strength):
                out[-1] = a
            continue
        out.append(a)
    return out


def _dense(points: list[Anchor], bpm: float) -> bool:
    """Fast cutting: the median gap between consecutive anchors is under DENSE_BEATS beats."""
    if len(points) < 3:
        return False
    gaps = np.diff([0.0] + [a.time for a in points])
    return float(np.median(gaps)) < DENSE_BEATS * 60.0 / bpm


def _fast_families(points: list[Anchor], duration: float, bpm: float, style_range: tuple[float, float],
                   end_on_bar: bool) -> list[tuple[float, list[float]]]:
    """For fast cutting, the tempos of FAST_RANGE the style allows: its own range, or its double
    time (every beat an eighth of the style's tempo). Each family: (target tempo, shortlist)."""
    out = []
    for k in (1, 2):
        lo, hi = max(style_range[0] * k, FAST_RANGE[0]), min(style_range[1] * k, FAST_RANGE[1])
        if lo > hi:
            continue
        target = min(max(bpm * k, lo), hi)
        out.append((target, _shortlist(np.arange(lo, hi + 1e-9, TEMPO_STEP), points, duration, target,
                                       end_on_bar)))
    return out


def _octave_near(family: float, tempos: list[float]) -> float:
    """The tempo of ``family``'s family (it, its halves, its doubles) nearest the middle of ``tempos``."""
    mid = float(np.median(tempos))
    return family * 2.0 ** round(math.log2(mid / family))


def _related(points: list[Anchor], duration: float, family: float, style_range: tuple[float, float],
             dense: bool, end_on_bar: bool) -> list[tuple[float, list[float]]]:
    """The previous segment's tempo family (half, same, double) within RELATED of it, where the
    style's range (or, for fast cutting, FAST_RANGE up to its double time) allows."""
    out = []
    for f in (family / 2, family, family * 2):
        ok = style_range[0] <= f <= style_range[1] or (
            dense and FAST_RANGE[0] <= f <= min(FAST_RANGE[1], 2 * style_range[1]))
        if ok:
            tempos = np.arange(f * (1 - RELATED), f * (1 + RELATED) + 1e-9, TEMPO_STEP)
            out.append((f, _shortlist(tempos, points, duration, f, end_on_bar)))
    return out


def _shortlist(tempos: np.ndarray, points: list[Anchor], duration: float, bpm: float,
               end_on_bar: bool) -> list[float]:
    """The CANDIDATES tempos whose rounded beat counts between consecutive anchors need the least
    drift (vectorised over all tempos), plus the asked tempo when it is among those searched."""
    if tempos.size == 0:
        return [float(bpm)]
    times = [0.0] + [a.time for a in points] + ([duration] if end_on_bar else [])
    gaps = np.diff(np.asarray(times))
    if gaps.size == 0:
        score = np.zeros_like(tempos)
    else:
        exact = gaps[None, :] * tempos[:, None] / 60.0
        n = np.maximum(1.0, np.round(exact))
        score = (n * np.log(n / exact) ** 2).sum(axis=1)
    score = score + _pull(duration, tempos, bpm)
    picked = [float(tempos[i]) for i in np.argsort(score, kind="stable")[:CANDIDATES]]
    if tempos[0] - 1e-9 <= bpm <= tempos[-1] + 1e-9 and float(bpm) not in picked:
        picked.append(float(bpm))
    return picked


def _pull(duration: float, tempo, target: float):
    """The cost of a nominal ``tempo`` (bpm, or an array of them) away from ``target``:
    W_TEMPO per beat of the segment times the squared log ratio."""
    return W_TEMPO * duration * tempo / 60 * np.log(tempo / target) ** 2


def _programme(points: list[Anchor], duration: float, tempo: float, drift: float, end_on_bar: bool,
               meter: int, short_drift: float = 0.0, offsets: tuple[float, ...] = (0.0,),
               ) -> tuple[float, list[tuple[int, int, float]]]:
    """Least-cost way through the anchors at nominal ``tempo``: a list of (point, beats since the
    previous used point, the beat's offset from the point in seconds), point 0 being the segment
    start and point len+1 the end (only when ``end_on_bar``). A cut's beat may sit at any of
    ``offsets`` from it (the segment's start and end, and requested hits: exactly on it).
    Returns (cost, path)."""
    times = [0.0] + [a.time for a in points] + [duration]
    end = len(times) - 1
    miss = [0.0] + [(HIT_MISS if a.hit else MISS * (1 + a.strength)) for a in points] + [0.0]
    offs = [(0.0,)] + [(0.0,) if a.hit else tuple(offsets) for a in points] + [(0.0,)]
    width = max((abs(o) for o in offsets), default=0.0)
    off_cost = {o: (W_OFFSET * (o / width) ** 2 if width else 0.0) for o in offsets}
    inf = math.inf
    cost = [{(o, s): inf for o in offs[j] for s in range(meter)} for j in range(end + 1)]
    back: list[dict] = [{} for _ in times]
    cost[0][(0.0, 0)] = 0.0
    skipped = [0.0]
    for m in miss[1:]:
        skipped.append(skipped[-1] + m)  # prefix sums: the cost of leaving anchors i+1..j-1 off
    beat = 60.0 / tempo
    wide = max(drift, short_drift)
    for i in range(end):
        for (oi, s), ci in cost[i].items():
            if ci == inf:
                continue
            ti = times[i] + oi
            for j in [*range(i + 1, min(end - 1, i + MAX_SKIP) + 1), end]:
                base = ci + skipped[j - 1] - skipped[i]
                if j == end and not end_on_bar:
                    if base < cost[j][(0.0, 0)]:  # the grid runs on at the nominal tempo to the end
                        cost[j][(0.0, 0)], back[j][(0.0, 0)] = base, (i, oi, s, 0)
                    continue
                for oj in offs[j]:
                    exact = (times[j] + oj - ti) / beat
                    if exact <= 0:
                        continue
                    lo_n = max(1, math.ceil(exact * math.exp(-wide) - 1e-9))
                    hi_n = max(lo_n, math.floor(exact * math.exp(wide) + 1e-9))
                    for n in range(lo_n, hi_n + 1):
                        d = math.log(n / exact)
                        if abs(d) > (short_drift if n <= SHORT_BEATS else drift) + 1e-9:
                            continue
                        state = (s + n) % meter
                        c = base + W_DRIFT * n * d * d + off_cost.get(oj, 0.0)
                        if j == end:
                            c += END_OFF_BAR if state else 0.0
                        elif state:
                            a = points[j - 1]
                            c += HIT_DOWNBEAT if a.hit else DOWNBEAT * a.strength if a.strength >= STRONG_CUT else 0.0
                        if c < cost[j][(oj, state)]:
                            cost[j][(oj, state)], back[j][(oj, state)] = c, (i, oi, s, n)
    # The end must be reached; a gap no drift can bridge falls back to the nominal grid to the end.
    final = min(cost[end], key=cost[end].get)
    if cost[end][final] == inf:
        return inf, []
    path: list[tuple[int, int, float]] = []
    j, key = end, final
    while j:
        i, oi, si, n = back[j][key]
        path.append((j, n, key[0]))
        j, key = i, (oi, si)
    return cost[end][final], list(reversed(path))


def _grid(points: list[Anchor], duration: float, tempo: float, path: list[tuple[int, int, float]],
          cost: float, explicit: bool) -> BeatFit:
    times = [0.0] + [a.time for a in points] + [duration]
    end = len(times) - 1
    beats: list[float] = []
    used = {0}
    prev, prev_t, max_drift = 0, 0.0, 0.0
    beat = 60.0 / tempo
    for j, n, off in path:
        if n == 0:  # runs on freely from times[prev]
            break
        step = (times[j] + off - prev_t) / n
        beats += [prev_t + k * step for k in range(n)]
        max_drift = max(max_drift, abs(beat / step - 1))
        used.add(j)
        prev, prev_t = j, times[j] + off
    if prev != end:  # free run at the nominal tempo from the last used point to the end
        k = 0
        while prev_t + k * beat < duration - 1e-9:
            beats.append(prev_t + k * beat)
            k += 1
    beats = [b for b in beats if b < duration - 1e-9] or [0.0]
    hit = tuple(points[j - 1].time for j in sorted(used) if 0 < j < end)
    missed = tuple(a.time for k, a in enumerate(points, 1) if k not in used)
    if not explicit and len(beats) >= 2:  # the tempo actually played: mean beat rate (least squares)
        tempo = 60.0 / float(np.polyfit(np.arange(len(beats)), np.asarray(beats), 1)[0])
    return BeatFit(bpm=round(tempo, 2), beats=tuple(round(b, 6) for b in beats), hit=hit, missed=missed,
                   max_drift=round(max_drift, 4), cost=round(cost, 6) if math.isfinite(cost) else cost)
