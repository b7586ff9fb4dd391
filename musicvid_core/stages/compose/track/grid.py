"""Where the output's beats and bar lines go: a beat grid at the track's own tempo, bent (at most
``max_stretch``) so that cuts land on beats, strong cuts and hits on bar lines, and the ending's
bar line where the ending needs it.

The output is a sequence of beats numbered from the first bar line (0; a pickup's beats are
negative); bar lines are the multiples of the meter. Every cut or hit is an *anchor*. Between two
consecutive anchors that the grid reaches, the gap holds a whole number of beats ``k``: the first
ones at the track's own beat period ``T`` (played as recorded: no time-stretch), the last few
before the anchor stretched or squeezed (Rubber Band, pitch kept) by the excess ``e = gap - k*T``.
The stretched beats are as few as ``|e| / (PREFERRED_STRETCH * T)`` allows: what is played as
recorded sounds best and costs nothing to render. An anchor's beat may sit up to ``SYNC_S`` off the
cut (in sync to the eye; it saves stretch). The choice of ``k`` everywhere is a small dynamic
programme over (anchor, beat count modulo the meter, sync offset), costing the stretch in beats
(``|e| / T``), a missed anchor, a strong cut off the bar line. Anchors no stretch can reach are left
off the grid. See docs/tracks.md ("The grid").

Pure functions; times in seconds from the output's start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PREFERRED_STRETCH = 0.04  # stretched beats run at most this far off the recording's tempo, when the gap allows
SYNC_S = 0.05  # an anchor's beat may sit this far from the cut (the +-70 ms tolerance less detection error)
SYNC_STEPS = (-1.0, -0.5, 0.0, 0.5, 1.0)  # offsets tried, in SYNC_S; the exact one is tried too
HIT_SYNC_S = 0.01
MERGE_S = 0.15  # anchors closer than this are one event (the stronger kept)
MAX_SKIP = 4  # at most this many anchors in a row may be left off the grid
LUCK_S = 0.05  # a skipped anchor within this of a grid beat still counts as on it
# Costs, in beats of stretch (|e| / T). Measured trade-off (docs/tracks.md, "The grid"): a strong
# cut reaches its bar line only when the span before it absorbs up to half a bar, often by leaving
# a cut or two before it off the grid; these weights keep >= 90 % of cuts on beats.
MISS = 2.0
STRONG_OFF_BAR = 3.0  # a strong cut on a beat but not a bar line (off the grid: MISS as well)
HIT_MISS = 50.0  # a requested hit must land on a bar line
W_SYNC = 0.2  # an anchor's beat a whole SYNC_S off the cut
W_END = 0.05  # a made ending's bar line per second away from its preferred place


@dataclass(frozen=True)
class Anchor:
    """A moment to mark: ``time`` seconds; ``bar``: wants a bar line (strong cut or hit); ``hit``:
    a requested hit (must not be missed)."""

    time: float
    bar: bool = False
    hit: bool = False


@dataclass(frozen=True)
class Grid:
    """The output's beats (seconds; ``beats[pickup]`` is the first bar line, every ``meter``-th
    after it another, the last one the ending's bar line) and, per anchor, the beat it landed on
    (seconds) or None."""

    beats: tuple[float, ...]
    meter: int
    pickup: int
    beat_s: float
    anchors: tuple[Anchor, ...] = field(repr=False)
    landed: tuple[float | None, ...] = field(repr=False)

    @property
    def bar_lines(self) -> tuple[float, ...]:
        return self.beats[self.pickup::self.meter]

    @property
    def max_stretch(self) -> float:
        """Largest |beat length / beat_s - 1| over the grid's beats."""
        gaps = [b - a for a, b in zip(self.beats, self.beats[1:])]
        return max((abs(g / self.beat_s - 1) for g in gaps), default=0.0)


