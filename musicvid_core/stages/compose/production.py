"""Production: the rendered stems of a segment mixed as a record is (pedalboard, deterministic).

Per stem a channel strip (mixes.Strip: filters, EQ, compressor, pan and width, sends), the house
sidechain pump keyed on the kick's MIDI times, the drum bus glued by its own compressor, one
reverb (pre-delayed, band-limited return) and one tempo delay shared by the sends, the lo-fi
colour (tape drive, vinyl hiss and crackle seeded by the segment, a low-passed top), then the
master: a high-pass, a tonal-balance EQ that moves the mix part of the way towards the real
recordings' median balance (musicvid_core.metrics.sound_reference; ``Mix.tone`` says where the
style should differ) and a bus compressor. fx.finish then sets the level by energy and limits.

Nothing delays the dry signal (no look-ahead, no Haas on the mid), so the renderer's onset
alignment holds. Every step is a pure function of its input and the seed: the same stems and seed
give the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from pedalboard import (
    Compressor,
    Delay,
    Gain,
    HighpassFilter,
    HighShelfFilter,
    LowpassFilter,
    LowShelfFilter,
    PeakFilter,
    Pedalboard,
    Reverb,
)
from scipy.ndimage import uniform_filter1d
from scipy.signal import lfilter, sosfreqz, welch

from musicvid_core.metrics.sound import REGIONS
from musicvid_core.metrics.sound_reference import REFERENCE
from musicvid_core.stages.compose import fx
from musicvid_core.stages.compose.fx import CEILING_DB, WORKING_LUFS, limit, normalise
from musicvid_core.stages.compose.mixes import BASE, Mix, Strip

__all__ = ["DRUM_STEMS", "produce"]

DRUM_STEMS = ("kick", "snare", "hats", "toms", "cymbals", "perc")
WIDTH_DELAY_S = 0.011  # the side copy's delay: decorrelated, yet under the echo threshold
WIDTH_GAIN = 0.7  # the side copy's level at width 1 (-3 dB)
PUMP_ATTACK_S = 0.004  # the duck ramps in over this (no click) ...
PUMP_RELEASE_BEATS = 0.3  # ... and recovers with this time constant (a quarter note pumps once)
RETURN_BAND = (250.0, 9000.0)  # reverb and delay returns are band-limited: no mud, no fizz
# (filter, Hz, Q) per region: shelves set below/above their region's edge so the region gets most of
# their gain (the regions' energy sits near the low edge of "air" and the high edge of "low")
TONE_BANDS = {"low": ("low", 150.0, 0.7), "low_mid": ("peak", 280.0, 0.9), "mid": ("peak", 1000.0, 0.8),
              "presence": ("peak", 3500.0, 0.9), "air": ("high", 5500.0, 0.7)}
TONE_SHARE = 0.8  # the master EQ moves this share of the way to the target (per round) ...
TONE_MAX_DB = 8.0  # ... by at most this much per region
TONE_ROUNDS = 4
TONE_MIN_DB = 0.5  # a smaller correction is not worth a filter
EXCITE_FROM_HZ, EXCITE_TO_HZ = 2500.0, 6000.0  # the exciter saturates above the first, keeps above the second
EXCITE_DRIVE = 3.0  # saturation drive re the band's RMS: peaks well into the tanh's knee


def produce(stems: Mapping[str, np.ndarray], sample_rate: int, mix: Mix, *, bpm: float,
            kicks: Sequence[float] = (), seed: int = 0, ride: np.ndarray | None = None) -> np.ndarray:
    """Mix ``stems`` (name -> float32 (n, 2) at ``sample_rate`` Hz, all the same length; names are
    roles or drum groups, an unknown name gets a plain strip) with ``mix`` at ``bpm`` (the delay's
    time, the pump's release); ``kicks``: kick times, seconds (the pump's key); ``seed``: the vinyl
    noise; ``ride``: a linear gain per sample (n) applied to the mix before the master bus (the
    arrangement's fader rides). Returns float32 (n, 2), unnormalised (fx.finish sets the level).
    Raises ValueError for stems of different lengths.

    Each stem is read once, in name order, and let go once its strip has played: ``stems`` may render
    on read (render.lazy_stems), so one stem is held at a time; the buses are let go as they are
    summed (issue 18: a 16-second segment's traced peak fell from 66-70 to 32 MB)."""
    names = sorted(stems)  # a fixed order: float sums are order-dependent
    if not names:
        return np.zeros((0, 2), np.float32)
    sr = sample_rate
    beat_s = 60.0 / bpm
    n = music = drums = reverb_send = delay_send = pump = None
    for name in names:
        stem = stems[name]
        if n is None:
            n = stem.shape[0]
            if n == 0:
                return np.zeros((0, 2), np.float32)
            music = np.zeros((2, n), np.float32)
            drums = np.zeros((2, n), np.float32)
            reverb_send = np.zeros((2, n), np.float32)
            delay_send = np.zeros((2, n), np.float32)
            pump = _pump(kicks, n, sr, mix.pump_db, beat_s) if mix.pump_db > 0 and len(kicks) else None
        elif stem.shape[0] != n:
            raise ValueError(f"stems of different lengths: {sorted({n, stem.shape[0]})}")
        strip = mix.strips.get(name) or BASE.get(name) or Strip()
        y = _strip(np.ascontiguousarray(stem.T, dtype=np.float32), sr, strip)
        del stem
        if strip.pump and pump is not None:
            y *= pump
        (drums if name in DRUM_STEMS else music)[:] += y
        if strip.reverb:
            reverb_send += y * np.float32(strip.reverb)
        if strip.delay:
            delay_send += y * np.float32(strip.delay)
        del y
    del pump
    if mix.glue is not None and drums.any():
        drums = _board([_compressor(mix.glue)])(drums, sr)
    out = music
    out += drums
    del music, drums
    if reverb_send.any():
        out += _reverb(reverb_send, sr, mix) * np.float32(mix.reverb_return)
    del reverb_send
    if delay_send.any():
        out += _delay(delay_send, sr, mix, beat_s)
    del delay_send
    if ride is not None:
        out *= ride[:n]
    if mix.exciter_db is not None:
        out = _excite(out, sr, mix.exciter_db)
    out = _colour(out, sr, mix, seed)
    return np.ascontiguousarray(_master(out, sr, mix).T)


def _strip(y: np.ndarray, sr: int, s: Strip) -> np.ndarray:
    """One channel strip on (2, n) audio."""
    chain = [HighpassFilter(cutoff_frequency_hz=s.highpass)] if s.highpass else []
    if s.gain:
        chain.append(Gain(gain_db=s.gain))
    if s.lowpass:
        chain.append(LowpassFilter(cutoff_frequency_hz=min(s.lowpass, 0.45 * sr)))
    chain += [_band(kind, hz, db, q, sr) for kind, hz, db, q in s.eq]
    if s.comp is not None:
        chain.append(_compressor(s.comp))
    mono = np.array_equal(y[0], y[1])  # a mono sample played centred: half the work, the same result
    y = _board(chain)(y[:1] if mono else y, sr) if chain else y[:1] if mono else y
    mid = y[0] if mono else (y[0] + y[1]) * np.float32(0.5)
    if s.width > 0:  # a delayed copy in the side: L+R unchanged, so the mono fold-down keeps the dry part
        d = round(WIDTH_DELAY_S * sr)
        side = np.zeros_like(mid)
        np.multiply(mid[:-d], np.float32(WIDTH_GAIN * s.width), out=side[d:])
        if not mono:
            side += (y[0] - y[1]) * np.float32(0.5)
    elif mono:
        side = None
    else:  # a stereo sample, narrowed when width < 0
        side = (y[0] - y[1]) * np.float32(0.5 * (1.0 + max(-1.0, min(0.0, s.width))))
    angle = (min(1.0, max(-1.0, s.pan)) + 1.0) * math.pi / 4
    gains = np.float32(math.sqrt(2) * math.cos(angle)), np.float32(math.sqrt(2) * math.sin(angle))
    out = np.empty((2, mid.size), np.float32)
    if side is None:
        np.multiply(mid, gains[0], out=out[0])
        np.multiply(mid, gains[1], out=out[1])
    else:
        np.multiply(mid + side, gains[0], out=out[0])
        np.multiply(mid - side, gains[1], out=out[1])
    return out


def _band(kind: str, hz: float, db: float, q: float, sr: int):
    hz = min(hz, 0.45 * sr)
    if kind == "low":
        return LowShelfFilter(cutoff_frequency_hz=hz, gain_db=db, q=q)
    if kind == "high":
        return HighShelfFilter(cutoff_frequency_hz=hz, gain_db=db, q=q)
    return PeakFilter(cutoff_frequency_hz=hz, gain_db=db, q=q)


def _compressor(c: tuple[float, float, float, float]) -> Compressor:
    threshold, ratio, attack, release = c
    return Compressor(threshold_db=threshold, ratio=ratio, attack_ms=attack, release_ms=release)


def _board(chain: list) -> Pedalboard:
    return Pedalboard(chain)


def _pump(kicks: Sequence[float], n: int, sr: int, depth_db: float, beat_s: float) -> np.ndarray:
    """Gain per sample (float32, n): ``depth_db`` down at each kick, ramped in over PUMP_ATTACK_S and
    recovering exponentially (time constant PUMP_RELEASE_BEATS beats) until the next."""
    t = np.arange(n, dtype=np.float64) / sr
    k = np.asarray(sorted(kicks), dtype=np.float64)
    idx = np.searchsorted(k, t, side="right") - 1
    since = np.where(idx >= 0, t - k[np.maximum(idx, 0)], np.inf)
    duck = 1.0 - 10 ** (-depth_db / 20)
    env = np.exp(-since / (PUMP_RELEASE_BEATS * beat_s)) * np.minimum(1.0, since / PUMP_ATTACK_S)
    # kicks a 16th apart would jump from one duck to the next: a short box filter smooths the seams
    env = uniform_filter1d(env, size=max(1, round(PUMP_ATTACK_S * sr)), mode="nearest")
    return (1.0 - duck * env).astype(np.float32)


def _reverb(send: np.ndarray, sr: int, mix: Mix) -> np.ndarray:
    pre = round(mix.predelay_ms / 1000 * sr)
    x = np.zeros_like(send)
    x[:, pre:] = send[:, :send.shape[1] - pre]
    board = _board([Reverb(room_size=mix.room, damping=mix.damping, wet_level=1.0, dry_level=0.0,
                           width=mix.reverb_width),
                    HighpassFilter(cutoff_frequency_hz=RETURN_BAND[0]),
                    LowpassFilter(cutoff_frequency_hz=min(RETURN_BAND[1], 0.45 * sr))])
    return board(x, sr)


def _delay(send: np.ndarray, sr: int, mix: Mix, beat_s: float) -> np.ndarray:
    board = _board([Delay(delay_seconds=min(2.0, mix.delay_beats * beat_s), feedback=mix.delay_feedback, mix=1.0),
                    HighpassFilter(cutoff_frequency_hz=RETURN_BAND[0] * 1.5),
                    LowpassFilter(cutoff_frequency_hz=min(RETURN_BAND[1] / 2, 0.45 * sr))])
    wet = board(send, sr)
    return wet[::-1].copy()  # the echo comes back on the other side: a ping-pong of a panned part


def _colour(y: np.ndarray, sr: int, mix: Mix, seed: int) -> np.ndarray:
    """Tape drive, vinyl and the dull top of a lo-fi record; the rest pass unchanged."""
    if not (mix.tape or mix.vinyl_db is not None or mix.top_hz):
        return y
    y = normalise(y.T, sr, y.shape[1], WORKING_LUFS).T
    if mix.tape:
        drive = 1.0 + 3.0 * mix.tape
        y = (np.tanh(y * np.float32(drive)) / np.float32(math.tanh(drive))).astype(np.float32)
    if mix.vinyl_db is not None:
        y = y + _vinyl(y.shape[1], sr, seed) * np.float32(10 ** (mix.vinyl_db / 20) * _rms(y))
    if mix.top_hz:
        y = _board([LowpassFilter(cutoff_frequency_hz=min(mix.top_hz, 0.45 * sr))])(y, sr)
    return y


def _excite(y: np.ndarray, sr: int, level_db: float) -> np.ndarray:
    """An exciter on (2, n) audio: the band above EXCITE_FROM_HZ saturated (tanh, driven relative to
    its own RMS, so any level excites alike), its new harmonics above EXCITE_TO_HZ kept (two
    high-passes) and mixed in ``level_db`` under the input's RMS. A sampled piano has little above
    6 kHz for an EQ to lift; this writes some there. Deterministic, no delay."""
    band = _board([HighpassFilter(cutoff_frequency_hz=EXCITE_FROM_HZ)])(y, sr)
    rms = max(_rms(band), 1e-9)
    drive = np.float32(EXCITE_DRIVE / rms)
    made = np.tanh(band * drive)
    to = min(EXCITE_TO_HZ, 0.45 * sr)
    made = _board([HighpassFilter(cutoff_frequency_hz=to), HighpassFilter(cutoff_frequency_hz=to)])(made, sr)
    gain = 10 ** (level_db / 20) * _rms(y) / max(_rms(made), 1e-9)
    return (y + made * np.float32(gain)).astype(np.float32)


def _vinyl(n: int, sr: int, seed: int) -> np.ndarray:
    """(2, n) float32 of unit RMS: band-limited hiss and sparse crackles, seeded (the same seed, the
    same noise)."""
    rng = np.random.default_rng([abs(int(seed)), 16])
    hiss = rng.standard_normal((2, n)).astype(np.float32)
    hiss = lfilter([0.25], [1.0, -0.75], hiss, axis=1)  # a one-pole low-pass: warm, not white
    clicks = np.zeros((2, n), np.float32)
    count = rng.poisson(6.0 * n / sr)  # ~6 crackles a second
    at = rng.integers(0, n, count)
    clicks[rng.integers(0, 2, count), at] = rng.uniform(-1.0, 1.0, count) * 8.0
    clicks = lfilter([1.0], [1.0, -0.6], clicks, axis=1)  # each a short decaying tick
    noise = (0.6 * hiss + clicks).astype(np.float32)
    return noise / np.float32(max(_rms(noise), 1e-9))


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


def _master(y: np.ndarray, sr: int, mix: Mix) -> np.ndarray:
    """On (2, n) audio: levelled to WORKING_LUFS (ungated, from the spectrum the tone EQ measures
    anyway: a third of the cost of a BS.1770 meter), high-pass, the tonal-balance EQ, the bus
    compressor, and the mastering limiter that holds peaks ``mix.crest_db`` over the RMS."""
    freqs, psd = _spectrum(y, sr)
    k2 = np.abs(sosfreqz(fx._k_weighting(sr), worN=freqs, fs=sr)[1]) ** 2
    power = float(np.sum(psd * k2) * (freqs[1] - freqs[0]))  # K-weighted mean square, channels summed
    if power > 0:
        y = y * np.float32(10 ** (min(fx.MAX_GAIN_DB, WORKING_LUFS - (-0.691 + 10 * math.log10(power))) / 20))
    chain = [HighpassFilter(cutoff_frequency_hz=30.0)]
    for region, db in _solve_tone(freqs, psd.mean(axis=0), mix.tone, sr).items():
        kind, hz, q = TONE_BANDS[region]
        if abs(db) >= TONE_MIN_DB:
            chain.append(_band(kind, hz, db, q, sr))
    chain.append(_compressor(mix.master))
    y = _board(chain)(np.ascontiguousarray(y, dtype=np.float32), sr)
    ceiling = 20 * math.log10(max(_rms(y), 1e-9)) + mix.crest_db  # a mastering limiter: peaks held near the body
    return limit(y.T, sr, ceiling_db=min(ceiling, CEILING_DB)).T


def _spectrum(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density of each channel of (2, n) audio: (freqs Hz, (2, bins))."""
    return welch(y, fs=sr, nperseg=min(8192, y.shape[1]), noverlap=0, axis=1)


def tone_gains(y: np.ndarray, sr: int, offsets: Mapping[str, float]) -> dict[str, float]:
    """EQ gain per region (dB; the TONE_BANDS filters) that moves (2, n) audio TONE_SHARE of the way
    from its balance (metrics.sound REGIONS, dB re the whole band; the channels' mean spectrum) to
    the references' median plus ``offsets``, each within +-TONE_MAX_DB. The filters overlap, so the
    gains are solved on the spectrum (TONE_ROUNDS rounds, each filter's RBJ-cookbook response, as
    JUCE builds it) before anything is filtered. Silence gets no EQ."""
    freqs, psd = _spectrum(y, sr)
    return _solve_tone(freqs, psd.mean(axis=0), offsets, sr)


def _solve_tone(freqs: np.ndarray, psd: np.ndarray, offsets: Mapping[str, float], sr: int) -> dict[str, float]:
    masks = {region: (freqs >= lo) & (freqs < hi) for region, (lo, hi) in REGIONS.items()}
    inside = np.logical_or.reduce(list(masks.values()))
    if psd[inside].sum() <= 0:
        return {}
    target = {r: REFERENCE["regions_db"][r]["median"] + offsets.get(r, 0.0) for r in REGIONS}
    gains = dict.fromkeys(REGIONS, 0.0)
    for _ in range(TONE_ROUNDS):
        shaped = psd * np.prod([_response(*TONE_BANDS[r][:2], gains[r], TONE_BANDS[r][2], freqs, sr)
                                for r in REGIONS], axis=0)
        total = shaped[inside].sum()
        for r, m in masks.items():
            measured = 10 * math.log10(max(shaped[m].sum() / total, 1e-12))
            step = target[r] - measured
            gains[r] = max(-TONE_MAX_DB, min(TONE_MAX_DB, gains[r] + TONE_SHARE * step))
    return gains


def _response(kind: str, hz: float, db: float, q: float, freqs: np.ndarray, sr: int) -> np.ndarray:
    """|H(f)|^2 of an RBJ-cookbook shelf or peak (JUCE's IIRCoefficients, which pedalboard uses)."""
    a = 10 ** (db / 40)
    w0 = 2 * math.pi * min(hz, 0.45 * sr) / sr
    cos, sin = math.cos(w0), math.sin(w0)
    if kind == "peak":
        alpha = sin / (2 * q)
        b, den = (1 + alpha * a, -2 * cos, 1 - alpha * a), (1 + alpha / a, -2 * cos, 1 - alpha / a)
    else:
        beta = sin * math.sqrt(a) / q
        am, ap = a - 1, a + 1
        if kind == "low":
            b = (a * (ap - am * cos + beta), 2 * a * (am - ap * cos), a * (ap - am * cos - beta))
            den = (ap + am * cos + beta, -2 * (am + ap * cos), ap + am * cos - beta)
        else:
            b = (a * (ap + am * cos + beta), -2 * a * (am + ap * cos), a * (ap + am * cos - beta))
            den = (ap - am * cos + beta, 2 * (am - ap * cos), ap - am * cos - beta)
    z = np.exp(-1j * 2 * math.pi * freqs / sr)
    h = (b[0] + b[1] * z + b[2] * z * z) / (den[0] + den[1] * z + den[2] * z * z)
    return np.abs(h) ** 2
