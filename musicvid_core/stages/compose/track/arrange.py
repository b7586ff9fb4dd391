"""Which source bar fills each output bar: shorten, extend, re-edit -- joined where it is not heard.

A *seam* plays source bar ``b`` after bar ``a`` where ``b != a + 1``. Its cost (:func:`seam_costs`)
is how different ``b`` is from the bar that would have followed (``a + 1``), and ``a`` from the
bar ``b`` follows (``b - 1``): chroma (cosine), timbre (MFCC distance) and level, each over its
median among all bar pairs; plus a phrase term (a jump that moves the bar's place in a 4-bar
phrase costs more), a base JUMP, so fewer seams win, and the seam's flux excess over the bar
line it enters (measured per pair by ``seams.py``; a pair it did not measure, predicted from the
bars' spectra).

- **Shorter than the track** (and every stretch of exact length between two fixed bars): a
  Viterbi path over (output bar, source bar) from the first bar (or the bar before the stretch)
  into the ending (or the bar after it); with costs 0 for playing on, the best path is the
  fewest, cheapest seams -- dropping whole bars or sections.
- **Longer than the track**: the track once (up to the block in its second half that is cheapest
  to leave; with a real ending, up to its last block, kept for the end), then a seeded walk over
  *blocks* (sections cut into phrases of at most BLOCK_BARS bars) that favours cheap seams and a
  varied order and never plays one block a third time in a row, then a short Viterbi bridge of
  the exact remaining length into the last block (or the made ending).

The seed adds NOISE to every seam cost and drives the walk: near-ties go another way with
another seed. Pure functions of the analysis; bar indices into ``analysis.bars``.
"""

from __future__ import annotations

import numpy as np

JUMP = 0.5  # a seam's base cost (in median bar distances)
NOISE = 0.3  # the seeded jitter added to every seam cost
PHRASE = (0.0, 0.6, 0.3, 0.6)  # cost of moving a bar's place in a 4-bar phrase by 0, 1, 2, 3 bars
MIN_BLOCKS = 4
REPEAT_SPAN = 16  # no run of up to this many bars is played three times in a row
BLOCK_BARS = 4  # a phrase: short enough that even a two-section track offers a varied order
WALK_TEMPERATURE = 0.3
REPEAT = 0.8  # walk: a block straight after itself (a third time is never allowed)
RECENT = 0.4  # walk: a block among the last three played
PAIR = 0.5  # walk: per earlier time the same block followed the same block (keeps the order varied)
AVOID = 2.0  # re-edit: a bar where the previous edit had the same one
W_FLUX = 0.5  # per unit of the seam's flux z-score (measured: seams.py; else predicted)
LOUD_Z, LOUD_SEAM = 1.0, 10.0  # a seam whose flux z-score passes LOUD_Z: only when nothing else fits


def seam_costs(analysis) -> np.ndarray:
    """(bars, bars) cost of playing bar ``b`` right after bar ``a``; 0 on the diagonal above the
    main one (playing on). Bars: ``analysis.bars`` (a real ending's bar included)."""
    bars = analysis.bars
    n = len(bars)
    if n == 0:
        return np.zeros((0, 0))
    chroma = np.array([b.chroma or [0.0] * 12 for b in bars], dtype=float)
    timbre = np.array([b.timbre or [0.0] * 12 for b in bars], dtype=float)
    level = np.array([b.rms_db for b in bars], dtype=float)
    cos = 1.0 - chroma @ chroma.T
    tim = np.linalg.norm(timbre[:, None, :] - timbre[None, :, :], axis=2)
    lev = np.abs(level[:, None] - level[None, :])
    off = ~np.eye(n, dtype=bool)
    d = np.zeros((n, n))
    for part in (cos, tim, lev):
        med = float(np.median(part[off])) if n > 1 else 1.0
        d += part / (med if med > 1e-9 else 1.0)
    d /= 3.0
    measured = getattr(analysis, "seam_z", None)
    flux = np.asarray(measured, dtype=float) if measured is not None and len(measured) == n else None
    if flux is None or not np.isfinite(flux).all():  # not measured (a long track's unlikely seams): predicted
        predicted = _flux_z(bars)
        flux = predicted if flux is None else np.where(np.isfinite(flux), flux, predicted)
    c = np.zeros((n, n))
    for a in range(n):
        for b in range(n):
            if b == a + 1:
                continue
            terms = []
            if a + 1 < n:
                terms.append(d[a + 1, b])  # b stands in for the bar that would have followed a
            if b >= 1:
                terms.append(d[a, b - 1])  # a stands in for the bar that b follows
            c[a, b] = (float(np.mean(terms)) if terms else 1.0) + JUMP + PHRASE[(b - a - 1) % 4]
            c[a, b] += W_FLUX * max(0.0, flux[a, b]) + (LOUD_SEAM if flux[a, b] > LOUD_Z else 0.0)
    return c


