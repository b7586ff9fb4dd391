"""Polish a rendered segment: gentle clean-up, room, level by energy, a safe peak, a clean end.

Chain: level the raw render to a working loudness (so the compressor acts the same on every
segment and SoundFont) -> high-pass (rumble the SoundFont's low samples carry) -> gentle
compressor (glue) -> reverb (the style's room) -> loudness normalisation of the segment body to a
reference that rises with the energy -> look-ahead peak limiter (the gain may have raised peaks;
it runs last so the clip never exceeds its ceiling) -> a short fade at the very end of the clip.
The mixer sets the final programme loudness; this stage only makes segments consistent with each
other. Deterministic.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pyloudnorm
from pedalboard import Compressor, HighpassFilter, Pedalboard, Reverb
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import sosfilt

REFERENCE_LUFS = -18.0  # a segment of energy 0.5
WORKING_LUFS = -20.0  # where the raw render is levelled before the compressor
ENERGY_SPAN_DB = 6.0  # energy 0 -> reference - 3 dB, energy 1 -> reference + 3 dB
MAX_GAIN_DB = 24.0  # never lift a near-silent segment further than this
CEILING_DB = -1.0  # limiter ceiling, dBFS (sample peak)
LIMITER_RAMP_S = 0.01  # gain reduction ramps in over this long before a peak and out after it
END_FADE_S = 0.05


def target_lufs(energy: float) -> float:
    """Segment loudness (LUFS) for an energy in 0..1."""
    return REFERENCE_LUFS + ENERGY_SPAN_DB * (min(1.0, max(0.0, energy)) - 0.5)


def measure_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770-4: K-weighting, 400 ms blocks with 75 % overlap,
    absolute and relative gates) of (n, channels) audio; -inf for silence. pyloudnorm's filters,
    vectorised gating: its own meter loops over blocks in Python, several times slower.
    Clips shorter than one block fall back to their K-weighted mean square."""
    if audio.size == 0:
        return -math.inf
    x = sosfilt(_k_weighting(sample_rate), np.ascontiguousarray(audio.T, dtype=np.float64), axis=1)
    power = np.einsum("cn,cn->n", x, x)  # channel weights are 1.0 for left and right
    block, hop = round(0.4 * sample_rate), round(0.1 * sample_rate)
    if power.size < block:
        z = np.array([power.mean()])
    else:
        starts = np.arange(0, power.size - block + 1, hop)
        csum = np.concatenate(([0.0], np.cumsum(power)))
        z = (csum[starts + block] - csum[starts]) / block
    with np.errstate(divide="ignore"):
        blocks = -0.691 + 10 * np.log10(np.maximum(z, 0.0))
    above = blocks > -70.0
    if not above.any():
        return -math.inf
    relative = -0.691 + 10 * math.log10(z[above].mean()) - 10.0
    gated = above & (blocks > relative)
    return -0.691 + 10 * math.log10(z[gated].mean())


@functools.lru_cache(maxsize=8)
def _k_weighting(sample_rate: int) -> np.ndarray:
    """BS.1770 K-weighting (high shelf, then high pass) for ``sample_rate``, as second-order sections."""
    stages = (pyloudnorm.IIRfilter(4.0, 1 / math.sqrt(2), 1500.0, sample_rate, "high_shelf"),
              pyloudnorm.IIRfilter(0.0, 0.5, 38.0, sample_rate, "high_pass"))
    return np.array([np.concatenate([f.passband_gain * np.asarray(f.b), f.a]) for f in stages])


