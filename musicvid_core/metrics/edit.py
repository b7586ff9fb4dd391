"""How well an edited track fits its picture, measured on the RENDERED audio (beats and bar lines
re-detected with metrics.bars, never read from the edit decision list):

- ``cut_beat_hit_rate``: share of cuts within +-70 ms of a detected beat; ``strong_downbeat_hit_rate``:
  share of strong cuts within +-70 ms of a detected bar line. The beats are tracked at the tempo the
  track was edited at (``metrics.bars.follow_beats``: the metrical level given, every beat's place
  and the tempo's changes taken from the rendered onsets and the beat a network trained on tapped
  beats hears in them, ``metrics.learned_beats``; the bar line's phase from the beat features and
  that network's downbeats), because which level a tracker left free
  settles on -- the beat, or 1.5x it on music whose beat is three equal events -- says nothing
  about the cuts; music that is off the cuts still fails (half a beat late: ~9 % of cuts, tested).
  ``*_free``: the same with the tempo found from the audio alone, reported beside it;
- seam audibility: at each seam, the spectral flux (metrics.bars' mel onset strength) at its
  largest within +-SEAM_WINDOW_S, less the same statistic at the bar line the seam enters as the
  track itself plays it, over the spread of that statistic across the track's bar lines (1.4826 x
  MAD, floored at Z_FLOOR x the median, so a synthetic track whose bar lines are all alike does not
  make every small difference huge): a seam that sounds like the track's own bar line scores ~0,
  one that adds a jump scores high. (Scored against the median bar line instead, a seam into the
  track's loudest downbeat -- often its first -- scored 2.5 while it added nothing.);
- ``seam_clicks``: seams whose waveform curvature jumps (metrics.music.boundary_discontinuities);
- the length in samples against the target; from the edit (duck-typed: ``stats()``), the largest
  time-stretch and the longest repeat.

Audio arguments are float arrays ``(samples,)`` or ``(samples, channels)`` at ``sr`` Hz; times are
seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from musicvid_core.metrics.bars import ONSET_DELAY_S, find_bars, spectra
from musicvid_core.metrics.music import ANALYSIS_SR, HOP, TOLERANCE_S, _analysis_mono, boundary_discontinuities

SEAM_WINDOW_S = 0.05
EDGE_S = 0.1  # bar lines this close to the file's start have no flux to compare with
Z_FLOOR = 0.1


def hit_rate(times: Sequence[float], grid: Sequence[float], tolerance_s: float = TOLERANCE_S) -> float | None:
    """Share of ``times`` within ``tolerance_s`` of a ``grid`` time; None without times."""
    t = np.asarray(list(times), dtype=float)
    g = np.asarray(sorted(grid), dtype=float)
    if t.size == 0:
        return None
    if g.size == 0:
        return 0.0
    k = np.clip(np.searchsorted(g, t), 1, max(1, g.size - 1))
    d = np.minimum(np.abs(g[np.maximum(k - 1, 0)] - t), np.abs(g[np.minimum(k, g.size - 1)] - t))
    return round(float(np.mean(d <= tolerance_s + 1e-9)), 4)


def flux_at(onset: np.ndarray, times: Sequence[float], window_s: float = SEAM_WINDOW_S) -> np.ndarray:
    """The largest onset strength within +-window_s of each time (onset envelope at ANALYSIS_SR / HOP)."""
    w = max(1, int(round(window_s * ANALYSIS_SR / HOP)))
    out = []
    for t in times:
        f = int(round((t + ONSET_DELAY_S) * ANALYSIS_SR / HOP))
        a, b = max(0, f - w), min(onset.size, f + w + 1)
        out.append(float(onset[a:b].max()) if b > a else 0.0)
    return np.asarray(out)


def bar_line_flux(reference: np.ndarray, sr: int, bars_s: Sequence[float]) -> list[float]:
    """The seam statistic at a track's own bar lines (``bars_s``, seconds into ``reference``): the
    distribution seams are scored against (NaN for one within EDGE_S of the start). Computed once
    per track and passed to :func:`edit_report`."""
    values = flux_at(spectra(_analysis_mono(reference, sr), learned=False).onset, bars_s).round(4)
    # a bar line at the file's first frames has no "before" to rise from: not measurable
    return [float("nan") if t < EDGE_S else float(v) for t, v in zip(bars_s, values)]


def seam_z_scores(onset: np.ndarray, seams_s: Sequence[float], seam_bars: Sequence[int],
                  reference_flux: Sequence[float]) -> list[float]:
    """Per seam (seconds), how much more flux it has than the same bar line has in the track:
    (statistic in ``onset``, the rendered audio's onset envelope) - (``reference_flux`` of the bar
    it enters, ``seam_bars``: indices into the bar lines :func:`bar_line_flux` was given), over the
    spread of the track's bar lines. See the module docstring."""
    if not len(seams_s):
        return []
    ref, scale = seam_reference(reference_flux)
    if scale is None:
        return [0.0 for _ in seams_s]
    own = [ref[min(max(0, int(k)), ref.size - 1)] for k in seam_bars]
    return [round(float((x - o) / scale), 3) for x, o in zip(flux_at(onset, seams_s), own)]