def _flux_z(bars) -> np.ndarray:
    """(bars, bars): how much more spectral flux a seam from bar ``a`` into bar ``b`` has than
    ``b``'s own bar line -- mean positive rise from ``a``'s tail spectrum to ``b``'s head, less the
    same from the bar before ``b`` -- over the spread of the track's bar lines (1.4826 x MAD,
    floored at a tenth of the median): what metrics/edit.py measures on the rendered seam,
    predicted from the analysis."""
    n = len(bars)
    if n < 2 or not all(b.head and b.tail for b in bars):
        return np.zeros((n, n))
    head = np.array([b.head for b in bars], dtype=float)
    tail = np.array([b.tail for b in bars], dtype=float)
    flux = np.maximum(0.0, head[None, :, :] - tail[:, None, :]).mean(axis=2)  # [a, b]
    natural = np.array([flux[i - 1, i] for i in range(1, n)])
    med = float(np.median(natural))
    scale = max(1.4826 * float(np.median(np.abs(natural - med))), 0.1 * med, 1e-6)
    own = np.concatenate([[med], natural])  # what bar b's own bar line has (bar 0: a typical one)
    return (flux - own[None, :]) / scale


def blocks(analysis, body: int) -> list[tuple[int, int]]:
    """The sections within the first ``body`` bars, each cut into blocks of at most BLOCK_BARS
    (as even as possible) -- or of 2 bars when that leaves fewer than MIN_BLOCKS blocks: with two
    blocks every order is periodic (ABAB or AABB), and a short track must still be re-ordered."""
    size = BLOCK_BARS if body >= BLOCK_BARS * MIN_BLOCKS else 2
    out = []
    for sec in analysis.sections:
        a, b = sec.start, min(sec.end, body)
        if b <= a:
            continue
        parts = max(1, -(-(b - a) // size))
        edges = [a + round(i * (b - a) / parts) for i in range(parts + 1)]
        out += [(x, y) for x, y in zip(edges[:-1], edges[1:]) if y > x]
    return out or [(0, max(1, body))]


def bridge(costs: np.ndarray, n: int, *, before: int | None, after: int | None, body: int,
           rng: np.random.Generator, start: int = 0, avoid: list[int] | None = None,
           end_costs: np.ndarray | None = None) -> list[int]:
    """``n`` source bars (indices < ``body``) to play between bar ``before`` (None: the output's
    start, which must be bar ``start``) and bar ``after`` (None: a free end, ``end_costs`` per
    bar), by least total seam cost plus the seeded NOISE; ``avoid``: the bars an earlier edit
    had at these places (each costs AVOID)."""
    if n <= 0:
        return []
    noise = rng.random((body, body)) * NOISE
    step = costs[:body, :body] + noise
    np.fill_diagonal(step[:, 1:], 0.0)  # playing on stays free of noise
    if before is None:
        cost = np.full(body, np.inf)
        cost[min(start, body - 1)] = 0.0
    else:
        cost = costs[before, :body] + noise[min(before, body - 1)] * (np.arange(body) != before + 1)
    back = np.zeros((n, body), dtype=int)
    if avoid is not None and len(avoid) > 0:
        cost = cost + AVOID * (np.arange(body) == avoid[0])
    for j in range(1, n):
        total = cost[:, None] + step
        back[j] = np.argmin(total, axis=0)
        cost = total[back[j], np.arange(body)]
        if avoid is not None and j < len(avoid):
            cost = cost + AVOID * (np.arange(body) == avoid[j])
    if after is not None:
        cost = cost + costs[:body, after]
    elif end_costs is not None:
        cost = cost + end_costs[:body]
    path = [int(np.argmin(cost))]
    for j in range(n - 1, 0, -1):
        path.append(int(back[j, path[-1]]))
    return path[::-1]


def arrange(analysis, n_bars: int, *, seed: int = 0) -> list[int]:
    """Source bars for ``n_bars`` output bars (see the module docstring). With a real ending the
    last one leads into ``analysis.ending.bar``; the first is bar 0."""
    rng = np.random.default_rng(seed)
    body = max(1, analysis.body_bars)
    costs = seam_costs(analysis)
    real = analysis.ending.kind == "real" and analysis.ending.bar is not None
    after = analysis.ending.bar if real else None
    ends = None if real else phrase_end_costs(analysis, body, costs)
    if n_bars <= body:
        return bridge(costs, n_bars, before=None, after=after, body=body, rng=rng, end_costs=ends)
    parts = blocks(analysis, body)
    tail = parts[-1] if real and len(parts) > 1 else None
    exits = {p: min(costs[p[1] - 1, q[0]] for q in parts) for p in parts}
    if tail:
        head = list(range(tail[0]))
    else:  # the track up to the block in its second half that is cheapest to leave
        late = [p for p in parts if p[1] * 2 >= body] or parts
        head = list(range(min(late, key=lambda p: (round(exits[p], 6), -p[1]))[1]))
    tail_bars = list(range(*tail)) if tail else []
    remaining = n_bars - len(head) - len(tail_bars)
    walked = walk(parts, costs, remaining, last_bar=head[-1], rng=rng, exits=exits)
    remaining -= sum(b - a for a, b in walked)
    seq = head + [i for a, b in walked for i in range(a, b)]
    into = tail_bars[0] if tail_bars else after
    avoid: list[int] | None = None
    for _ in range(4):  # the walk never plays a run three times; the bars closing it must not either
        closing = bridge(costs, remaining, before=seq[-1], after=into, body=body, rng=rng, avoid=avoid,
                         end_costs=None if into is not None else ends)
        if max_back_to_back((seq + closing + tail_bars)[-3 * REPEAT_SPAN:]) <= 2:
            break
        avoid = closing  # each of these bars, at its place, costs AVOID on the next try
    return seq + closing + tail_bars


def walk(parts: list[tuple[int, int]], costs: np.ndarray, remaining: int, *, last_bar: int,
         rng: np.random.Generator, exits: dict | None = None) -> list[tuple[int, int]]:
    """Blocks to play after ``last_bar`` until fewer than the longest block's bars remain: each
    drawn with probability ~ exp(-cost / WALK_TEMPERATURE), cost = the seam into it and the
    cheapest seam out of it (``exits``), REPEAT for
    the block just played, RECENT for one of the last three, PAIR for each earlier time this
    block followed the last one (so the track's own order does not simply loop); never a run of
    bars (up to REPEAT_SPAN) three times running."""
    longest = max(b - a for a, b in parts)
    out: list[tuple[int, int]] = []
    prev = last_bar
    history = [p for p in parts if p[1] <= last_bar + 1]  # the blocks the head played, in order
    used: dict[tuple, int] = {}
    for x, y in zip(history, history[1:]):
        used[(x, y)] = used.get((x, y), 0) + 1
    played = list(range(last_bar + 1))[-3 * REPEAT_SPAN:]
    while remaining > longest:
        weights = []
        for p in parts:
            c = costs[prev, p[0]] + (exits or {}).get(p, 0.0)  # in, and the cheapest way out again
            if _makes_triple(played, p):
                c = np.inf
            elif history and p == history[-1]:
                c += REPEAT
            elif p in history[-3:]:
                c += RECENT
            if history:
                c += PAIR * used.get((history[-1], p), 0)
            weights.append(np.exp(-c / WALK_TEMPERATURE))
        w = np.asarray(weights)
        if not np.isfinite(w).any() or w.sum() <= 0:
            w = np.ones(len(parts))
        pick = parts[int(rng.choice(len(parts), p=w / w.sum()))]
        if history:
            used[(history[-1], pick)] = used.get((history[-1], pick), 0) + 1
        out.append(pick)
        history.append(pick)
        played = (played + list(range(*pick)))[-3 * REPEAT_SPAN:]
        prev = pick[1] - 1
        remaining -= pick[1] - pick[0]
    return out


def _makes_triple(played: list[int], block: tuple[int, int]) -> bool:
    """Whether playing ``block`` after ``played`` ends, at any of its bars, a run of up to
    REPEAT_SPAN bars played three times in a row."""
    seq = list(played)
    for bar in range(*block):
        seq.append(bar)
        for span in range(1, min(REPEAT_SPAN, len(seq) // 3) + 1):
            if seq[-span:] == seq[-2 * span:-span] == seq[-3 * span:-2 * span]:
                return True
    return False


def phrase_end_costs(analysis, body: int, costs: np.ndarray | None = None) -> np.ndarray:
    """Per bar, the cost of ending the body there (before a made ending): 0 at the end of a
    4-bar phrase or of a section, 0.3 elsewhere; with the seam ``costs``, plus the seam into the
    made ending's bar where the body has no next bar to ring out (edit._made_ending_bar then joins
    the cheapest one: the last body bar's every seam can be loud, and a free end never saw it)."""
    out = np.full(body, 0.3)
    for sec in analysis.sections:
        for i in range(sec.start, min(sec.end, body)):
            if (i - sec.start + 1) % 4 == 0 or i == min(sec.end, body) - 1:
                out[i] = 0.0
    if costs is not None and body >= 1:
        out[body - 1] += float(np.min(costs[body - 1, :body]))
    return out


def max_back_to_back(seq: list[int], *, longest: int = REPEAT_SPAN) -> int:
    """How many times in a row one run of source bars is played (1 = never repeated)."""
    best = 1
    n = len(seq)
    for length in range(1, min(longest, n // 2) + 1):
        run = 0
        for i in range(length, n):
            run = run + 1 if seq[i] == seq[i - length] else 0
            best = max(best, 1 + run // length)
    return best


def longest_repeat(seq: list[int]) -> int:
    """The longest run of output bars that replays, bar for bar, a run played earlier (bars)."""
    best = 0
    n = len(seq)
    arr = np.asarray(seq)
    for shift in range(1, n):
        same = arr[shift:] == arr[:-shift]
        run = 0
        for v in same:
            run = run + 1 if v else 0
            best = max(best, min(run, shift))
    return int(best)