def fit_grid(anchors: list[Anchor], *, beat_s: float, meter: int, pickup: int = 0,
             end: tuple[float, float, float], max_stretch: float = 0.055) -> Grid:
    """The grid from t = 0 (beat ``-pickup``) to the ending's bar line, which must fall in
    ``end = (earliest, latest, preferred)`` seconds (a real ending: all three equal). Raises
    ValueError when the window cannot hold a bar line (it is shorter than a bar, or before the
    first one)."""
    if beat_s <= 0 or meter < 1:
        raise ValueError(f"fit_grid needs a positive beat and meter, got {beat_s}, {meter}")
    lo, hi, pref = end
    start_t = 0.0
    # a made ending plays on at the recorded tempo after its bar line: cuts there may still land
    points = _merge([a for a in anchors if MERGE_S <= a.time <= (hi if hi > lo else lo) - MERGE_S])
    # state: (phase, sync bin) -> (cost, time, back-pointer); anchor -1 is the start
    states: list[dict] = [{(-pickup % meter, 0): (0.0, start_t, None)}]  # index 0: the start
    for j, a in enumerate(points):
        states.append(_advance(states, points, j, a, beat_s, meter, max_stretch))
    final = _finish(states, points, beat_s, meter, max_stretch, lo, hi, pref)
    if final is None:
        raise ValueError(f"no bar line fits the ending window {lo:.2f}-{hi:.2f} s")
    chain = _backtrack(states, final)
    beats: list[float] = [start_t]
    for (t0, _), (t1, k) in zip(chain, chain[1:]):
        beats += _span(t0, t1, k, beat_s)[1:]
    landed = _landed(points, beats, pickup, meter)
    return Grid(beats=tuple(round(b, 6) for b in beats), meter=meter, pickup=pickup, beat_s=beat_s,
                anchors=tuple(points), landed=landed)


# ---------------------------------------------------------------------------------------------
def _merge(anchors: list[Anchor]) -> list[Anchor]:
    out: list[Anchor] = []
    for a in sorted(anchors, key=lambda a: a.time):
        if out and a.time - out[-1].time < MERGE_S:
            if (a.hit, a.bar) > (out[-1].hit, out[-1].bar):
                out[-1] = a
            continue
        out.append(a)
    return out


def _span(t0: float, t1: float, k: int, beat_s: float) -> list[float]:
    """The k + 1 beat times from t0 to t1: recorded tempo first, the last few stretched."""
    e = (t1 - t0) - k * beat_s
    n = min(k, max(1, math.ceil(abs(e) / (PREFERRED_STRETCH * beat_s) - 1e-9))) if abs(e) > 1e-9 else 0
    out = [t0 + i * beat_s for i in range(k - n + 1)]
    if n:
        step = (t1 - out[-1]) / n
        out += [out[-1] + i * step for i in range(1, n + 1)]
    out[-1] = t1
    return out


def even_bars(points: list[float], n_bars: int, meter: int, beat: float, limit: float) -> list[float] | None:
    """Beats (seconds) from points[0] to points[-1] with a bar line on every point and ``n_bars``
    bars in all, the bars shared out between the points so that the largest stretch is least
    (each span: recorded tempo first, the last beats stretched, as the grid does); None when no
    share keeps within ``limit``."""
    gaps = [y - x for x, y in zip(points, points[1:])]
    best: dict[int, tuple[float, list[int]]] = {0: (0.0, [])}
    for gap in gaps:
        nxt: dict[int, tuple[float, list[int]]] = {}
        for used, (cost, counts) in best.items():
            for c in _beat_counts(gap, meter * beat, limit):  # bars in this gap, fewest first
                if used + c > n_bars:
                    break
                worse = max(cost, abs(gap / (c * meter * beat) - 1))
                if used + c not in nxt or worse < nxt[used + c][0]:
                    nxt[used + c] = (worse, [*counts, c])
        best = nxt
    if n_bars not in best:
        return None
    out = [points[0]]
    for x, y, c in zip(points, points[1:], best[n_bars][1]):
        out += _span(x, y, c * meter, beat)[1:]
    return out


def _beat_counts(gap: float, beat_s: float, max_stretch: float, gap_hi: float | None = None) -> range:
    """Whole beat counts that a gap of ``gap`` seconds (or any gap up to ``gap_hi``) can hold."""
    lo = max(1, math.ceil(gap / (beat_s * (1 + max_stretch)) - 1e-9))
    hi = math.floor((gap if gap_hi is None else gap_hi) / (beat_s * (1 - max_stretch)) + 1e-9)
    return range(lo, hi + 1)


def _stretch_cost(gap: float, k: int, beat_s: float) -> float:
    return abs(gap - k * beat_s) / beat_s


