"""How produced music *sounds*, from the audio alone: the objective proxies of issue 16.

- :func:`spectral_balance`: the long-term average spectrum in third-octave bands (31.5 Hz-16 kHz),
  dB relative to the whole band's power, so loudness does not enter; :func:`balance_deviation`
  compares it with a reference curve (``REFERENCE``: measured from 28 real recordings, see
  ``musicvid_core.metrics.sound_reference`` and ``bench/sound_reference.py``);
- :func:`crest_factor_db`: sample peak over RMS (dry, unbussed music is spiky: high);
- :func:`loudness_range_lu`: EBU Tech 3342 loudness range of the short-term loudness;
- :func:`stereo_width`: side/mid RMS (0 = mono), with the L/R correlation and :func:`mono_loss_db`
  (how much quieter the mono fold-down is: 0 dB mono, -3 dB uncorrelated, very low out of phase);
- :func:`section_contrast_db`: mean loudness step between consecutive sections (fixed windows or
  given boundaries): does the music move, or sit at one level;
- :func:`repetition_index`: share of bars that recur almost identically elsewhere (a loop's
  mechanical sameness: 1.0 for a copied bar, 0 for bars that all differ);
- :func:`sound_report`: all of it as plain JSON values.

Audio arguments are float arrays ``(samples,)`` or ``(samples, channels)`` at ``sr`` Hz, in -1..1;
levels are dB, loudness LUFS / LU, times seconds. BadInput for an empty, non-finite or too short
input. Pure numpy/scipy (no librosa unless :func:`repetition_index` has to find the beats itself).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from musicvid_core.domain.errors import BadInput
from musicvid_core.metrics.sound_reference import REFERENCE

ANALYSIS_SR = 48000  # Hz: every measurement here runs at this rate (the 16 kHz band needs > 36 kHz)
BAND_CENTRES = tuple(1000.0 * 2 ** (k / 3) for k in range(-15, 13))  # 31.5 Hz .. 16 kHz, base-2 thirds
BAND_NAMES = tuple(f"{c:.0f}" if c < 1000 else f"{c / 1000:.1f}k" for c in BAND_CENTRES)
# Coarse regions a mix engineer talks about (Hz, lower edge inclusive): what the reports print.
REGIONS = {"low": (28.0, 125.0), "low_mid": (125.0, 500.0), "mid": (500.0, 2000.0),
           "presence": (2000.0, 6000.0), "air": (6000.0, 18000.0)}
WELCH_N = 16384  # 2.9 Hz bins at 48 kHz: even the 31.5 Hz third (28-35 Hz) spans two
SILENCE_DB = -120.0  # floor of any level reported in dB
SHORT_TERM_S, LRA_HOP_S = 3.0, 0.1  # EBU Tech 3342: 3 s short-term loudness, >= 10 per second
LRA_ABS_GATE, LRA_REL_GATE = -70.0, -20.0  # LUFS, LU below the gated mean
SECTION_S = 8.0  # default section length: four bars at 120 bpm
REPEAT_CORR = 0.8  # two bars correlating this well (after the track's mean spectrum is removed) repeat:
# at 0.95 hardly a bar of the references or of our renders repeats; at 0.8 loop-built electronic
# references read 0.8-1.0 and through-composed acoustic ones 0-0.2
REPEAT_FRAMES = 16  # time frames per bar (16th notes in 4/4)
REPEAT_BANDS = 24  # log-spaced bands 40 Hz .. 12 kHz per frame


def _as_2d(audio: Any, sr: int, *, min_s: float = 0.0, what: str = "sound metrics") -> np.ndarray:
    """float64 (n, channels), checked: BadInput when empty, not finite, badly shaped or shorter than ``min_s``."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0 or not isinstance(sr, int | np.integer) or sr <= 0:
        raise BadInput(f"{what} need audio shaped (samples,) or (samples, channels) and a positive rate",
                       shape=list(x.shape), sample_rate=sr)
    if not np.isfinite(x).all():
        raise BadInput(f"{what}: the audio holds NaN or infinite samples")
    if x.shape[0] < min_s * sr:
        raise BadInput(f"{what} need at least {min_s:g} s of audio, got {x.shape[0] / sr:.2f} s")
    return x


