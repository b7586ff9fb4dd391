"""Beats, bar lines and pulse of music, from the audio alone.

Used twice, on purpose the same way: by the track editor to analyse a recording
(``stages/compose/track/analysis.py``) and by ``metrics/edit.py`` to re-detect the beats and bar
lines of what the editor rendered. madmom's models are CC BY-NC-SA and beat-this downloads its weights;
BeatNet's weights may ship (CC BY 4.0) and are run here in numpy (``metrics.learned_beats``): its
beat and downbeat probabilities join the onsets where the onsets cannot decide (steps 1 and 3). The
method and its measured accuracy are in docs/tracks.md ("Beats and bars", "Round 8"):

1. **Beats**: librosa's dynamic-programming tracker (Ellis 2007) over a mel spectral-flux onset
   envelope, started from the global tempogram estimate with a high ``tightness`` -- a recording's
   tempo is steady, and at librosa's default tightness the tracker flips between tempo
   interpretations on generated clips (jitter of 50-130 ms on 10 of the 28 library tracks).
   Gaps of two beats get the missing beat; then each beat is replaced by a local straight-line fit
   over its neighbours (+-``SMOOTH_BEATS``): frame quantisation (11.6 ms) and jitter go, slow
   tempo drift stays. A beat of three equally strong events whose onsets recur over 16 of them
   (a bar of 4/4 sixteenths) rather than 12 (a 12/8 bar) is a binary pulse the tracker grouped
   by three; it is tracked again with the events grouped by two (``_binary_pulse``). Where the
   beats :func:`follow_beats` hears in the onsets disagree with this grid on most beats, the grid
   takes their phase (``_adopt_phase``); where the learned beat probability, over the whole track,
   is far higher at another event of the beat, the grid moves there (``_learned_phase``).
2. **Pulse**: the onset envelope's normalised autocorrelation at the beat period. Music with no
   steady beat (free-time ambient) has none (< ``FREE_TIME_PULSE``).
3. **Bar lines**: for each meter (4, 3) and phase, the mean over the beats of that phase of z-scored
   beat features (FEATURE_WEIGHTS) -- harmonic change across the beat (chords change on bar lines)
   and the low-band onset (kick, bass); not the broadband accent, the backbeat's. The meter from
   those; the phase from those plus the learned downbeat probability (LEARNED_DOWN_WEIGHT).

Audio arguments are float arrays ``(samples,)`` or ``(samples, channels)`` at ``sr`` Hz; times are
seconds. librosa is imported on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from musicvid_core.metrics.beat_grid import (
    ONSET_DELAY_S,
    REFINE_S,
    _adopt_phase,
    _agreement,
    _bpm,
    _drift,
    _extend_edges,
    _fill_gaps,
    _on_the_beat,
    _peak_near,
    _refine,
    _rolling_sum,
    _smooth,
    _unit,
    _z,
)
from musicvid_core.metrics.music import ANALYSIS_SR, HOP, _analysis_mono, _librosa

TIGHTNESS = 1600.0  # librosa's default is 100: see the module docstring
LOOSE_TIGHTNESS = 400.0  # for music whose tempo changes on purpose (an edit's stretches)
REFINED_SMOOTH_BEATS = 0  # (no refit: an edit changes tempo between two beats)
FOLLOW_DEV = 0.08  # follow_beats: tempo within this of the nominal one (an edit stretches <= 6 %)
FOLLOW_CHANGE = 400.0  # ... cost of a change of period between two beats, per log(ratio)^2
FOLLOW_PULL = 50.0  # ... and of a period off the nominal one
ADOPT_BELOW = 0.5  # a steady grid agreeing with fewer of the followed beats takes their phase
FREE_TIME_PULSE = 0.07  # below this pulse clarity there is no steady beat
METERS = (4, 3, 6)  # beats a bar; 6 = a 3/4 bar tracked in eighth notes (then the beats are halved)
THREE_MARGIN = 0.15  # three beats a bar must recur this much more (autocorrelation) than four ...
THREE_MIN = 0.25  # ... and at least this much
FEATURE_WEIGHTS = (2.0, 1.0, 0.0)  # harmonic change, low onset, broadband onset (docs/tracks.md)
N_MELS = 64
EVENT_RATIO = 0.75  # an event within the beat this strong (over the profile's median) against the beat's: alike
FASTEST_BPM = 210.0  # _binary_pulse: events grouped by two unless that beat is faster than this (then by four)
LOW_MELS = 6  # the lowest mel bands (up to ~200 Hz at 22.05 kHz): kick and bass
LEARNED_WEIGHT = 0.5  # follow_beats: the learned beat probability's weight beside the onset strength (both z-scored)
LEARNED_WARMUP_S = 6.0  # ... reaching it over the first seconds: the network is causal and has heard nothing at 0 s
LEARNED_MOVE = 1.5  # a steady grid moves where the learned beat probability is this many times the grid's ...
LEARNED_MIN = 0.3  # ... and at least this (a mean probability over the beats)
LEARNED_DOWN_WEIGHT = 1.5  # bar_phase: the learned downbeat probability's beside FEATURE_WEIGHTS


@dataclass(frozen=True)
class Bars:
    """What :func:`find_bars` measured. ``beats`` / ``downbeats``: seconds from the first sample;
    ``bpm``: mean tempo of the beats; ``pulse``: clarity of the beat (0..1, normalised
    autocorrelation of the onsets at the beat period); ``free_time``: no steady beat (then
    ``downbeats`` is empty); ``drift``: relative tempo change from the first to the last quarter of
    the beats (0.02 = 2 % faster); ``jitter_s``: spread of the tracked beats around a constant tempo
    before smoothing; ``meter_confidence``: how far the winning phase's score stands above the
    others (in the features' standard deviations); ``agreement``: share of the beats that
    :func:`follow_beats` (at their tempo: the tracker metrics/edit.py re-detects an edit's beats with)
    also finds within 70 ms -- low where the beat is ambiguous (soft onsets, syncopation)."""

    beats: tuple[float, ...] = field(repr=False)
    downbeats: tuple[float, ...] = field(repr=False)
    meter: int
    bpm: float
    pulse: float
    free_time: bool
    drift: float
    jitter_s: float
    meter_confidence: float
    agreement: float = 1.0


@dataclass(frozen=True)
class Spectra:
    """Per-frame features at ANALYSIS_SR, hop HOP: ``onset`` broadband and ``low`` low-band onset
    strength, ``chroma`` (12, frames), ``mfcc`` (13, frames), ``rms`` (frames) linear, ``mel``
    (N_MELS, frames) dB, float32 (the onset strength is its mean positive frame-to-frame rise);
    ``learned``: (2, frames) the probability of a beat and of a downbeat that a network trained on
    tapped beats hears (metrics.learned_beats), read ONSET_DELAY_S earlier, where an onset peak's
    frame is (None where not computed)."""

    onset: np.ndarray
    low: np.ndarray
    chroma: np.ndarray
    mfcc: np.ndarray
    rms: np.ndarray
    mel: np.ndarray
    learned: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.onset.size)


def spectra(y: np.ndarray, *, chunk_s: float = 120.0, learned: bool = True) -> Spectra:
    """The frame features of mono ``y`` at ANALYSIS_SR, computed in chunks of ``chunk_s`` seconds
    (with a margin) so that an hour of audio never needs its whole spectrogram in memory;
    ``learned``: with the learned beat and downbeat probabilities (~0.3 s of CPU a minute of audio)."""
    librosa = _librosa()
    n_frames = 1 + y.size // HOP
    step = int(chunk_s * ANALYSIS_SR) // HOP * HOP
    margin = 16 * HOP  # frames of context each side: the STFT window and the onset lag
    parts: list[tuple] = []
    for start in range(0, max(1, y.size), max(step, HOP)):
        a, b = max(0, start - margin), min(y.size, start + step + margin)
        seg = y[a:b]
        if seg.size < 2048:
            seg = np.pad(seg, (0, 2048 - seg.size))
        mel = log_mel(seg)
        onset = librosa.onset.onset_strength(S=mel, sr=ANALYSIS_SR, hop_length=HOP)
        low = librosa.onset.onset_strength(S=mel[:LOW_MELS], sr=ANALYSIS_SR, hop_length=HOP)
        chroma = librosa.feature.chroma_stft(y=seg, sr=ANALYSIS_SR, hop_length=HOP, n_fft=4096)
        mfcc = librosa.feature.mfcc(S=mel, n_mfcc=13)
        rms = librosa.feature.rms(y=seg, hop_length=HOP)[0]
        lo = (start - a) // HOP
        keep = min(step // HOP, n_frames - start // HOP)
        parts.append(tuple(x[..., lo:lo + keep] for x in (onset, low, chroma, mfcc, rms, mel.astype(np.float32))))
    cat = [np.concatenate([p[i] for p in parts], axis=-1) for i in range(6)]
    cat = [_fit_frames(x, n_frames) for x in cat]
    heard = None
    if learned:
        from musicvid_core.metrics import learned_beats

        heard = learned_beats.on_frames(learned_beats.mono_activations(y), n_frames, HOP, ANALYSIS_SR, ONSET_DELAY_S)
    return Spectra(onset=cat[0], low=cat[1], chroma=cat[2], mfcc=cat[3], rms=cat[4], mel=cat[5], learned=heard)


def log_mel(y: np.ndarray, top: float | None = None) -> np.ndarray:
    """(N_MELS, frames) mel power in dB (absolute, floored 80 dB under the loudest cell, or ``top`` dB) of
    mono ``y`` at ANALYSIS_SR, hop HOP: what every onset strength here is the positive rise of."""
    mel = _librosa().power_to_db(_librosa().feature.melspectrogram(y=y, sr=ANALYSIS_SR, hop_length=HOP,
                                                                    n_mels=N_MELS), ref=1.0, top_db=None)
    return np.maximum(mel, (mel.max() if top is None else top) - 80.0) if mel.size else mel


def onset_envelope(y: np.ndarray, top: float | None = None) -> np.ndarray:
    """The broadband onset strength of :func:`spectra` alone (mono ``y`` at ANALYSIS_SR, one pass; ``top``: log_mel's)."""
    return _librosa().onset.onset_strength(S=log_mel(y, top), sr=ANALYSIS_SR, hop_length=HOP)


def find_bars(audio: np.ndarray, sr: int, *, features: Spectra | None = None,
              meters: tuple[int, ...] = METERS, steady: bool = True, prior_bpm: float | None = None,
              around_bpm: float | None = None) -> Bars:
    """Beats, bar lines, tempo, pulse and drift of ``audio`` (see the module docstring).
    ``features``: the audio's :func:`spectra` if computed (``audio`` then gives only its length).
    ``steady=False`` for music whose tempo changes on purpose (an edit's stretches): a looser
    tracker, no smoothing; ``prior_bpm``: the tempo to start from (else the tempogram's);
    ``around_bpm``: :func:`follow_beats` at that metrical level (an edit's tempo) instead.
    Raises BadInput for non-finite samples or a bad rate."""
    if features is None:
        features = spectra(_analysis_mono(audio, sr))
    if around_bpm:
        beats, jitter = follow_beats(features.onset, around_bpm, learned=_beat_prob(features)), 0.0
    else:
        beats, jitter = track_beats(features.onset, steady=steady, prior_bpm=prior_bpm)
        if steady and prior_bpm is None:
            beats, jitter = _binary_pulse(features.onset, beats, jitter)
    pulse = pulse_clarity(features.onset, beats)
    bpm = _bpm(beats)
    if beats.size < 8 or pulse < FREE_TIME_PULSE or not math.isfinite(bpm):
        return Bars(tuple(beats.round(4).tolist()), (), 1, bpm, pulse, True, 0.0, jitter, 0.0)
    agreement = 1.0
    if steady:
        # the beats a follower hears in the onsets; on another subdivision than the tight
        # tracker's, the grid takes their phase (_adopt_phase)
        end_s = (features.frames - 1) * HOP / ANALYSIS_SR
        heard = follow_beats(features.onset, bpm)
        agreement = _agreement(beats, heard)
        if agreement < ADOPT_BELOW:
            moved = _adopt_phase(beats, heard, end_s)
            if moved.size >= 8 and _agreement(moved, heard) > agreement:
                beats, agreement = moved, _agreement(moved, heard)
        if features.learned is not None:
            # where people would tap another event of the beat than the onsets' grid (two alike
            # events a beat, or a third of it), the grid takes that one; then the agreement is
            # with the follower metrics/edit.py re-detects an edit with, which hears both
            moved = _learned_phase(beats, features, end_s)
            if moved.size >= 8:
                beats = moved
            agreement = _agreement(beats, follow_beats(features.onset, bpm, learned=_beat_prob(features)))
    meter, phase, confidence = bar_phase(features, beats, meters=meters)
    if meter == 6:  # a 3/4 bar tracked in eighth notes: every other beat, three a bar
        beats, meter, phase = beats[phase % 2::2], 3, phase // 2
        bpm = _bpm(beats)
    return Bars(beats=tuple(beats.round(5).tolist()), downbeats=tuple(beats[phase::meter].round(5).tolist()),
                meter=meter, bpm=bpm, pulse=pulse, free_time=False, drift=_drift(beats), jitter_s=jitter,
                meter_confidence=confidence, agreement=agreement)


def track_beats(onset: np.ndarray, *, steady: bool = True, prior_bpm: float | None = None,
                bpm: float | None = None) -> tuple[np.ndarray, float]:
    """Beat times (seconds) of an onset envelope at ANALYSIS_SR / HOP, regularised (missing beats
    filled, and with ``steady`` each beat refitted on its neighbours), and the raw beats' spread
    around a constant tempo (seconds). ``prior_bpm``: where the tempogram's search is centred;
    ``bpm``: the tempo itself (the tracker then only places the beats, refitting the tempo once)."""
    librosa = _librosa()
    if onset.size < 64 or not np.any(onset > 0):
        return np.zeros(0), 0.0
    start = float(bpm or prior_bpm or librosa.feature.tempo(onset_envelope=onset, sr=ANALYSIS_SR, hop_length=HOP)[0])
    # Zeros after the end: librosa backtracks from the last local maximum of its cumulative score,
    # which at the envelope's very edge can be off the beat; a tight tracker then squeezes the last
    # bars to reach it (-190 ms over 8 beats on a synthetic 150 bpm track).
    padded = np.concatenate([onset, np.zeros(int(2.0 * ANALYSIS_SR / HOP))])
    for _ in range(2):  # the tempogram's estimate is a bin (~1-2 %) off; tight tracking then drifts
        _, frames = librosa.beat.beat_track(onset_envelope=padded, sr=ANALYSIS_SR, hop_length=HOP, start_bpm=start,
                                            bpm=start if bpm else None,
                                            tightness=TIGHTNESS if steady else LOOSE_TIGHTNESS, trim=True)
        frames = np.asarray(frames)[np.asarray(frames) < onset.size]
        raw = np.maximum(0.0, librosa.frames_to_time(np.asarray(frames), sr=ANALYSIS_SR, hop_length=HOP)
                         - ONSET_DELAY_S)
        fitted = _bpm(_fill_gaps(raw)) if raw.size >= 4 else math.nan
        if not math.isfinite(fitted) or abs(fitted / start - 1) < 0.003:
            break
        start = fitted
    if raw.size < 4:
        return raw, 0.0
    beats = _extend_edges(_fill_gaps(raw), onset)
    idx = np.arange(beats.size)
    jitter = float(np.std(beats - np.polyval(np.polyfit(idx, beats, 1), idx)))
    if steady:  # a straight-ish line: bar lengths to edit with
        return _on_the_beat(_smooth(beats), onset), jitter
    return _smooth(_refine(beats, onset), REFINED_SMOOTH_BEATS), jitter  # beats as played: to measure


def _binary_pulse(onset: np.ndarray, beats: np.ndarray, jitter: float) -> tuple[np.ndarray, float]:
    """``beats`` (and their jitter) again at a binary grouping of the pulse where the tracker grouped
    it by three. Nine of the 28 library tracks play even sixteenths (ACE-Step asked for 68-123 bpm)
    and were tracked at 4/3 of that tempo: three equally strong events a beat (``beat_events``),
    a beat no accent marks, so any tracker took another third of it and 28 % of an edit's cuts were
    heard on a beat (docs/tracks.md). What tells such a pulse from a real 12/8 (three eighths a beat,
    four beats a bar) is the bar: the onsets recur more strongly over 16 events (a 4/4 bar of
    sixteenths) than over 12 (a 12/8 bar): ``_recurrence``. Then the events are grouped by two (by
    four where two would be faster than FASTEST_BPM) and the beats tracked at that tempo; otherwise,
    or if that fails, ``beats`` stay."""
    if beats.size < 9 or beat_events(onset, beats)[0] != 3:
        return beats, jitter
    bpm = _bpm(beats)
    if _recurrence(onset, beats, 16) <= _recurrence(onset, beats, 12):
        return beats, jitter  # compound meter: three events are the beat
    target = bpm * 1.5 if bpm * 1.5 <= FASTEST_BPM else bpm * 0.75
    regrouped, regrouped_jitter = track_beats(onset, bpm=target)
    if regrouped.size < 8 or not abs(_bpm(regrouped) / target - 1) < 0.02:
        return beats, jitter
    return regrouped, regrouped_jitter


def _recurrence(onset: np.ndarray, beats: np.ndarray, n: int) -> float:
    """How alike the accents of a pulse of three events a beat are ``n`` events apart: the onset
    strength at every event (each beat and its two thirds; the largest within a frame either side),
    z-scored, correlated with itself ``n`` events later. Even events correlate with nothing; only
    the accents (a bar's kick, its chord) recur."""
    points = (beats[:-1, None] + np.diff(beats)[:, None] * np.arange(3)[None, :] / 3).ravel()
    idx = np.clip(np.rint((points + ONSET_DELAY_S) * ANALYSIS_SR / HOP).astype(int), 1, onset.size - 2)
    a = _z(_peak_near(onset, idx))
    return float(np.mean(a[:-n] * a[n:])) if a.size > 2 * n else 0.0


def _beat_prob(features: Spectra) -> np.ndarray | None:
    return None if features.learned is None else features.learned[0]


def follow_beats(onset: np.ndarray, bpm: float, *, max_dev: float = FOLLOW_DEV,
                 learned: np.ndarray | None = None) -> np.ndarray:
    """Beat times (seconds) of an onset envelope at ANALYSIS_SR / HOP at ``bpm``'s metrical level,
    following tempo changes within +-``max_dev`` (an edit stretches runs of beats by up to 6 %; one
    period for the whole file slips there). A dynamic programme over (frame, period): onset strength
    (centred) plus the best beat one period before, less FOLLOW_CHANGE x log(period ratio)^2 between
    consecutive beats and FOLLOW_PULL x log(period / nominal)^2. Only the level comes from outside:
    music off the nominal beats gets beats off them. Each beat then moves to its onset peak.
    ``learned``: a beat probability on the same frames (Spectra.learned[0]), z-scored and added to
    the z-scored onset strength with LEARNED_WEIGHT: where two events a beat are alike in the
    onsets, the one people tap is the beat (docs/tracks.md, "Round 8")."""
    if onset.size < 64 or not np.any(onset > 0) or not bpm > 0:
        return np.zeros(0)
    period = 60.0 / bpm * ANALYSIS_SR / HOP  # frames
    periods = np.arange(int(math.floor(period * (1 - max_dev))), int(math.ceil(period * (1 + max_dev))) + 1)
    periods = periods[periods >= 2]
    # centred: a beat on an ordinary frame adds nothing, so more (faster) beats do not win by number
    local = (onset - float(np.mean(onset))) / (float(np.std(onset)) or 1.0)
    if learned is not None and learned.size == onset.size and float(np.std(learned)) > 0:
        ramp = np.minimum(1.0, np.arange(local.size) * (HOP / ANALYSIS_SR) / LEARNED_WARMUP_S)  # causal: see LEARNED_WARMUP_S
        local = local + LEARNED_WEIGHT * ramp * (learned - float(np.mean(learned))) / float(np.std(learned))
    n, k, d_min = local.size, periods.size, int(periods[0])
    logp = np.log(periods)
    change = -FOLLOW_CHANGE * (logp[:, None] - logp[None, :]) ** 2  # [to, from]
    pull = -FOLLOW_PULL * (logp - math.log(period)) ** 2
    score = np.full((n, k), -np.inf)
    back = np.full((n, k), -1, dtype=np.int64)
    first = int(math.ceil(period * (1 + max_dev)))  # the first beat lies within a period of the start
    score[:first] = local[:first, None] + pull[None, :]
    for a in range(d_min, n, d_min):  # frames a..a+d_min-1 depend only on frames before a
        t = np.arange(a, min(n, a + d_min))
        prev = t[:, None] - periods[None, :]  # (frames, periods)
        ok = prev >= 0
        cand = score[np.maximum(prev, 0)]  # (frames, to, from)
        cand = np.where(ok[:, :, None], cand + change[None, :, :], -np.inf)
        j = np.argmax(cand, axis=2)
        best = np.take_along_axis(cand, j[:, :, None], axis=2)[:, :, 0]
        new = local[t, None] + best + pull[None, :]
        keep = np.isfinite(best)
        score[t] = np.where(keep, new, score[t])
        back[t] = np.where(keep, np.maximum(prev, 0) * k + j, back[t])
    tail = max(0, n - first)
    f, c = np.unravel_index(int(np.argmax(score[tail:])), score[tail:].shape)
    f += tail
    frames = []
    while f >= 0:
        frames.append(int(f))
        b = int(back[f, c])
        if b < 0:
            break
        f, c = divmod(b, k)
    frames = np.asarray(frames[::-1], dtype=float)
    beats = np.maximum(0.0, frames * HOP / ANALYSIS_SR - ONSET_DELAY_S)
    return _refine(beats, onset)


def pulse_clarity(onset: np.ndarray, beats: np.ndarray) -> float:
    """How periodic the onsets are at the beat (0 = not at all): the spread of the onset
    envelope's normalised autocorrelation around its own moving average (one beat period wide),
    over lags of half a beat to four beats. Periodic onsets make it oscillate (peaks at every beat
    and subdivision); onsets at random times, or slow swells, give a smooth decay. ~0.02 for
    free-time pads with random plucks, 0.13-0.33 on the 28 library tracks (docs/tracks.md)."""
    if beats.size < 4:
        return 0.0
    from scipy.ndimage import uniform_filter1d

    e = onset - onset.mean()
    denom = float(np.dot(e, e))
    lag = int(round(float(np.median(np.diff(beats))) * ANALYSIS_SR / HOP))
    if denom <= 0 or lag < 2 or 5 * lag >= e.size:
        return 0.0
    r = np.array([float(np.dot(e[:-k], e[k:])) / denom for k in range(1, 5 * lag)])
    residual = r - uniform_filter1d(r, lag)
    return round(float(residual[lag // 2:4 * lag].std()), 4)


def bar_phase(features: Spectra, beats: np.ndarray, *, meters: tuple[int, ...] = METERS) -> tuple[int, int, float]:
    """(beats a bar, index of the first beat that is a bar line, confidence) from beat-level
    features (see the module docstring). The meter: the beat score's autocorrelation at lags 4 and
    8 (four beats a bar) against 3 and 6 (three; or, when 6 recurs and 3 does not, a bar of three
    beats tracked in eighth notes: 6); three must win by THREE_MARGIN and reach THREE_MIN. The
    phase: the one whose beats score highest on average; confidence: its mean minus the mean of
    the other phases (in standard deviations of the z-scored features)."""
    score = FEATURE_WEIGHTS @ beat_features(features, beats)  # (beats,)

    def r(lag: int) -> float:
        if score.size <= lag + 4:
            return 0.0
        c = np.corrcoef(score[:-lag], score[lag:])[0, 1]
        return float(c) if math.isfinite(c) else 0.0

    meter = 4
    three, six = r(3), r(6)
    if 3 in meters and max(three, six) >= THREE_MIN and max(three, six) > max(r(4), r(8)) + THREE_MARGIN:
        meter = 6 if (6 in meters and six > three + 0.3) else 3
    if beats.size < 2 * meter:
        return meter, 0, 0.0
    if features.learned is not None and float(np.std(features.learned[1])) > 0:
        # the phase (not the meter: a downbeat heard every other bar of a double-time reading
        # recurs at 8 beats and would read as 3/4 in eighths) also from the learned downbeats
        score = score + LEARNED_DOWN_WEIGHT * _z(_peak_at(features.learned[1], beats))
    means = np.array([score[p::meter].mean() for p in range(meter)])
    phase = int(np.argmax(means))
    return meter, phase, round(float(means[phase] - np.delete(means, phase).mean()), 4)


def _peak_at(curve: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """The largest value of a frame curve (ANALYSIS_SR / HOP, onset-aligned) within two frames of each beat."""
    frames = np.clip(np.round((beats + ONSET_DELAY_S) * ANALYSIS_SR / HOP).astype(int), 0, curve.size - 1)
    pad = np.pad(curve, 2)
    return np.max(np.stack([pad[frames + k] for k in range(5)]), axis=0)


def beat_features(features: Spectra, beats: np.ndarray) -> np.ndarray:
    """(3, beats) z-scored: harmonic change across each beat, low-band and broadband onset at it."""
    frames = np.clip(np.round((beats + ONSET_DELAY_S) * ANALYSIS_SR / HOP).astype(int), 0, features.frames - 1)
    edges = np.concatenate([frames, [features.frames]])
    chroma = np.stack([features.chroma[:, a:max(b, a + 1)].mean(axis=1) for a, b in zip(edges[:-1], edges[1:])])
    chroma /= np.linalg.norm(chroma, axis=1, keepdims=True) + 1e-9
    before = _rolling_sum(chroma, -2)
    after = _rolling_sum(chroma, 2)
    change = 1.0 - np.sum(_unit(before) * _unit(after), axis=1)
    change[:2] = change[-1:] = np.median(change)  # no two beats on one side there
    return np.stack([_z(change), _z(_peak_at(features.low, beats)), _z(_peak_at(features.onset, beats))])


# ---------------------------------------------------------------------------------------------
def beat_events(onset: np.ndarray, beats) -> tuple[int, float]:
    """How many equally strong onset events each beat holds, and how alike they are: the onset
    envelope (ANALYSIS_SR / HOP frames) at twelve points of every beat period (``beats``, seconds;
    the largest value within a frame either side, so a few ms of jitter do not miss the event),
    averaged over the beats, less the profile's median (what sounds everywhere). (3, r): the events
    at 1/3 and 2/3 of the beat reach EVENT_RATIO of the beat's (r: the weaker one's ratio); (2, r):
    the half-beat one does; (1, r): neither (r: the strongest point off the beat). On the library,
    at the beats the tracker first takes, the thirds are 0.87-1.02 of the beat on nine tracks (even
    sixteenths grouped by three: ``_binary_pulse`` regroups them) and under 0 on the rest; (1, 0.0)
    for fewer than 8 beats."""
    b = np.asarray(beats, dtype=float)
    if b.size < 9:
        return 1, 0.0
    points = b[:-1, None] + np.diff(b)[:, None] * np.arange(12)[None, :] / 12
    idx = np.rint((points + ONSET_DELAY_S) * ANALYSIS_SR / HOP).astype(int)
    keep = (idx[:, 0] >= 1) & (idx[:, -1] + 1 < onset.size)
    if keep.sum() < 8:
        return 1, 0.0
    idx = idx[keep]
    near = _peak_near(onset, idx)
    profile = near.mean(axis=0)
    rise = profile - float(np.median(profile))
    if rise[0] <= 1e-9:
        return 1, 0.0
    ratio = rise / rise[0]
    thirds, half = float(min(ratio[4], ratio[8])), float(ratio[6])
    if thirds >= EVENT_RATIO:
        return 3, round(thirds, 2)
    if half >= EVENT_RATIO:
        return 2, round(half, 2)
    return 1, round(float(ratio[1:].max()), 2)


def _fit_frames(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[-1] >= n:
        return x[..., :n]
    return np.concatenate([x, np.repeat(x[..., -1:], n - x.shape[-1], axis=-1)], axis=-1)


def _learned_phase(beats: np.ndarray, features: Spectra, end_s: float) -> np.ndarray:
    """``beats`` (a steady grid) shifted (within +-half a beat, in frames) to where the learned beat
    probability is highest on average, if that is more than REFINE_S off the grid's beats,
    LEARNED_MOVE times the most it reaches within REFINE_S of them and at least LEARNED_MIN; then
    to the onset peak within REFINE_S of that (the network's frames are 20 ms).
    Otherwise ``beats`` as they are. On the library this moves three grids, each where madmom too
    hears the beat (docs/tracks.md, "Round 8")."""
    if features.learned is None or beats.size < 8:
        return beats
    prob, onset = features.learned[0], features.onset
    period = float(np.median(np.diff(beats)))
    step = HOP / ANALYSIS_SR
    inner = beats[(beats > period) & (beats < end_s - period)]  # every shift still inside the file
    if inner.size < 8:
        return beats

    def mean_at(curve: np.ndarray, shift: float) -> float:
        f = np.clip(np.round((inner + shift + ONSET_DELAY_S) / step).astype(int), 0, curve.size - 1)
        return float(np.mean(curve[f]))

    shifts = np.arange(-int(period / 2 / step), int(period / 2 / step) + 1) * step
    values = np.array([mean_at(prob, s) for s in shifts])
    here = np.abs(shifts) <= REFINE_S + 1e-9  # the grid's own beat (the network's peaks sit +-20-30 ms off it)
    if here.all():
        return beats
    elsewhere = float(values[~here].max())
    if not (elsewhere >= LEARNED_MOVE * float(values[here].max()) and elsewhere >= LEARNED_MIN):
        return beats
    best = float(shifts[~here][int(np.argmax(values[~here]))])
    reach = int(round(REFINE_S / step))
    near = best + np.arange(-reach, reach + 1) * step
    shift = float(near[int(np.argmax([mean_at(onset, s) for s in near]))])
    moved = beats + shift
    return moved[(moved >= 0) & (moved <= end_s)]


