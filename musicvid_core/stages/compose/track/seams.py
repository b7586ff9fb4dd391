"""How audible each possible seam is, measured once per track (and cached with its analysis).

For every pair of bars (a, b) the seam "play b after a" is built the way ``render`` builds it --
bar a up to its end, the last ``edit.SEAM_XF_S`` crossfaded (equal power) into the source just before b's
bar line, then bar b -- and its spectral flux is measured the way ``metrics/edit.py`` measures a
rendered seam: the largest mel onset strength within +-50 ms, less what b's own bar line has in
the track (the pair (b - 1, b), built the same way), over the spread of the track's bar lines.
All excerpts go through one onset computation (concatenated with silence between them), so a
30 s track's 16 x 16 seams cost about a second, once. Tracks with more than MAX_BARS bars skip
this (the arrangement then predicts the flux from bar spectra).
"""

from __future__ import annotations

import numpy as np

from musicvid_core.metrics.bars import onset_envelope
from musicvid_core.metrics.edit import Z_FLOOR, flux_at
from musicvid_core.metrics.music import ANALYSIS_SR
from musicvid_core.stages.compose.track.edit import SEAM_XF_S

MAX_BARS = 48
CONTEXT_S = 0.15  # audio either side of the seam in each excerpt (the +-50 ms window and half an STFT frame)
GAP_S = 0.1  # silence between excerpts


def seam_matrix(y: np.ndarray, starts: list[float], ends: list[float]) -> list[list[float]] | None:
    """(bars, bars) z-scores (rounded to 0.01) of the seam from bar a into bar b for mono ``y`` at
    ANALYSIS_SR, bars given by their ``starts`` and ``ends`` (seconds); entry [a][a + 1] is the
    track's own bar line (0 by construction). None for more than MAX_BARS bars or fewer than 3."""
    n = len(starts)
    if n > MAX_BARS or n < 3:
        return None
    sr = ANALYSIS_SR
    ctx, gap, xf = int(CONTEXT_S * sr), int(GAP_S * sr), int(SEAM_XF_S * sr)
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
    pairs = [(a, b) for a in range(n) for b in range(n)]
    for a, b in pairs:
        end_a, start_b = int(round(ends[a] * sr)), int(round(starts[b] * sr))
        old = take(end_a - ctx, end_a)
        old[-xf:] = old[-xf:] * fade_out + take(start_b - xf, start_b) * fade_in
        pieces += [old, take(start_b, start_b + ctx), np.zeros(gap, np.float32)]
        centres.append((pos + ctx) / sr)
        pos += 2 * ctx + gap
    onset = onset_envelope(np.concatenate(pieces))
    flux = flux_at(onset, centres).reshape(n, n)
    natural = np.array([flux[b - 1, b] for b in range(1, n)])
    med = float(np.median(natural))
    scale = max(1.4826 * float(np.median(np.abs(natural - med))), Z_FLOOR * med, 1e-6)
    own = np.concatenate([[med], natural])  # bar 0 has no bar before it: a typical bar line
    return np.round((flux - own[None, :]) / scale, 2).tolist()