def _skipped_cost(points: list[Anchor], i: int, j: int, t0: float, phase0: int, t1: float, k: int,
                  beat_s: float, meter: int, ring: bool = False) -> float:
    """Cost of the anchors strictly between i and j, which the span (t0 -> t1, k beats) does not
    aim at: nothing for one that happens to sit on a fitting beat. ``ring``: t1 is a made ending's
    bar line, after which the beats go on at ``beat_s``."""
    cost = 0.0
    if j - i <= 1:
        return 0.0
    beats = _span(t0, t1, k, beat_s)
    if ring and points[j - 1].time > t1:
        beats += [t1 + n * beat_s for n in range(1, int((points[j - 1].time - t1) / beat_s) + 2)]
    for s in range(i + 1, j):
        a = points[s]
        n = min(range(len(beats)), key=lambda q: abs(beats[q] - a.time))
        near = abs(beats[n] - a.time) <= LUCK_S
        on_bar = near and (phase0 + n) % meter == 0
        if a.hit:
            cost += 0.0 if on_bar else HIT_MISS
            continue
        if not near:
            cost += MISS
        if a.bar and not on_bar:  # a strong cut left off the grid is off the bar line too
            cost += STRONG_OFF_BAR
    return cost


def _predecessors(states: list[dict], j: int):
    """Indices into ``states`` that anchor j may follow: back to MAX_SKIP + 1 reachable ones."""
    seen = 0
    for i in range(j, -1, -1):
        if states[i]:
            yield i
            seen += 1
            if seen > MAX_SKIP:
                return


def _advance(states: list[dict], points: list[Anchor], j: int, a: Anchor, beat_s: float, meter: int,
             max_stretch: float) -> dict:
    """The states of anchor j (index j + 1 in ``states``; index 0 is the start): per (phase, sync
    bin) the cheapest (cost, beat time, back-pointer (states index, key, beats since))."""
    sync = HIT_SYNC_S if a.hit else SYNC_S
    out: dict = {}
    for i in _predecessors(states, j):
        for key, (cost, t0, _) in states[i].items():
            phase = key[0]
            if a.time + sync - t0 <= 0:
                continue
            for k in _beat_counts(a.time - sync - t0, beat_s, max_stretch, a.time + sync - t0):
                exact = t0 + k * beat_s - a.time  # the offset that needs no stretch
                offsets = {round(x * sync, 6) for x in SYNC_STEPS}
                if abs(exact) <= sync:
                    offsets.add(round(exact, 6))
                p1 = (phase + k) % meter
                skipped = None
                for off in offsets:
                    t1 = a.time + off
                    gap = t1 - t0
                    if k not in _beat_counts(gap, beat_s, max_stretch):
                        continue
                    if skipped is None:
                        skipped = _skipped_cost(points, i - 1, j, t0, phase, t1, k, beat_s, meter)
                    c = cost + _stretch_cost(gap, k, beat_s) + W_SYNC * (off / sync) ** 2 + skipped
                    if a.bar and p1 != 0:
                        c += HIT_MISS if a.hit else STRONG_OFF_BAR
                    new = (p1, round(off / sync * 2))
                    if new not in out or c < out[new][0]:
                        out[new] = (c, t1, (i, key, k))
    return out


def _finish(states: list[dict], points: list[Anchor], beat_s: float, meter: int, max_stretch: float,
            lo: float, hi: float, pref: float):
    """(cost, time, back-pointer) of the best bar line in [lo, hi] after the last reachable anchors."""
    best = None
    for i in _predecessors(states, len(states) - 1):
        for key, (cost, t0, _) in states[i].items():
            if hi <= t0:
                continue
            for k in _beat_counts(lo - t0, beat_s, max_stretch, hi - t0):
                if (key[0] + k) % meter:
                    continue
                t1 = min(max(t0 + k * beat_s, lo), hi)
                gap = t1 - t0
                if gap <= 0 or k not in _beat_counts(gap, beat_s, max_stretch):
                    continue
                c = cost + _stretch_cost(gap, k, beat_s) + W_END * abs(t1 - pref)
                c += _skipped_cost(points, i - 1, len(points), t0, key[0], t1, k, beat_s, meter, ring=hi > lo)
                if best is None or c < best[0]:
                    best = (c, t1, (i, key, k))
    return best


def _backtrack(states: list[dict], final) -> list[tuple[float, int]]:
    """[(time, beats since the previous), ...] from the start to the ending's bar line."""
    _, t_end, (i, key, k) = final
    chain = [(t_end, k)]
    while True:
        _, t, back = states[i][key]
        if back is None:
            chain.append((t, 0))
            break
        i, key, k = back
        chain.append((t, k))
    return chain[::-1]


def _landed(points: list[Anchor], beats: list[float], pickup: int, meter: int) -> tuple[float | None, ...]:
    out = []
    for a in points:
        n = min(range(len(beats)), key=lambda q: abs(beats[q] - a.time))
        ok = abs(beats[n] - a.time) <= LUCK_S and (not a.bar or (n - pickup) % meter == 0)
        out.append(round(beats[n], 6) if ok else None)
    return tuple(out)
