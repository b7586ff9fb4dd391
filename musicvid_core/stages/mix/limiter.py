"""The true-peak limiter and the make-up gain, in process (issue 18).

The mix used to be mastered by ffmpeg: the premaster resampled to 192 kHz, ``alimiter`` there, and
back to 48 kHz, inside the final run (~5.5 CPU-s on 15 minutes), after two "gain probes" (the same
chain at the mix rate, metered: ~3.5 CPU-s) had fitted the make-up gain. Here the premaster is
read once (:func:`analyse`) into two short arrays, one value per CHUNK samples (0.67 ms at 48 kHz):

- **the true peak** of the chunk, both channels linked: its samples and the three points between
  each pair of them that a 4x oversampling adds (BS.1770-4 Annex 2's polyphase interpolator, here
  16 taps a phase), in dBFS;
- **the K-weighted energy** of the chunk (BS.1770's filter, both channels summed).

From them, for any make-up gain, :func:`curve` gives the limiter's gain reduction per chunk and
:func:`loudness` the integrated loudness (BS.1770 blocks and gates) the limited master will have,
so the gain is fitted on the arrays alone (:func:`fit`, a few milliseconds per try instead of a
pass over the audio). The master itself (:func:`master_blocks`) is the premaster times the gain and
the interpolated reduction, streamed as a WAV into the final run's encoder: no file is written.

The limiter (the gain reduction ``r`` in dB, per chunk ``c``):

- the reduction each chunk needs: ``max(0, peak[c] + gain - ceiling)``;
- look-ahead (the attack, LIMITER_ATTACK_MS): the largest need over chunks ``c - 1 .. c + L``;
- release (LIMITER_RELEASE_MS): the reduction decays exponentially, never faster than that time
  constant, never below the look-ahead's need;
- smoothing: the mean of the last ``L`` chunks' reduction, so the gain ramps down over the attack
  time instead of stepping.

Every chunk's need lies in every window the mean sees (and in its neighbours', between which the
per-sample gain is interpolated linearly), so the reduction applied to each sample is at least
what its chunk's true peak needs: the ceiling holds by construction, not by tuning. What it cannot
see is what the AAC encoder adds: the final run meters the encoded output and compose lowers the
ceiling and runs again if that overshot (compose.MAX_PEAK_RETRIES), as it did with ``alimiter``.

Why by hand: no library offers a look-ahead true-peak limiter with its gain curve exposed (pedalboard's
Limiter is JUCE's, a sample-peak compressor pair without look-ahead; pyloudnorm meters but does not
limit), and the gain fit needs the curve for many gains without passing over the audio again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from musicvid_core.metrics.loudness import SILENCE_LUFS, gated_lufs, k_weighting

LIMITER_ATTACK_MS = 5.0  # the look-ahead, and the ramp down before a peak
# The release's time constant (the reduction in dB decays as exp(-t / it)). 40 ms alters the music as
# much as the alimiter it replaced (release=80, whose curve recovers faster than its figure): the
# same energy of change and time spent more than 1 dB down, bench/limiter_quality.py (docs/speed.md).
LIMITER_RELEASE_MS = 40.0
CHUNK_MAX = 32  # samples per chunk, at most: 0.67 ms at 48 kHz
TAPS = 16  # per phase of the 4x interpolator (BS.1770-4 Annex 2 uses 12; 16 reads synthetic
# material with much energy near 20 kHz as ffmpeg's meter does, where 12 read 0.45 dB low)
OVERSAMPLING = 4
KAISER_BETA = 3.0  # the interpolator's window: flat up to ~20 kHz at 48 kHz
READ_CHUNKS = 1 << 13  # chunks analysed at a time: 262 144 samples, 2 MB of float stereo
FEED_CHUNKS = 1 << 11  # chunks of the master streamed at a time: 0.5 MB, ~2 MB with their gains
CURVE_CHUNKS = 1 << 16  # chunks of the gain curve computed at a time


@dataclass(frozen=True)
class Peaks:
    """What :func:`analyse` read from a premaster: per chunk of ``chunk`` samples, the true peak
    (dBFS, float16 rounded up: :func:`half_up`) and the K-weighted energy (sum of squares over the
    chunk's samples and the channels, float32); ``total`` samples at ``sample_rate`` Hz. 6 bytes a
    chunk: 32 MB for an hour at 48 kHz."""

    peak_db: object
    energy: object
    chunk: int
    sample_rate: int
    total: int

    @property
    def true_peak_db(self) -> float:
        return float(self.peak_db.max()) if len(self.peak_db) else -math.inf


def chunk_size(sample_rate: int) -> int:
    """The largest chunk (at most CHUNK_MAX samples) that divides BS.1770's 100 ms block step, so
    that the loudness estimate's blocks are whole chunks (48 kHz: 32; 24 kHz: 32; 44.1 kHz: 30)."""
    step = round(sample_rate / 10)
    best = max(d for d in range(1, CHUNK_MAX + 1) if step % d == 0)
    # A chunk must span the interpolator's reach either side (analyse's bound reads its neighbours);
    # a rate whose step has no such divisor gets CHUNK_MAX and blocks a fraction of a chunk off.
    return best if best >= TAPS // 2 else CHUNK_MAX


def interpolator():
    """The 4x oversampler's three in-between phases as a (TAPS, 3) matrix: row j weighs the sample
    ``j - TAPS // 2 + 1`` places from the current one; column k-1 gives the value k/4 of a sample
    after it. A Kaiser-windowed sinc, each phase normalised to unit gain at DC."""
    import numpy as np

    offsets = np.arange(TAPS) - (TAPS // 2 - 1)  # -7 .. 8
    phases = []
    for k in range(1, OVERSAMPLING):
        t = k / OVERSAMPLING - offsets  # distance from each tap to the interpolated point
        window = np.i0(KAISER_BETA * np.sqrt(np.clip(1 - (t / (TAPS / 2)) ** 2, 0, 1))) / np.i0(KAISER_BETA)
        h = np.sinc(t) * window
        phases.append(h / h.sum())
    return np.stack(phases, axis=1)


def analyse(premaster: str | Path, *, floor_db: float = -math.inf, workers: int = 2, energy=None) -> Peaks:
    """Read the premaster (a float WAV) once: per chunk its linked true peak and K-weighted energy.

    The in-between points cost most (a TAPS-tap filter, three phases, every channel), so they are
    computed only where they can matter: a chunk's in-between points are at most the interpolator's
    gain over any input (its phases' summed absolute taps, +7.1 dB) times the largest sample within
    their reach (the chunk and its neighbours); where that bound stays under ``floor_db`` (dBFS;
    compose passes the ceiling less the largest gain it expects to try) the bound itself is kept as
    the chunk's peak. A bound is never under the true peak, so the limiter stays safe at any gain,
    only a little more cautious than it need be under the floor.

    The K-weighting runs in this thread (its filter state runs on from block to block); the peaks
    of each block, which need only the block and its edges, on ``workers`` threads beside it (numpy
    and scipy release the GIL in their loops): on 15 minutes ~3.4 CPU-s in ~1.8 s. ``energy``: the
    K-weighted energies already computed in the pass that wrote the premaster
    (premaster.mix_premaster, the same figure): then only the peaks are read."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import soundfile as sf
    h = interpolator().astype(np.float32)
    reach = float(np.abs(h).sum(axis=0).max())  # the interpolator's largest gain over any input
    floor = 10 ** (floor_db / 20) / reach if math.isfinite(floor_db) else 0.0
    before, after = TAPS // 2 - 1, TAPS // 2  # samples each in-between point reads either side
    with sf.SoundFile(str(premaster)) as f, ThreadPoolExecutor(max(1, workers)) as pool:
        rate, channels, total = f.samplerate, f.channels, f.frames
        chunk = chunk_size(rate)
        chunks = -(-total // chunk)
        peak = np.empty(chunks, dtype=np.float16)
        weigh = energy is None
        if weigh:
            energy = np.empty(chunks, dtype=np.float32)
        elif len(energy) != chunks:
            raise ValueError(f"{len(energy)} energies for {chunks} chunks")
        sos = k_weighting(rate)
        zi = np.zeros((sos.shape[0], 2, channels))  # the filter starts from rest, as the meters' do
        step = READ_CHUNKS * chunk
        history = np.zeros((before + chunk, channels), dtype=np.float32)  # the last chunk read, and before it
        pending: list = []
        c0 = 0
        block = f.read(step, dtype="float32", always_2d=True)
        while len(block):
            following = f.read(step, dtype="float32", always_2d=True)
            n = len(block)
            pad = -n % chunk
            # [history | block | pad | the next chunk and more]: chunks start at len(history) - chunk
            ahead = np.zeros((pad + chunk + after, channels), dtype=np.float32)
            ahead[pad:pad + min(len(following), chunk + after)] = following[:chunk + after]
            padded = np.concatenate([history, block, ahead])
            c1 = c0 + (n + pad) // chunk
            pending.append((c0, c1, pool.submit(_block_peaks, padded, base=len(history), chunks=c1 - c0,
                                                chunk=chunk, h=h, reach=reach, floor=floor)))
            if weigh:
                energy[c0:c1], zi = chunk_energies(sos, block, zi, chunk)
            history = padded[len(history) + n + pad - before - chunk:len(history) + n + pad]
            c0, block = c1, following
            while len(pending) > 2 * workers:  # a few blocks in flight, not the file
                a, b, done = pending.pop(0)
                peak[a:b] = done.result()
        for a, b, done in pending:
            peak[a:b] = done.result()
    return Peaks(peak, energy, chunk, rate, total)


def chunk_energies(sos, block, zi, chunk: int):
    """The K-weighted energy (sum of squares over the samples and the channels) of each ``chunk``
    samples of ``block`` (the last chunk padded with silence), and the filter's state after it:
    ``sos`` is metrics.loudness.k_weighting, ``zi`` its state before the block (zeros at rest)."""
    import numpy as np
    from scipy.signal import sosfilt

    k, zi = sosfilt(sos, block, axis=0, zi=zi)
    power = np.einsum("ij,ij->i", k, k)
    pad = -len(power) % chunk
    if pad:
        power = np.concatenate([power, np.zeros(pad)])
    return power.reshape(-1, chunk).sum(axis=1), zi


def _block_peaks(padded, *, base: int, chunks: int, chunk: int, h, reach: float, floor: float):
    """The true peak (dBFS) of each of ``chunks`` chunks starting at ``padded[base]`` (the chunk
    before them and the samples their in-between points read lie around them in ``padded``)."""
    import numpy as np

    body = padded[base:base + chunks * chunk]
    sample_max = np.abs(body.reshape(chunks, -1)).max(axis=1)
    near = np.abs(padded[base - chunk:base]).max()  # the chunk before
    next_max = np.abs(padded[base + chunks * chunk:base + (chunks + 1) * chunk]).max()
    neighbours = np.maximum(sample_max, np.maximum(np.r_[near, sample_max[:-1]], np.r_[sample_max[1:], next_max]))
    between = neighbours * reach  # a bound, made exact below where it can matter
    wanted = np.flatnonzero(neighbours >= floor)
    if len(wanted):
        between[wanted] = _between(padded, wanted, base=base, chunk=chunk, h=h)
    with np.errstate(divide="ignore"):
        return half_up(20 * np.log10(np.maximum(sample_max, between).astype(np.float64)))


def half_up(values):
    """``values`` as float16, each rounded up to the next representable value where float16 would
    round it down (a peak or a reduction never reads lower than computed: at most 0.016 dB higher
    between 16 and 32 dB). The per-chunk arrays are kept at an hour's length: 2 bytes a chunk."""
    import numpy as np

    half = np.asarray(values).astype(np.float16)
    low = half.astype(np.float64) < values
    half[low] = np.nextafter(half[low], np.float16(np.inf))
    return half


def _between(padded, wanted, *, base: int, chunk: int, h):
    """The largest in-between point (absolute, both channels) of each chunk in ``wanted`` (indices
    of chunks whose first sample is ``padded[base + i * chunk]``): their windows, TAPS - 1 samples
    wider, laid end to end and filtered as one signal per channel and phase."""
    import numpy as np

    before = TAPS // 2 - 1
    width = chunk + TAPS - 1
    index = (base - before + wanted * chunk)[:, None] + np.arange(width)[None, :]
    windows = padded[index]  # (wanted, width, channels)
    out = np.zeros((len(wanted), chunk), dtype=np.float32)
    for c in range(windows.shape[2]):
        signal = np.ascontiguousarray(windows[:, :, c]).ravel()
        for k in range(h.shape[1]):
            y = np.convolve(signal, h[::-1, k], mode="valid")  # y[i] reads signal[i .. i + TAPS - 1]
            y = np.pad(y, (0, TAPS - 1)).reshape(len(wanted), width)[:, :chunk]
            np.maximum(out, np.abs(y), out=out)
    return out.max(axis=1)


def attack_chunks(peaks: Peaks) -> int:
    """L: the look-ahead and the ramp down, in chunks (LIMITER_ATTACK_MS)."""
    return max(1, round(LIMITER_ATTACK_MS / 1000 * peaks.sample_rate / peaks.chunk))


def curve(peaks: Peaks, gain_db: float, ceiling_db: float):
    """The limiter's gain reduction (dB, >= 0, float16 rounded up), one value per chunk, for the premaster
    raised by ``gain_db`` under a ceiling of ``ceiling_db`` dBFS true peak (module docstring)."""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    n, span = len(peaks.peak_db), attack_chunks(peaks)
    decay = -peaks.chunk / (LIMITER_RELEASE_MS / 1000 * peaks.sample_rate)  # log of the release per chunk
    out = np.zeros(n, dtype=np.float16)
    offset = gain_db - ceiling_db
    if n == 0 or peaks.true_peak_db + offset <= 0:
        return out
    released = 0.0  # the reduction of the chunk before the block
    tail = np.zeros(span - 1)  # the released reduction of the span - 1 chunks before the block
    for s in range(0, n, CURVE_CHUNKS):
        e = min(n, s + CURVE_CHUNKS)
        need = np.zeros(e - s + span + 1)  # chunks s - 1 .. e + span - 1
        lo, hi = max(0, s - 1), min(n, e + span)
        need[lo - (s - 1):hi - (s - 1)] = np.maximum(peaks.peak_db[lo:hi].astype(np.float64) + offset, 0.0)
        ahead = sliding_window_view(need, span + 1).max(axis=1)  # chunk c: its need over c - 1 .. c + span - 1
        ahead = np.maximum(ahead[:e - s], ahead[1:e - s + 1])  # .. c + span
        if not ahead.any() and released < 1e-9:
            reduction = np.zeros(e - s)
        else:
            k = np.arange(e - s)
            with np.errstate(divide="ignore"):
                start = math.log(released) + decay if released > 0 else -math.inf
                reduction = np.exp(k * decay + np.maximum(np.maximum.accumulate(np.log(ahead) - k * decay), start))
            reduction = np.maximum(reduction, ahead)  # exp(log(x)) rounds: never under the need
        both = np.concatenate([tail, reduction])
        sums = np.concatenate([[0.0], np.cumsum(both)])
        out[s:e] = half_up(np.maximum((sums[span:] - sums[:-span]) / span, 0.0))
        tail, released = both[len(both) - (span - 1):], float(reduction[-1])
    # The mean of the last span chunks: every chunk's need lies in each of them (see the docstring).
    return out


def loudness(peaks: Peaks, gain_db: float, reduction=None) -> float:
    """The integrated loudness (LUFS, BS.1770: 400 ms blocks every 100 ms, the absolute and relative
    gates) of the premaster raised by ``gain_db`` and limited by ``reduction`` (dB per chunk), from
    the chunks' K-weighted energies: the gain is taken as constant over each chunk. -70 for silence
    or less than one block."""
    return energy_lufs(peaks.energy, chunk=peaks.chunk, sample_rate=peaks.sample_rate, total=peaks.total,
                       gain_db=gain_db, reduction=reduction)


def energy_lufs(energy, *, chunk: int, sample_rate: int, total: int, gain_db: float = 0.0,
                reduction=None) -> float:
    """:func:`loudness` from the K-weighted energies alone (one per chunk of ``chunk`` samples,
    ``total`` samples at ``sample_rate`` Hz)."""
    import numpy as np

    step = round(sample_rate / 10)  # samples per 100 ms
    per = max(1, step // chunk)  # chunks per 100 ms (chunk_size makes it exact)
    whole = total // (per * chunk)
    sub = np.empty(whole)
    run = per * (CURVE_CHUNKS // per + 1)  # whole 100 ms steps at a time: temporaries stay small
    for s in range(0, whole * per, run):
        e = min(whole * per, s + run)
        part = energy[s:e].astype(np.float64)
        if reduction is not None:
            part *= 10 ** (-np.asarray(reduction[s:e], np.float64) / 10)
        sub[s // per:e // per] = part.reshape(-1, per).sum(axis=1)
    sub *= 10 ** (gain_db / 10)
    return max(SILENCE_LUFS, gated_lufs(sub, per * chunk))


def fit(peaks: Peaks, *, target_lufs: float, ceiling_db: float, gain_db: float,
        tolerance_lu: float = 0.01, tries: int = 12) -> tuple[float, float]:
    """The make-up gain (dB) that brings the limited master to ``target_lufs``, starting from
    ``gain_db`` (the gain without a limiter: the limiter only takes loudness away, so the answer is
    at or above it); and the loudness it predicts. Secant steps on the estimate (:func:`loudness`
    of :func:`curve`): a few ms to tens of ms each, no pass over the audio."""
    gain = gain_db
    level = loudness(peaks, gain, curve(peaks, gain, ceiling_db))
    previous = None
    for _ in range(tries):
        residual = target_lufs - level
        if abs(residual) <= tolerance_lu:
            break
        slope = 1.0
        if previous is not None and gain != previous[0]:
            slope = min(1.0, max(0.05, (level - previous[1]) / (gain - previous[0])))
        previous = (gain, level)
        gain += max(-6.0, min(6.0, residual / slope))
        level = loudness(peaks, gain, curve(peaks, gain, ceiling_db))
    return gain, level


def wav_header(sample_rate: int, channels: int, frames: int) -> bytes:
    """A 32-bit float WAV header for ``frames`` frames. Past 4 GB the sizes read 0xFFFFFFFF: the
    reader is told to ignore them (ffmpeg's wav demuxer: ``-ignore_length 1``) and reads to the end."""
    import struct

    data = frames * channels * 4
    riff = min(0xFFFFFFFF, 36 + data)
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 3, channels, sample_rate, sample_rate * channels * 4, channels * 4, 32)
            + b"data" + struct.pack("<I", min(0xFFFFFFFF, data)))


def master_blocks(premaster: str | Path, gain_db: float, reduction=None, *, chunk: int = CHUNK_MAX,
                  start: int = 0, stop: int | None = None) -> Iterator[bytes]:
    """The master as a WAV byte stream: the premaster times ``gain_db`` and the limiter's
    ``reduction`` (dB per chunk of ``chunk`` samples; None: the gain alone), interpolated linearly
    between the chunks' centres sample by sample; samples ``[start, stop)`` of it (the whole by
    default). Read and written FEED_CHUNKS chunks at a time (two of these feed a split encode at
    once, beside two encoders: they stay small)."""
    import numpy as np
    import soundfile as sf

    with sf.SoundFile(str(premaster)) as f:
        stop = f.frames if stop is None else min(stop, f.frames)
        start = min(max(0, start), stop)
        yield wav_header(f.samplerate, f.channels, stop - start)
        scale = np.float32(10 ** (gain_db / 20))
        f.seek(start)
        at = start
        while at < stop:
            block = f.read(min(FEED_CHUNKS * chunk, stop - at), dtype="float32", always_2d=True)
            if not len(block):
                break
            if reduction is not None:
                first, last = at // chunk, (at + len(block) - 1) // chunk
                lo, hi = max(0, first - 1), min(len(reduction), last + 2)  # the neighbours the ends lean on
                down = np.asarray(reduction[lo:hi], np.float64)
                if down.any():
                    centres = np.arange(lo, hi) * chunk + (chunk - 1) / 2
                    gains = scale * 10 ** (-down / 20)
                    block *= np.interp(np.arange(at, at + len(block)), centres, gains).astype(np.float32)[:, None]
                    yield block.tobytes()
                    at += len(block)
                    continue
            if scale != 1.0:
                block *= scale
            yield block.tobytes()
            at += len(block)
