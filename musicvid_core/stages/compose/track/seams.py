"""How audible each possible seam is, measured once per track (and cached with its analysis).

For every pair of bars (a, b) the seam "play b after a" is built the way ``render`` builds it --
bar a up to its end, the last ``edit.SEAM_XF_S`` crossfaded (equal power) into the source just before b's
bar line, then bar b -- and its spectral flux is measured the way ``metrics/edit.py`` measures a
rendered seam: the largest mel onset strength within +-50 ms, less what b's own bar line has in
the track as it plays, over the spread of the track's bar lines (``metrics.edit.seam_reference``:
the very scale the metric scores a rendered seam on). Excerpts go through one onset computation
per batch (concatenated with silence between them), so a 30 s track's 16 x 16 seams cost about a
second, once. A track with more than MAX_PAIRS pairs (over 64 bars) measures, for each bar, only
the seams out of it that its ``rank`` (the arrangement's predicted costs) puts first -- at least
MIN_CANDIDATES, as many as MAX_PAIRS allows: the rest stay None (the arrangement predicts those
from bar spectra; they are the unlikely ones), and the cost grows with the bars, not their square.
"""

from __future__ import annotations

import numpy as np

from musicvid_core.metrics.bars import log_mel, onset_envelope
from musicvid_core.metrics.edit import EDGE_S, Z_FLOOR, flux_at, seam_reference
from musicvid_core.metrics.music import ANALYSIS_SR, HOP
from musicvid_core.stages.compose.track.edit import SEAM_XF_S

MAX_PAIRS = 64 * 64  # seams measured per track at most (~0.4 s of audio each: ~3 CPU seconds, once)
MIN_CANDIDATES = 8  # seams out of each bar measured however long the track
BATCH = 2048  # excerpts per onset pass (~14 MB of audio): an hour-long track stays in bounded memory
CONTEXT_S = 0.15  # audio either side of the seam in each excerpt (the +-50 ms window and half an STFT frame)
GAP_S = 0.1  # silence between excerpts


def seam_matrix(y: np.ndarray, starts: list[float], ends: list[float], *, onset: np.ndarray | None = None,
                top: float | None = None, rank: np.ndarray | None = None) -> list[list[float | None]] | None:
    """(bars, bars) z-scores (rounded to 0.01) of the seam from bar a into bar b for mono ``y`` at
    ANALYSIS_SR, bars given by their ``starts`` and ``ends`` (seconds); entry [a][a + 1] is the
    track's own bar line (~0). ``onset``: ``y``'s whole onset envelope (metrics.bars.spectra), the
    reference each seam is scored against exactly as metrics/edit.py scores a rendered one (each
    bar line's own flux in the track, the spread over all of them); without it the excerpts' own
    bar lines. ``top``: the track's loudest log-mel cell (dB; metrics.bars.log_mel: every batch of
    excerpts is floored under the same level, else a batch's own loudest cell sets its floor and the
    figures depend on the batch). ``rank``: (bars, bars) predicted seam costs, lower first, for a track of more than
    MAX_PAIRS pairs (see the module docstring; entries not measured are None). None for fewer than
    3 bars, or more than MAX_PAIRS pairs without ``rank``."""
    n = len(starts)
    if n < 3 or (n * n > MAX_PAIRS and rank is None):
        return None
    if n * n <= MAX_PAIRS:
        pairs = [(a, b) for a in range(n) for b in range(n)]
    else:
        k = min(n, max(MIN_CANDIDATES, MAX_PAIRS // n))
        order = np.argsort(np.asarray(rank, dtype=float), axis=1, kind="stable")[:, :k]
        pairs = sorted({(a, int(b)) for a in range(n) for b in order[a]} | {(a, a + 1) for a in range(n - 1)})
    if top is None:
        top = float(log_mel(y).max()) if y.size else 0.0
    flux = np.full((n, n), np.nan)
    for i in range(0, len(pairs), BATCH):
        chunk = pairs[i:i + BATCH]
        flux[tuple(np.array(chunk).T)] = _measure(y, starts, ends, chunk, top)
    if onset is not None:
        found = flux_at(onset, starts)
        own, scale = seam_reference([np.nan if t < EDGE_S else v for t, v in zip(starts, found)])
    else:
        scale = None
    if scale is None:
        natural = np.array([flux[b - 1, b] for b in range(1, n)])
        med = float(np.median(natural))
        scale = max(1.4826 * float(np.median(np.abs(natural - med))), Z_FLOOR * med, 1e-6)
        own = np.concatenate([[med], natural])  # bar 0 has no bar before it: a typical bar line
    z = np.round((flux - own[None, :]) / scale, 2)
    return [[float(v) if np.isfinite(v) else None for v in row] for row in z]


def _measure(y: np.ndarray, starts: list[float], ends: list[float], pairs: list[tuple[int, int]],
             top: float) -> np.ndarray:
    """The seam statistic (metrics.edit.flux_at) of each seam "b after a" in ``pairs``, built as
    the renderer builds it, from one onset pass over the concatenated excerpts."""
    sr = ANALYSIS_SR
    ctx, xf = int(CONTEXT_S * sr), int(SEAM_XF_S * sr)
    # every seam at the same place in the frame grid (a whole number of hops apart): which frame
    # phase a seam lands on moves its flux (by up to 3 z on sharp attacks), and must not depend on
    # which batch, or which place in it, the pair happens to get
    gap = -(-(2 * ctx + int(GAP_S * sr)) // HOP) * HOP - 2 * ctx
    x = (np.arange(xf) + 0.5) / xf
    fade_in, fade_out = np.sin(x * np.pi / 2), np.cos(x * np.pi / 2)

    def take(a: int, b: int) -> np.ndarray:
        out = np.zeros(b - a, np.float32)
        lo, hi = max(a, 0), min(b, y.size)
        if hi > lo:
            out[lo - a:hi - a] = y[lo:hi]
        return out

    pieces, centres = [np.zeros(gap, np.float32)], []
    pos = gap
    for a, b in pairs:
        end_a, start_b = int(round(ends[a] * sr)), int(round(starts[b] * sr))
        old = take(end_a - ctx, end_a)
        if end_a != start_b:  # the track playing on is no seam: crossfading it with itself swells 3 dB
            old[-xf:] = old[-xf:] * fade_out + take(start_b - xf, start_b) * fade_in
        pieces += [old, take(start_b, start_b + ctx), np.zeros(gap, np.float32)]
        centres.append((pos + ctx) / sr)
        pos += 2 * ctx + gap
    return flux_at(onset_envelope(np.concatenate(pieces), top), centres)
