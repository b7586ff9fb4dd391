"""Measured musical fit of rendered music, from the audio alone (never from the plan's intentions).

- :func:`cut_beat_alignment`: how many scene cuts fall within +-70 ms of a beat that librosa's beat
  tracker finds in the music, and the median cut-to-nearest-beat distance;
- :func:`estimate_tempo`: the tempo of the detected beats (bpm);
- :func:`estimate_key`: key and mode by Krumhansl-Schmuckler profiles on a chromagram;
- :func:`clipping`: peak level and clipped samples;
- :func:`boundary_discontinuities`: how abrupt the waveform is at segment boundaries (clicks);
- :func:`music_report`: all of it for a plan's music stem, as plain JSON values (job metrics).

librosa (the ``[local]`` extra) is imported on first use only: its numba JIT costs ~20 s on the very
first beat tracking in a fresh environment (cached on disk afterwards), so nothing that merely
imports musicvid pays it. Audio arguments are float arrays ``(samples,)`` or ``(samples, channels)``
at ``sr`` Hz; times are seconds, tempos bpm, levels dBFS. Usable from notebooks as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from musicvid_core.domain.errors import BadInput, ConfigurationError

ANALYSIS_SR = 22050  # beat tracking and chroma run at this rate (librosa's default)
HOP = 256  # onset-envelope hop at ANALYSIS_SR: 11.6 ms frames
TOLERANCE_S = 0.07  # a cut "on the beat" is within +-70 ms of one
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped (full scale is 1.0)
CLICK_DB = 12.0  # a boundary whose waveform curvature jumps this far above its surroundings clicks

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first (C major / C minor).
KS_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KS_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class BeatAlignment:
    """Cuts against detected beats. ``hit_rate``: share of cuts within ``tolerance_s`` of a beat
    (0..1, NaN without cuts); ``median_distance_s``: median |cut - nearest beat|, seconds;
    ``distances_s``: per cut, seconds (signed: positive = the beat comes after the cut)."""

    hit_rate: float
    median_distance_s: float
    n_cuts: int
    tolerance_s: float
    distances_s: tuple[float, ...]
    beats_s: tuple[float, ...] = field(repr=False)


@dataclass(frozen=True)
class TempoEstimate:
    """``bpm``: the mean tempo of the detected beats (least-squares slope of beat time against beat
    number, robust to a skipped beat); ``tracker_bpm``: librosa's own global estimate, coarser (its
    tempogram bins are ~2-5 % apart); NaN when fewer than 3 beats were found."""

    bpm: float
    tracker_bpm: float
    n_beats: int
    beats_s: tuple[float, ...] = field(repr=False)


@dataclass(frozen=True)
class KeyEstimate:
    """``key`` like "A minor"; ``correlation``: Pearson r of the chroma with the winning profile;
    ``margin``: how far it beats the best key of the other mode (r difference)."""

    key: str
    tonic: int  # pitch class 0..11 (C = 0)
    mode: str  # "major" / "minor"
    correlation: float
    margin: float


@dataclass(frozen=True)
class ClippingReport:
    peak_dbfs: float  # sample peak, dBFS (-inf for silence)
    clipped_samples: int  # samples (any channel) at or above CLIP_LEVEL
    clipped_fraction: float  # of all samples


@dataclass(frozen=True)
class Discontinuity:
    """At ``time_s``: the waveform's curvature (second difference) within +-1 ms, against the 99th
    percentile of its surroundings (+-50 ms), in dB; a click when above CLICK_DB."""

    time_s: float
    jump_db: float
    click: bool


# ---------------------------------------------------------------------------------------------
def detect_beats(audio: np.ndarray, sr: int, *, prior_bpm: float | None = None,
                 tempo_spans: Sequence[tuple[float, float, float]] | None = None) -> np.ndarray:
    """Beat times (seconds) that librosa's dynamic-programming beat tracker (Ellis 2007) finds in
    ``audio``; ``prior_bpm`` is the tracker's starting tempo (librosa's default 120 when None).
    ``tempo_spans``: (start s, end s, starting tempo) for music whose tempo changes on purpose
    (a plan's segments, :func:`plan_tempo_spans`): the tempo is then estimated from the audio span
    by span, each from its own starting tempo, and one tracker follows that time-varying tempo.
    Raises BadInput for empty or non-finite audio, ConfigurationError without librosa."""
    return _beat_track(audio, sr, prior_bpm, tempo_spans)[1]


def plan_tempo_spans(plan: Any) -> list[tuple[float, float, float]]:
    """A plan's segments as (start s, end s, bpm): the starting tempos for :func:`detect_beats`."""
    return [(float(s.start), float(s.end), float(s.bpm)) for s in plan.segments]


def _beat_track(audio: np.ndarray, sr: int, prior_bpm: float | None,
                tempo_spans: Sequence[tuple[float, float, float]] | None = None) -> tuple[Any, np.ndarray]:
    """librosa's tracker tempo (None for audio too short to track) and beat times (seconds)."""
    librosa = _librosa()
    y = _analysis_mono(audio, sr)
    if y.size < HOP * 4:
        return None, np.zeros(0)
    env = librosa.onset.onset_strength(y=y, sr=ANALYSIS_SR, hop_length=HOP)
    if tempo_spans and len({round(b, 3) for _, _, b in tempo_spans}) > 1:
        bpm = _tempo_curve(librosa, env, tempo_spans)
        _, beats = librosa.beat.beat_track(onset_envelope=env, sr=ANALYSIS_SR, hop_length=HOP, bpm=bpm,
                                           units="time")
        return float(np.median(bpm)), np.asarray(beats, dtype=float)
    if tempo_spans:
        prior_bpm = tempo_spans[0][2]
    tempo, beats = librosa.beat.beat_track(onset_envelope=env, sr=ANALYSIS_SR, hop_length=HOP,
                                           start_bpm=float(prior_bpm or 120.0), units="time")
    return tempo, np.asarray(beats, dtype=float)


def _tempo_curve(librosa: Any, env: np.ndarray, spans: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """Per onset frame, the tempo librosa estimates from its span's onsets (starting from the
    span's tempo). Frames before the first span take its tempo; a frame after a span's end keeps
    that span's tempo until the next span starts."""
    frames = np.arange(env.size) * HOP / ANALYSIS_SR
    bpm = np.empty(env.size)
    for k, (start, end, prior) in enumerate(sorted(spans)):
        a, b = int(np.searchsorted(frames, start)), int(np.searchsorted(frames, end))
        tempo = float(prior)
        if b - a >= 64:  # ~0.75 s: enough onsets for a tempo estimate
            tempo = float(librosa.feature.tempo(onset_envelope=env[a:b], sr=ANALYSIS_SR, hop_length=HOP,
                                                start_bpm=tempo)[0])
        bpm[0 if k == 0 else a:] = tempo
    return bpm


def cut_beat_alignment(audio: np.ndarray, sr: int, cut_times_s: Sequence[float], *,
                       tolerance_s: float = TOLERANCE_S, beats_s: Sequence[float] | None = None,
                       prior_bpm: float | None = None,
                       tempo_spans: Sequence[tuple[float, float, float]] | None = None) -> BeatAlignment:
    """How well scene cuts (seconds) fall on the beats detected in ``audio`` (or on ``beats_s``,
    seconds, when already detected; ``prior_bpm`` / ``tempo_spans`` as for :func:`detect_beats`).
    See :class:`BeatAlignment`."""
    beats = np.asarray(beats_s, dtype=float) if beats_s is not None else detect_beats(
        audio, sr, prior_bpm=prior_bpm, tempo_spans=tempo_spans)
    cuts = np.asarray(sorted(float(c) for c in cut_times_s), dtype=float)
    if cuts.size == 0:
        return BeatAlignment(math.nan, math.nan, 0, tolerance_s, (), tuple(beats.tolist()))
    if beats.size == 0:
        dist = np.full(cuts.size, math.inf)
    else:
        k = np.clip(np.searchsorted(beats, cuts), 1, max(1, beats.size - 1))
        left, right = beats[np.maximum(k - 1, 0)], beats[np.minimum(k, beats.size - 1)]
        dist = np.where(np.abs(left - cuts) <= np.abs(right - cuts), left - cuts, right - cuts)
    hit = float(np.mean(np.abs(dist) <= tolerance_s + 1e-9))
    return BeatAlignment(hit_rate=hit, median_distance_s=float(np.median(np.abs(dist))), n_cuts=int(cuts.size),
                         tolerance_s=tolerance_s, distances_s=tuple(np.round(dist, 4).tolist()),
                         beats_s=tuple(beats.tolist()))


def estimate_tempo(audio: np.ndarray, sr: int, *, prior_bpm: float | None = None) -> TempoEstimate:
    """The tempo (bpm) of ``audio`` from its detected beats: the slope of beat time against beat
    number, each beat numbered by its distance from the first in median inter-beat intervals (so
    a skipped beat does not halve the estimate locally). ``prior_bpm``: the tracker's start tempo."""
    tempo, beats = _beat_track(audio, sr, prior_bpm)
    if tempo is None:
        return TempoEstimate(math.nan, math.nan, 0, ())
    tracker = float(np.atleast_1d(tempo)[0]) if np.size(tempo) else math.nan
    return TempoEstimate(bpm=tempo_of_beats(beats), tracker_bpm=tracker, n_beats=int(beats.size),
                         beats_s=tuple(beats.tolist()))


def tempo_of_beats(beats_s: Sequence[float]) -> float:
    """Mean tempo (bpm) of beat times (seconds) by least squares over beat numbers; NaN for < 3.

    Beats are numbered interval by interval: each gap counts round(gap / median gap) beats (at
    least one), so a beat the tracker missed counts two and the numbering survives tempo drift.
    Numbering every beat from the first one instead (round((t - t0) / median gap)) skips or repeats
    a number once nudged beats have drifted half a beat, and then measures neither the mean nor the
    median tempo."""
    beats = np.asarray(beats_s, dtype=float)
    if beats.size < 3:
        return math.nan
    gaps = np.diff(beats)
    ibi = float(np.median(gaps))
    if ibi <= 0:
        return math.nan
    index = np.concatenate([[0.0], np.cumsum(np.maximum(1.0, np.round(gaps / ibi)))])
    slope = np.polyfit(index, beats, 1)[0]
    return float(60.0 / slope) if slope > 0 else math.nan


def estimate_key(audio: np.ndarray, sr: int) -> KeyEstimate:
    """Key and mode of ``audio``: the mean constant-Q chromagram correlated with the 24 rotated
    Krumhansl-Kessler profiles; the best correlation wins. Raises BadInput for empty audio."""
    librosa = _librosa()
    y = _analysis_mono(audio, sr)
    if y.size < 2048 or not np.any(y):
        raise BadInput("estimate_key needs non-silent audio")
    chroma = librosa.feature.chroma_cqt(y=y, sr=ANALYSIS_SR, hop_length=2048)
    return key_of_chroma(chroma.mean(axis=1))


def key_of_chroma(chroma: Sequence[float]) -> KeyEstimate:
    """Krumhansl-Schmuckler key finding on a 12-bin pitch-class profile (C first)."""
    v = np.asarray(chroma, dtype=float)
    if v.shape != (12,) or not np.isfinite(v).all() or np.ptp(v) == 0:
        raise BadInput("key finding needs a 12-bin, non-constant chroma vector")
    scores = {}
    for mode, profile in (("major", KS_MAJOR), ("minor", KS_MINOR)):
        for tonic in range(12):
            scores[(tonic, mode)] = float(np.corrcoef(v, np.roll(profile, tonic))[0, 1])
    (tonic, mode), r = max(scores.items(), key=lambda kv: kv[1])
    other = max(s for (t, m), s in scores.items() if m != mode)
    return KeyEstimate(key=f"{PITCH_NAMES[tonic]} {mode}", tonic=tonic, mode=mode, correlation=round(r, 4),
                       margin=round(r - other, 4))


def clipping(audio: np.ndarray, *, level: float = CLIP_LEVEL) -> ClippingReport:
    """Sample peak (dBFS) and how many samples reach ``level`` (full scale 1.0)."""
    a = np.abs(np.asarray(audio, dtype=np.float64))
    if a.size == 0:
        return ClippingReport(-math.inf, 0, 0.0)
    peak = float(a.max())
    n = int(np.count_nonzero(a >= level))
    return ClippingReport(peak_dbfs=20 * math.log10(peak) if peak > 0 else -math.inf, clipped_samples=n,
                          clipped_fraction=n / a.size)


def boundary_discontinuities(audio: np.ndarray, sr: int, boundaries_s: Sequence[float], *,
                             click_db: float = CLICK_DB) -> list[Discontinuity]:
    """For each boundary (seconds): the peak |second difference| of the waveform within +-1 ms
    against the 99th percentile of it over the surrounding +-50 ms (excluding +-2 ms), in dB. A
    step or a corner in the waveform (a click) stands far above its surroundings; a musical onset,
    whose attack ramps over milliseconds, does not."""
    x = np.asarray(audio, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    d2 = np.abs(np.diff(x, n=2, axis=0)).max(axis=1) if x.shape[0] > 2 else np.zeros(0)
    near, ctx, gap = max(1, round(0.001 * sr)), round(0.05 * sr), max(2, round(0.002 * sr))
    out = []
    for t in boundaries_s:
        b = round(float(t) * sr) - 1  # d2[k] is centred on sample k + 1
        if b - ctx < 0 or b + ctx >= d2.size:
            continue
        peak = float(d2[b - near:b + near + 1].max())
        around = np.concatenate([d2[b - ctx:b - gap], d2[b + gap:b + ctx]])
        ref = float(np.percentile(around, 99))
        if peak <= 1e-7:  # silence at the boundary: nothing to hear
            db = 0.0
        else:
            db = 20 * math.log10(peak / max(ref, 1e-7))
        out.append(Discontinuity(time_s=round(float(t), 6), jump_db=round(db, 2), click=db > click_db))
    return out


def assemble_music(clips: Sequence[np.ndarray], plan: Any, sr: int) -> np.ndarray:
    """The plan's music bus before mixing: each segment's clip (segment plus release tail) added
    at its segment's start; float32 (round(duration * sr), channels)."""
    n = round(plan.duration * sr)
    channels = max((c.shape[1] if c.ndim == 2 else 1) for c in clips) if clips else 2
    out = np.zeros((n, channels), dtype=np.float32)
    for seg, clip in zip(plan.segments, clips):
        c = clip[:, None] if clip.ndim == 1 else clip
        start = round(seg.start * sr)
        k = max(0, min(c.shape[0], n - start))
        out[start:start + k] += c[:k]
    return out


def music_report(audio: np.ndarray, sr: int, plan: Any, *, cuts: Sequence[float] | None = None,
                 tolerance_s: float = TOLERANCE_S, beats_s: Sequence[float] | None = None) -> dict:
    """Every music metric for ``audio`` (the plan's music stem, sample 0 = the video start) as
    plain JSON values: cut-beat alignment over ``cuts`` (default ``plan.cuts``), per segment the
    requested and estimated tempo and key, the share of segments within 2 % of their tempo, mode
    agreement, clipping and boundary discontinuities. ``beats_s``: the stem's beats (seconds) when
    already detected (with :func:`plan_tempo_spans`), so they are not tracked twice."""
    x = np.asarray(audio, dtype=np.float32)
    y = _analysis_mono(x, sr)  # resampled once; the analyses below then run at ANALYSIS_SR
    cuts = list(plan.cuts if cuts is None else cuts)
    align = cut_beat_alignment(y, ANALYSIS_SR, cuts, tolerance_s=tolerance_s, beats_s=beats_s,
                               tempo_spans=plan_tempo_spans(plan))
    segments = []
    for seg in plan.segments:
        part = y[round(seg.start * ANALYSIS_SR):round(seg.end * ANALYSIS_SR)]
        tempo = estimate_tempo(part, ANALYSIS_SR, prior_bpm=seg.bpm)
        try:
            key = estimate_key(part, ANALYSIS_SR)
        except BadInput:
            key = None
        segments.append({
            "index": seg.index, "bpm": seg.bpm, "bpm_estimated": _num(tempo.bpm, 2),
            "tempo_error": _num(tempo.bpm / seg.bpm - 1, 4) if math.isfinite(tempo.bpm) else None,
            "key": seg.key, "key_estimated": key.key if key else None,
            "mode_match": (key.mode == seg.key.split()[1]) if key else None})
    errors = [s["tempo_error"] for s in segments]
    modes = [s["mode_match"] for s in segments if s["mode_match"] is not None]
    clip = clipping(x)
    jumps = boundary_discontinuities(x, sr, [s.start for s in plan.segments[1:]])
    return {
        "cut_beat_hit_rate": _num(align.hit_rate, 4), "cut_beat_median_distance_s": _num(align.median_distance_s, 4),
        "cuts": align.n_cuts, "beat_tolerance_s": tolerance_s,
        "tempo_within_2pct": _num(np.mean([e is not None and abs(e) <= 0.02 for e in errors]), 4) if errors else None,
        "mode_agreement": _num(np.mean(modes), 4) if modes else None,
        "peak_dbfs": _num(clip.peak_dbfs, 2), "clipped_samples": clip.clipped_samples,
        "boundary_max_jump_db": max((j.jump_db for j in jumps), default=None),
        "boundary_clicks": sum(j.click for j in jumps),
        "segments": segments,
    }


def as_dict(result: Any) -> dict:
    """A metrics dataclass as a plain dict (for notebooks and JSON)."""
    return asdict(result)


# ---------------------------------------------------------------------------------------------
def _num(v: float, digits: int) -> float | None:
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def _librosa():
    try:
        import librosa
    except ImportError:
        raise ConfigurationError("music metrics need librosa (the [local] extra); run make install") from None
    return librosa


def _analysis_mono(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mono float32 at ANALYSIS_SR. BadInput for a bad rate or non-finite samples."""
    x = np.asarray(audio, dtype=np.float32)
    if sr <= 0:
        raise BadInput(f"sample rate must be positive, got {sr}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise BadInput(f"audio must be (samples,) or (samples, channels), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise BadInput("audio contains NaN or infinite samples")
    if sr != ANALYSIS_SR and x.size:
        x = _librosa().resample(x, orig_sr=sr, target_sr=ANALYSIS_SR, res_type="soxr_hq")
    return np.ascontiguousarray(x, dtype=np.float32)