def _at_rate(x: np.ndarray, sr: int) -> np.ndarray:
    if sr == ANALYSIS_SR:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(int(sr), ANALYSIS_SR)
    return resample_poly(x, ANALYSIS_SR // g, int(sr) // g, axis=0)


def _db(power: float | np.ndarray) -> Any:
    with np.errstate(divide="ignore"):
        return np.maximum(10 * np.log10(np.maximum(power, 0.0)), SILENCE_DB)


# --- spectrum ------------------------------------------------------------------------------
def spectral_balance(audio: Any, sr: int) -> np.ndarray:
    """Long-term average spectrum in the third-octave bands ``BAND_CENTRES`` (31.5 Hz-16 kHz), each
    band's power in dB relative to the sum of all bands (channels' power spectra averaged: a side
    signal counts as much as a mid one). A band the audio cannot carry (above its Nyquist) reads
    SILENCE_DB. Raises BadInput for empty or non-finite audio, or silence."""
    from scipy.signal import welch

    x = _at_rate(_as_2d(audio, sr, what="spectral balance"), sr)
    n = min(WELCH_N, x.shape[0])
    freqs, psd = welch(x, fs=ANALYSIS_SR, nperseg=n, axis=0, detrend=False)
    return balance_of_psd(freqs, psd.mean(axis=1))


def balance_of_psd(freqs: np.ndarray, psd: np.ndarray) -> np.ndarray:
    """:func:`spectral_balance` of a power spectral density ``psd`` (one channel, or the channels'
    mean) at ``freqs`` (Hz): each third-octave band's power in dB relative to all bands. BadInput
    for silence."""
    edges = [(c * 2 ** (-1 / 6), c * 2 ** (1 / 6)) for c in BAND_CENTRES]
    power = np.array([psd[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in edges])
    total = power.sum()
    if total <= 0:
        raise BadInput("spectral balance of silence is undefined")
    return _db(power / total)


def region_levels(curve: Sequence[float]) -> dict[str, float]:
    """A third-octave curve (dB, :func:`spectral_balance`) summed into REGIONS, dB relative to the
    whole band (power sums, so a region is at most 0 dB)."""
    c = np.asarray(curve, dtype=np.float64)
    centres = np.asarray(BAND_CENTRES)
    return {name: float(_db(np.sum(10 ** (c[(centres >= lo) & (centres < hi)] / 10))))
            for name, (lo, hi) in REGIONS.items()}


def balance_deviation(curve: Sequence[float], reference: Sequence[float] | None = None) -> dict[str, Any]:
    """How a spectral-balance curve differs from ``reference`` (default: the real recordings' median,
    ``REFERENCE["curve"]``). ``rms_db``: RMS over the bands of the difference (each capped at 40 dB,
    so one empty band does not swamp the figure); ``regions_db``: per REGIONS, this curve's level
    minus the reference's (negative = too little there: ``air`` -20 is dull); ``bands_db``: per band."""
    ref = np.asarray(REFERENCE["curve"] if reference is None else reference, dtype=np.float64)
    c = np.asarray(curve, dtype=np.float64)
    if c.shape != ref.shape:
        raise BadInput(f"a balance curve has {len(BAND_CENTRES)} bands, got {c.shape} against {ref.shape}")
    diff = np.clip(c - ref, -40.0, 40.0)
    mine, theirs = region_levels(c), region_levels(ref)
    return {"rms_db": float(np.sqrt(np.mean(diff ** 2))),
            "regions_db": {k: float(max(-40.0, mine[k] - theirs[k])) for k in REGIONS},
            "bands_db": [float(d) for d in diff]}


# --- dynamics ------------------------------------------------------------------------------
def crest_factor_db(audio: Any, sr: int) -> float:
    """Sample peak over RMS of the whole signal (all channels), dB: 3.01 for a sine, 0 for a square
    wave; mastered music ~9-14, an unprocessed General MIDI render ~14-20. Raises BadInput for
    silence or bad input."""
    x = _as_2d(audio, sr, what="crest factor")
    rms = math.sqrt(float(np.mean(np.square(x))))
    if rms <= 0:
        raise BadInput("the crest factor of silence is undefined")
    return 20 * math.log10(float(np.abs(x).max()) / rms)


@functools.lru_cache(maxsize=4)
def _k_weighting(sr: int) -> np.ndarray:
    """BS.1770 K-weighting as second-order sections (pyloudnorm's filter design)."""
    import pyloudnorm

    stages = (pyloudnorm.IIRfilter(4.0, 1 / math.sqrt(2), 1500.0, sr, "high_shelf"),
              pyloudnorm.IIRfilter(0.0, 0.5, 38.0, sr, "high_pass"))
    return np.array([np.concatenate([f.passband_gain * np.asarray(f.b), f.a]) for f in stages])


def _k_power(x: np.ndarray, sr: int) -> np.ndarray:
    """K-weighted power per sample, summed over channels (BS.1770 weights 1.0 for L and R)."""
    from scipy.signal import sosfilt

    y = sosfilt(_k_weighting(sr), x.T, axis=1)
    return np.einsum("cn,cn->n", y, y)


def _window_loudness(power: np.ndarray, sr: int, window_s: float, hop_s: float) -> np.ndarray:
    """LUFS of every ``window_s`` window of K-weighted ``power``, every ``hop_s``."""
    block, hop = max(1, round(window_s * sr)), max(1, round(hop_s * sr))
    csum = np.concatenate(([0.0], np.cumsum(power)))
    starts = np.arange(0, max(1, power.size - block + 1), hop)
    ends = np.minimum(starts + block, power.size)
    return -0.691 + _db((csum[ends] - csum[starts]) / (ends - starts))


def loudness_range_lu(audio: Any, sr: int) -> float:
    """EBU Tech 3342 loudness range, LU: short-term loudness (3 s, every 0.1 s) gated at -70 LUFS and
    20 LU under the gated mean; the 95th less the 10th percentile. 0 for audio shorter than 3 s or
    silent. Raises BadInput for bad input."""
    x = _as_2d(audio, sr, what="loudness range")
    if x.shape[0] < SHORT_TERM_S * sr:
        return 0.0
    return lra_of_short_term(_window_loudness(_k_power(x, sr), sr, SHORT_TERM_S, LRA_HOP_S))


def lra_of_short_term(st: np.ndarray) -> float:
    """EBU Tech 3342 loudness range (LU) of short-term loudness values (LUFS): gated at -70 LUFS
    and 20 LU under the gated mean, the 95th less the 10th percentile; 0 when nothing passes."""
    st = st[st > LRA_ABS_GATE]
    if st.size == 0:
        return 0.0
    mean = 10 * math.log10(float(np.mean(10 ** (st / 10))))
    st = st[st > mean + LRA_REL_GATE]
    return float(np.percentile(st, 95) - np.percentile(st, 10))


def section_contrast_db(audio: Any, sr: int, boundaries_s: Sequence[float] | None = None,
                        section_s: float = SECTION_S) -> float:
    """Mean absolute loudness step (LU) between consecutive sections: the sections between
    ``boundaries_s`` (seconds, e.g. a plan's segment starts), else ``section_s`` windows (a last
    window under half a section joins the one before). Silent sections (under -70 LUFS) are skipped;
    NaN with fewer than two. Raises BadInput for bad input."""
    x = _as_2d(audio, sr, what="section contrast")
    n = x.shape[0]
    if boundaries_s is None:
        step = max(1, round(section_s * sr))
        cuts = list(range(step, n - step // 2, step))
    else:
        cuts = sorted({round(b * sr) for b in boundaries_s if 0 < round(b * sr) < n})
    power = _k_power(x, sr)
    edges = [0, *cuts, n]
    return contrast_of_levels([-0.691 + float(_db(power[a:b].mean())) for a, b in zip(edges, edges[1:]) if b > a])


def contrast_of_levels(levels: Sequence[float]) -> float:
    """Mean absolute step (LU) between consecutive section loudnesses (LUFS), silent ones (under
    -70 LUFS) skipped; NaN with fewer than two."""
    levels = [v for v in levels if v > LRA_ABS_GATE]
    if len(levels) < 2:
        return math.nan
    return float(np.mean(np.abs(np.diff(levels))))


# --- stereo --------------------------------------------------------------------------------
def stereo_width(audio: Any, sr: int) -> dict[str, float]:
    """``width``: RMS of the side (L-R)/2 over RMS of the mid (L+R)/2 (0 mono, 1 for uncorrelated
    channels of equal level, capped at 10 out of phase); ``correlation``: Pearson r of L and R
    (1 mono, 0 uncorrelated, -1 out of phase); ``mono_loss_db``: :func:`mono_loss_db`. Mono input
    reads as mono. Raises BadInput for bad input or more than two channels."""
    x = _as_2d(audio, sr, what="stereo width")
    if x.shape[1] > 2:
        raise BadInput(f"stereo width needs one or two channels, got {x.shape[1]}")
    left, right = x[:, 0], x[:, -1]
    mid, side = (left + right) / 2, (left - right) / 2
    rm, rs = math.sqrt(float(np.mean(mid ** 2))), math.sqrt(float(np.mean(side ** 2)))
    width = min(10.0, rs / rm) if rm > 0 else (10.0 if rs > 0 else 0.0)
    sl, sr_ = float(np.std(left)), float(np.std(right))
    corr = float(np.mean((left - left.mean()) * (right - right.mean())) / (sl * sr_)) if sl > 0 and sr_ > 0 else 1.0
    return {"width": width, "correlation": max(-1.0, min(1.0, corr)), "mono_loss_db": mono_loss_db(x, sr)}


def mono_loss_db(audio: Any, sr: int) -> float:
    """Power of the mono fold-down (L+R)/2 against the channels' mean power, dB: 0 for identical
    channels, -3.01 for uncorrelated ones, SILENCE_DB when they cancel. Raises BadInput for bad input."""
    x = _as_2d(audio, sr, what="mono compatibility")
    mean = float(np.mean(np.square(x)))
    if mean <= 0:
        return 0.0
    mid = x.mean(axis=1)
    return float(_db(float(np.mean(mid ** 2)) / mean))


# --- repetition ----------------------------------------------------------------------------
def repetition_index(audio: Any, sr: int, *, beats_s: Sequence[float] | None = None,
                     bpm: float | None = None, beats_per_bar: int = 4) -> float:
    """Share of bars (0..1) that recur almost identically somewhere else in the audio: each bar's
    log band energies (REPEAT_BANDS bands x REPEAT_FRAMES frames, time-warped onto its beats), less
    the track's mean spectrum, correlated (Pearson) with every other bar; a bar with a partner at
    REPEAT_CORR or more repeats. Bars come from ``beats_s`` (seconds), else an even grid at ``bpm``,
    else librosa's beat tracker. NaN with fewer than two bars. Raises BadInput for bad input."""
    x = _as_2d(audio, sr, what="repetition index")
    mono = x.mean(axis=1)
    if beats_s is None and bpm is not None and bpm > 0:
        beats_s = list(np.arange(0.0, mono.size / sr, 60.0 / bpm))
    if beats_s is None:
        from musicvid_core.metrics.music import detect_beats

        beats_s = list(detect_beats(mono.astype(np.float32), sr))
    bars = bar_spans(beats_s, mono.size / sr, beats_per_bar)
    if len(bars) < 2:
        return math.nan
    return repeat_share(np.stack([bar_features(mono, sr, a, b) for a, b in bars]))


def bar_spans(beats_s: Sequence[float], end_s: float, beats_per_bar: int = 4) -> list[tuple[float, float]]:
    """(start s, end s) of every whole bar of ``beats_s`` (seconds) in audio ``end_s`` long; the
    audio's end closes the last bar when it comes at least 0.9 of a beat after the last beat."""
    beats = [float(b) for b in beats_s if 0 <= b < end_s]
    if len(beats) >= 2 and end_s - beats[-1] >= 0.9 * float(np.median(np.diff(beats))):
        beats.append(end_s)  # the audio's end closes the last bar
    return [(beats[i], beats[i + beats_per_bar]) for i in range(0, len(beats) - beats_per_bar, beats_per_bar)]


def repeat_share(feats: np.ndarray) -> float:
    """:func:`repetition_index` of bar features ``(bars, REPEAT_FRAMES, REPEAT_BANDS)`` (at least two
    bars, :func:`bar_features`)."""
    len_bars = feats.shape[0]
    feats = feats - feats.mean(axis=(0, 1), keepdims=True)  # the track's mean spectrum
    flat = feats.reshape(len_bars, -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1)
    ok = norms > 1e-9
    corr = np.zeros((len_bars, len_bars))
    corr[np.ix_(ok, ok)] = (flat[ok] @ flat[ok].T) / np.outer(norms[ok], norms[ok])
    np.fill_diagonal(corr, -1.0)
    return float(np.mean(corr.max(axis=1) >= REPEAT_CORR))


def bar_features(mono: np.ndarray, sr: int, start: float, end: float) -> np.ndarray:
    """(REPEAT_FRAMES, REPEAT_BANDS) log band energies of [start, end) s, floored 60 dB under the bar's loudest."""
    a, b = round(start * sr), round(end * sr)
    frames = np.array_split(mono[a:b], REPEAT_FRAMES)
    n_fft = max(len(f) for f in frames)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = np.geomspace(40.0, min(12000.0, sr / 2), REPEAT_BANDS + 1)
    band = np.digitize(freqs, edges) - 1
    keep = (band >= 0) & (band < REPEAT_BANDS)
    out = np.zeros((REPEAT_FRAMES, REPEAT_BANDS))
    for i, f in enumerate(frames):
        spec = np.abs(np.fft.rfft(f * np.hanning(len(f)), n_fft)) ** 2 if len(f) > 1 else np.zeros(freqs.size)
        np.add.at(out[i], band[keep], spec[keep])
    db = _db(out)
    return np.maximum(db, db.max() - 60.0)


def plan_beats(plan: Any) -> list[float]:
    """Every beat of a plan, seconds from the video start: each segment's cut-locked grid
    (``Segment.beats``), else an even grid at its ``bpm``."""
    out: list[float] = []
    for seg in plan.segments:
        out += list(seg.beats) or [float(t) for t in np.arange(seg.start, seg.end, 60.0 / seg.bpm)]
    return out


# --- all of it -----------------------------------------------------------------------------
def sound_report(audio: Any, sr: int, *, beats_s: Sequence[float] | None = None,
                 boundaries_s: Sequence[float] | None = None) -> dict[str, Any]:
    """Every measurement above as JSON values (rounded): ``balance`` (regions dB relative to the
    whole band, and the deviation from the references), ``crest_db``, ``lra_lu``, ``width``,
    ``correlation``, ``mono_loss_db``, ``contrast_db`` (8 s sections, or between ``boundaries_s``),
    ``repetition`` (bars from ``beats_s``, else tracked). Raises BadInput for bad input."""
    x = _as_2d(audio, sr, min_s=1.0, what="a sound report")
    curve = spectral_balance(x, sr)
    stereo = stereo_width(x, sr)
    rep = repetition_index(x, sr, beats_s=beats_s)
    contrast = section_contrast_db(x, sr, boundaries_s)
    return report_of(curve, crest_factor_db(x, sr), loudness_range_lu(x, sr), stereo, contrast, rep)


def report_of(curve: np.ndarray, crest_db: float, lra_lu: float, stereo: dict[str, float], contrast_db: float,
              repetition: float) -> dict[str, Any]:
    """:func:`sound_report`'s JSON from its measurements (NaN contrast or repetition: None)."""
    dev = balance_deviation(curve)
    contrast, rep = contrast_db, repetition
    return {"balance_regions_db": {k: round(v, 1) for k, v in region_levels(curve).items()},
            "balance_vs_reference_db": {k: round(v, 1) for k, v in dev["regions_db"].items()},
            "balance_rms_db": round(dev["rms_db"], 1),
            "crest_db": round(crest_db, 1),
            "lra_lu": round(lra_lu, 1),
            "width": round(stereo["width"], 2),
            "correlation": round(stereo["correlation"], 2),
            "mono_loss_db": round(stereo["mono_loss_db"], 1),
            "contrast_db": None if math.isnan(contrast) else round(contrast, 1),
            "repetition": None if math.isnan(rep) else round(rep, 2)}

