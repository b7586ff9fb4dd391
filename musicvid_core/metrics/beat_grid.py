"""The small pieces of placing a beat grid on an onset envelope (at ANALYSIS_SR / HOP), shared by
``metrics.bars`` (which tracks beats and bar lines) and the benches: filling skipped beats,
extending the edges, refitting each beat on a line through its neighbours, shifting a grid onto
the onsets (or onto the phase a follower hears), moving beats to their onset peaks, and the
grid's tempo, drift and agreement with another set of beats. Split from metrics/bars.py (which
keeps the trackers, the pulse and the bar lines); the method is documented there and in
docs/tracks.md ("Beats and bars").

Times are seconds; onset envelopes are float arrays of frames.
"""

from __future__ import annotations

import math

import numpy as np

from musicvid_core.metrics.music import ANALYSIS_SR, HOP

ONSET_DELAY_S = 0.024  # a beat's onset peak lags a sharp attack by this much (measured: docs/tracks.md)
OFFBEAT_MARGIN = 1.05  # another phase must put this much more onset strength on the beats
REFINE_S = 0.035  # then each beat moves to the onset peak this close to it ...
PEAK_BIAS_S = 0.0036  # the parabola's peak sits this much before the tracker's frame (measured)
SMOOTH_BEATS = 8  # each beat is refitted on a line through this many neighbours either side
OUTLIER_S = 0.012  # ... leaving out beats this far off a first fit


def _fill_gaps(beats: np.ndarray) -> np.ndarray:
    """Beats with each gap of ~k median periods (k >= 2) split into k, and beats closer than half a
    period to the previous one dropped: the tracker's rare skipped or doubled beat."""
    ibi = float(np.median(np.diff(beats)))
    out = [beats[0]]
    for t in beats[1:]:
        gap = t - out[-1]
        if gap < 0.5 * ibi:
            continue
        k = max(1, int(round(gap / ibi)))
        out += [out[-1] + gap * j / k for j in range(1, k + 1)]
    return np.asarray(out)