def seam_reference(reference_flux: Sequence[float]) -> tuple[np.ndarray, float | None]:
    """What a seam into each bar is scored against: the bar line's own flux (an unmeasurable one,
    NaN in :func:`bar_line_flux`, counts as a typical one: the median) and the spread of the
    track's bar lines (1.4826 x MAD, floored at Z_FLOOR x the median); scale None with fewer than
    two measurable bar lines. Shared with the seam matrix (stages/compose/track/seams.py), so the
    editor predicts a seam's z-score on the very scale this module measures it on."""
    ref = np.asarray(list(reference_flux), dtype=float)
    known = ref[np.isfinite(ref)]
    if known.size < 2:
        return np.where(np.isfinite(ref), ref, 0.0), None
    med = float(np.median(known))
    scale = max(1.4826 * float(np.median(np.abs(known - med))), Z_FLOOR * med, 1e-6)
    return np.where(np.isfinite(ref), ref, med), scale


def edit_report(audio: np.ndarray, sr: int, *, expected_samples: int, cuts: Sequence[float] = (),
                strong: Sequence[float] = (), seams_s: Sequence[float] = (), seam_bars: Sequence[int] = (),
                reference_flux: Sequence[float] | None = None, edit: Any = None,
                tolerance_s: float = TOLERANCE_S, bpm: float | None = None) -> dict:
    """Every edit metric (see the module docstring) as plain JSON values. ``reference_flux``: the
    source track's :func:`bar_line_flux` and ``seam_bars`` the bar each seam enters (without them
    the seam z-scores are empty); ``edit``: the Edit, for its own facts (``stats()``); ``bpm``: the
    tempo the track was edited at (default: the edit's median beat), the metrical level the beats
    are re-detected at (``*_free``: the same rates with the tempo found from the audio alone)."""
    x = np.asarray(audio, dtype=np.float32)
    feats = spectra(_analysis_mono(x, sr))
    tempo = bpm or _edit_bpm(edit)
    free = find_bars(x, sr, steady=False, features=feats)
    found = find_bars(x, sr, steady=False, features=feats, around_bpm=tempo) if tempo else free
    z = seam_z_scores(feats.onset, seams_s, seam_bars, reference_flux) if reference_flux is not None else []
    clicks = boundary_discontinuities(x, sr, list(seams_s))
    out = {
        "samples": int(x.shape[0]), "expected_samples": int(expected_samples),
        "exact_length": int(x.shape[0]) == int(expected_samples),
        "cuts": len(cuts), "strong_cuts": len(strong),
        "cut_beat_hit_rate": hit_rate(cuts, found.beats, tolerance_s),
        "strong_downbeat_hit_rate": hit_rate(strong, found.downbeats, tolerance_s),
        "cut_beat_hit_rate_free": hit_rate(cuts, free.beats, tolerance_s),
        "strong_downbeat_hit_rate_free": hit_rate(strong, free.downbeats, tolerance_s),
        "measured_at_bpm": _num(tempo, 2) if tempo else None,
        "detected_bpm": _num(free.bpm, 2), "detected_meter": found.meter,
        "seams": len(seams_s), "seam_z": z,
        "seam_z_median": round(float(np.median(z)), 3) if z else None,
        "seam_z_max": round(float(np.max(z)), 3) if z else None,
        "seam_clicks": sum(c.click for c in clicks),
        "tolerance_s": tolerance_s,
    }
    if edit is not None:
        out.update(edit.stats())
    return out


def _edit_bpm(edit: Any) -> float | None:
    """The recorded tempo an edit was made at: the source seconds its body pieces play over the
    grid's beats they fill (the grid's own beats are stretched where cuts need it)."""
    beats = getattr(edit, "beats", None) or []
    body = [p for p in getattr(edit, "pieces", None) or [] if p.role == "body"]
    n = len(beats) - 1 - int(getattr(edit, "pickup", 0))
    if getattr(edit, "free_time", False) or n < 2 or not body:
        return None
    src_s = sum(p.src_end - p.src_start for p in body) / edit.sample_rate
    return 60.0 * n / src_s if src_s > 0 else None


def _num(v: float, digits: int) -> float | None:
    return round(float(v), digits) if v is not None and math.isfinite(v) else None