def limit(audio: np.ndarray, sample_rate: int, ceiling_db: float = CEILING_DB) -> np.ndarray:
    """Look-ahead brickwall limiter on (n, channels) audio: sample peaks end <= ``ceiling_db`` dBFS.

    The gain each sample needs is spread by a running minimum over +-2 ramps and smoothed by two
    box filters of +-1 ramp; every smoothed value averages minima that include the sample itself,
    so it never exceeds what that sample needs: no overshoot, and no hard clipping. (pedalboard's
    JUCE Limiter normalises to 0 dBFS and clips what its compressors let through.)
    """
    ceiling = 10 ** (ceiling_db / 20)
    # Column by column: numpy reduces a 2-wide axis ~10x slower than this.
    peak = functools.reduce(np.maximum, (np.abs(audio[:, c]) for c in range(audio.shape[1])))
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    if need.size == 0 or need.min() >= 1.0:
        return audio
    ramp = max(1, round(LIMITER_RAMP_S * sample_rate))
    gain = minimum_filter1d(need, size=4 * ramp + 1, mode="nearest")
    for _ in range(2):
        gain = uniform_filter1d(gain, size=2 * ramp + 1, mode="nearest")
    gain = np.minimum(gain, need)  # float rounding of the box filter
    return audio * gain[:, None].astype(audio.dtype)


def polish(audio: np.ndarray, sample_rate: int, *, reverb: float, energy: float,
           body_samples: int) -> np.ndarray:
    """Apply the chain to (n, 2) float audio at ``sample_rate`` Hz. ``reverb`` 0..1 is the style's
    room, ``energy`` 0..1 sets the loudness target, ``body_samples`` is the segment without its
    release tail (the part measured). Returns finite float32 (n, 2) with peaks <= 1.0."""
    n = audio.shape[0]
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    reverb = min(1.0, max(0.0, reverb))
    body = max(1, min(n, body_samples))
    y = _normalise(np.asarray(audio, dtype=np.float32), sample_rate, body, WORKING_LUFS)
    board = Pedalboard([
        HighpassFilter(cutoff_frequency_hz=35.0),
        Compressor(threshold_db=-16.0, ratio=2.5, attack_ms=15.0, release_ms=200.0),
        Reverb(room_size=0.35 + 0.55 * reverb, damping=0.45, wet_level=0.33 * reverb,
               dry_level=1.0 - 0.25 * reverb, width=1.0),
    ])
    y = board(np.ascontiguousarray(y.T), sample_rate).T
    return finish(y, sample_rate, energy=energy, body_samples=body)


def finish(audio: np.ndarray, sample_rate: int, *, energy: float, body_samples: int) -> np.ndarray:
    """The end of every chain on (n, 2) float audio at ``sample_rate`` Hz: the first ``body_samples``
    (the segment without its tail) normalised to :func:`target_lufs` of ``energy``, the look-ahead
    limiter, a END_FADE_S fade at the very end. Returns finite float32 (n, 2), peaks <= 1.0."""
    n = audio.shape[0]
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    body = max(1, min(n, body_samples))
    y = _normalise(np.asarray(audio, dtype=np.float32), sample_rate, body, target_lufs(energy))
    y = np.clip(limit(y, sample_rate), -1.0, 1.0)
    fade = min(n, round(END_FADE_S * sample_rate))
    y[n - fade:] *= np.cos(np.linspace(0.0, np.pi / 2, fade, dtype=np.float32))[:, None]
    return np.ascontiguousarray(y, dtype=np.float32)


def normalise(y: np.ndarray, sample_rate: int, body: int, lufs: float) -> np.ndarray:
    """(n, channels) ``y`` scaled so its first ``body`` samples measure ``lufs`` LUFS (silence and
    NaN left alone, the gain capped at MAX_GAIN_DB)."""
    return _normalise(y, sample_rate, body, lufs)


def _normalise(y: np.ndarray, sample_rate: int, body: int, lufs: float) -> np.ndarray:
    """Scale ``y`` so its first ``body`` samples measure ``lufs``; silence (or NaN) is left alone
    and the gain is capped at MAX_GAIN_DB."""
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    loudness = measure_lufs(y[:body], sample_rate)
    if not math.isfinite(loudness):
        return y
    return y * np.float32(10 ** (min(MAX_GAIN_DB, lufs - loudness) / 20))