def _extend_edges(beats: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """Beats one period before the first and after the last tracked one while an onset peak is
    there (at least a third of the median beat's): the tracker drops the edge beats (the first
    beat of a track that starts on it, at frame 0, shows no rise)."""
    ibi = float(np.median(np.diff(beats)))
    frames = np.round((beats + ONSET_DELAY_S) * ANALYSIS_SR / HOP).astype(int)
    ref = float(np.median(onset[np.clip(frames, 0, onset.size - 1)]))
    reach = max(1, int(round(0.03 * ANALYSIS_SR / HOP)))

    def strong(t: float) -> bool:
        f = int(round((t + ONSET_DELAY_S) * ANALYSIS_SR / HOP))
        a, b = max(0, f - reach), min(onset.size, f + reach + 1)
        # frame 0 has no rise to show: the track's first sample counts as an onset
        return a < b and (f - reach <= 0 or float(onset[a:b].max()) >= ref / 3)

    head, tail = [], []
    while beats[0] - ibi * (len(head) + 1) >= -0.03 and strong(beats[0] - ibi * (len(head) + 1)):
        head.append(max(0.0, beats[0] - ibi * (len(head) + 1)))
    end = (onset.size - 1) * HOP / ANALYSIS_SR - ONSET_DELAY_S
    while beats[-1] + ibi * (len(tail) + 1) <= end and strong(beats[-1] + ibi * (len(tail) + 1)):
        tail.append(beats[-1] + ibi * (len(tail) + 1))
    return np.concatenate([head[::-1], beats, tail])


def _adopt_phase(beats: np.ndarray, heard: np.ndarray, end_s: float) -> np.ndarray:
    """``beats`` (a steady grid) shifted by the median offset of the ``heard`` beats from their
    nearest grid beat, kept inside [0, end_s]. Where a beat is three equally strong events (several
    library tracks), the onsets do not say which is the beat: the tight and the following tracker
    take different ones, and an edit cut to the first is heard off the second's (docs/tracks.md)."""
    if beats.size < 4 or heard.size < 4:
        return beats
    period = float(np.median(np.diff(beats)))
    k = np.clip(np.searchsorted(beats, heard), 1, beats.size - 1)
    near = np.where(np.abs(beats[k - 1] - heard) <= np.abs(beats[k] - heard), beats[k - 1], beats[k])
    phase = (heard - near) / period  # of a beat; circular: +0.49 and -0.49 are the same offset
    centre = float(np.angle(np.mean(np.exp(2j * np.pi * phase)))) / (2 * np.pi)
    off = ((phase - centre + 0.5) % 1.0 - 0.5 + centre) * period
    moved = beats + float(np.median(off))
    return moved[(moved >= 0) & (moved <= end_s)]


def _peak_near(onset: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The onset envelope's largest value within a frame either side of each of the frames ``idx``
    (all in 1 .. size - 2): a few ms of jitter do not miss the event."""
    return np.maximum(np.maximum(onset[idx - 1], onset[idx]), onset[idx + 1])


def _salience(beats: np.ndarray, onset: np.ndarray) -> float:
    """Mean onset strength at the beats (the peak within +-1 frame)."""
    f = np.clip(np.round((beats + ONSET_DELAY_S) * ANALYSIS_SR / HOP).astype(int), 1, onset.size - 2)
    return float(np.mean(_peak_near(onset, f)))


def _on_the_beat(beats: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """The beats shifted by the offset (within +-half a beat, one frame steps) that puts the most
    onset strength on them: held to a constant period, the tight tracker can settle a third or
    half a beat off (on 5 library tracks a looser tracker disagreed with every beat until this)."""
    if beats.size < 4:
        return beats
    period = float(np.median(np.diff(beats)))
    step = HOP / ANALYSIS_SR
    best, best_shift = _salience(beats, onset), 0.0
    for k in range(1, int(period / 2 / step) + 1):
        for shift in (k * step, -k * step):
            moved = beats + shift
            if moved[0] < 0 or (moved[-1] + ONSET_DELAY_S) * ANALYSIS_SR / HOP >= onset.size - 2:
                moved = moved[(moved >= 0) & ((moved + ONSET_DELAY_S) * ANALYSIS_SR / HOP < onset.size - 2)]
            if moved.size < beats.size - 1:
                continue
            sal = _salience(moved, onset)
            if sal > best * OFFBEAT_MARGIN and sal > best:
                best, best_shift = sal / OFFBEAT_MARGIN, shift
    return beats + best_shift if best_shift else beats


def _refine(beats: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """Each beat moved to the onset peak within +-REFINE_S of it (sub-frame, by a parabola through
    the peak and its neighbours) when that peak is at least half the median beat's: a generated
    track's timing wanders a little around any straight line."""
    frames = (beats + ONSET_DELAY_S) * ANALYSIS_SR / HOP
    reach = max(1, int(round(REFINE_S * ANALYSIS_SR / HOP)))
    idx = np.clip(np.round(frames).astype(int), 0, onset.size - 1)
    ref = float(np.median(onset[idx]))
    out = beats.copy()
    for i, f in enumerate(idx):
        a, b = max(1, f - reach), min(onset.size - 1, f + reach + 1)
        if b <= a:
            continue
        k = a + int(np.argmax(onset[a:b]))
        if onset[k] < 0.5 * ref or k in (a, b - 1):
            continue  # no clear peak inside the window
        y0, y1, y2 = onset[k - 1], onset[k], onset[k + 1]
        denom = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / denom if denom < 0 else 0.0
        out[i] = (k + frac) * HOP / ANALYSIS_SR - ONSET_DELAY_S + PEAK_BIAS_S
    return np.maximum.accumulate(out)


def _smooth(beats: np.ndarray, half: int = SMOOTH_BEATS) -> np.ndarray:
    """Each beat replaced by the value at its index of a straight line fitted to its +-SMOOTH_BEATS
    neighbours (at the edges, the nearest full window), robustly: beats more than OUTLIER_S off the
    first fit are left out of the second (the tracker's first beats lag while its score builds up:
    -35 ms on a synthetic track, where every later beat was within 6 ms)."""
    n = beats.size
    w = min(half, (n - 1) // 2)
    if w < 1:
        return beats
    out = np.empty(n)
    fits: dict[int, tuple[float, float]] = {}
    for i in range(n):
        a = min(max(0, i - w), n - 2 * w - 1)
        if a not in fits:
            idx = np.arange(a, a + 2 * w + 1)
            seg = beats[a:a + 2 * w + 1]
            line = np.polyfit(idx, seg, 1)
            keep = np.abs(seg - np.polyval(line, idx)) <= OUTLIER_S
            if keep.sum() >= max(3, w):
                line = np.polyfit(idx[keep], seg[keep], 1)
            fits[a] = (float(line[0]), float(line[1]))
        slope, icpt = fits[a]
        out[i] = slope * i + icpt
    return out


def _agreement(beats: np.ndarray, other: np.ndarray, tolerance_s: float = 0.07) -> float:
    if beats.size == 0 or other.size == 0:
        return 0.0
    k = np.clip(np.searchsorted(other, beats), 1, max(1, other.size - 1))
    d = np.minimum(np.abs(other[k - 1] - beats), np.abs(other[np.minimum(k, other.size - 1)] - beats))
    return round(float(np.mean(d <= tolerance_s)), 4)


def _bpm(beats: np.ndarray) -> float:
    if beats.size < 3:
        return math.nan
    slope = np.polyfit(np.arange(beats.size), beats, 1)[0]
    return round(60.0 / slope, 3) if slope > 0 else math.nan


def _drift(beats: np.ndarray) -> float:
    q = beats.size // 4
    if q < 2:
        return 0.0
    first, last = np.median(np.diff(beats[:q])), np.median(np.diff(beats[-q:]))
    return round(float(first / last - 1.0), 4)


def _rolling_sum(x: np.ndarray, k: int) -> np.ndarray:
    """Sum of ``k`` rows after (k > 0, from the row itself) or ``-k`` rows before (k < 0, excluding it)."""
    out = np.zeros_like(x)
    n = x.shape[0]
    for j in range(abs(k)):
        if k > 0:
            out[:n - j] += x[j:]
        else:
            out[j + 1:] += x[:n - j - 1]
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(np.std(x))
    return (x - float(np.mean(x))) / sd if sd > 1e-12 else np.zeros_like(x)
