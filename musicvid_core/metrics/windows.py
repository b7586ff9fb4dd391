"""The music and sound metrics of long music in bounded memory (issue 17): the audio is read window by
window from an :class:`AudioSource` (the plan's music bus straight from its segment clips on disk,
:class:`ClipBus`, or an array, :class:`ArraySource`), never held whole.

- :func:`music_report` (``metrics.music.music_report``'s figures): music up to WINDOW_S long is read
  whole and measured exactly as before (the same figures); longer music has its beats tracked per
  window of WINDOW_S with OVERLAP_S of overlap (each window keeps the beats up to the middle of its
  overlaps: the tracker settles within a few beats), the per-segment tempo and key measured on each
  segment alone (a segment past WINDOW_S: its beats tracked by window, its chroma averaged over the
  windows), clipping and the boundary clicks from each window and each boundary's +-60 ms. The
  report says so under ``beat_windows``.
- :func:`sound_report` (``metrics.sound.sound_report``'s figures): streamed block by block, the
  same figures for any length (tested equal within rounding): Welch's spectrum from whole segments,
  the K-weighted loudness carried across blocks in the filter state, sums for crest factor and
  stereo width, each bar read on its own for the repetition index.

Peak memory is then set by the window (WINDOW_S of audio and librosa's spectra of it: 0.72 GB for the
whole process, librosa's imports included, at 10 and at 30 minutes of music) instead of growing with the
input (2.9 GB at 10 minutes, 9.7 GB at 30 before). Times are seconds, rates Hz.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from musicvid_core.domain.errors import BadInput
from musicvid_core.metrics import music as mm
from musicvid_core.metrics import sound as sm

WINDOW_S = 120.0  # seconds of music per beat-tracking window: music up to this long is read whole
OVERLAP_S = 16.0  # seconds two windows share; each keeps its beats up to the overlap's middle
BLOCK_S = 60.0  # seconds per block of the streamed sound report
BOUNDARY_PAD_S = 0.06  # read around a segment boundary: the click measure looks +-50 ms
RESAMPLE_PAD_S = 0.05  # seconds read on either side of a block that is resampled on its own


class AudioSource(Protocol):
    """Audio read in pieces: ``sr`` Hz, ``frames`` samples long, ``channels`` wide; ``read(a, b)``
    gives samples [a, b) (clipped to the audio) as float32 ``(b - a, channels)``."""

    sr: int
    frames: int
    channels: int

    def read(self, start: int, stop: int) -> np.ndarray: ...


class ArraySource:
    """An in-memory array ``(samples,)`` or ``(samples, channels)`` as an :class:`AudioSource`."""

    def __init__(self, audio: Any, sr: int) -> None:
        x = np.asarray(audio, dtype=np.float32)
        self.audio = x[:, None] if x.ndim == 1 else x
        self.sr, self.frames, self.channels = int(sr), int(self.audio.shape[0]), int(self.audio.shape[1])

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.audio[max(0, start):max(0, min(stop, self.frames))]


class ClipBus:
    """The plan's music bus (``metrics.music.assemble_music``: each segment's clip added at its
    segment's start, cut at the plan's end), read from the clip files (WAV, any format soundfile
    reads) on demand: sample for sample what assemble_music gives. BadInput when the clips' rates
    differ or their count is not the plan's."""

    def __init__(self, plan: Any, clips: Sequence[str | Path]) -> None:
        import soundfile as sf

        if len(clips) != len(plan.segments):
            raise BadInput(f"{len(clips)} clips for {len(plan.segments)} segments")
        infos = [sf.info(str(p)) for p in clips]
        rates = {int(i.samplerate) for i in infos}
        if len(rates) > 1:
            raise BadInput(f"segment clips have different sample rates: {sorted(rates)}")
        self.sr = rates.pop() if rates else 48000
        self.frames = round(plan.duration * self.sr)
        self.channels = max((int(i.channels) for i in infos), default=2)
        self.paths = [str(p) for p in clips]
        self.spans = [(round(seg.start * self.sr), int(i.frames)) for seg, i in zip(plan.segments, infos)]

    def read(self, start: int, stop: int) -> np.ndarray:
        import soundfile as sf

        start, stop = max(0, start), max(0, min(stop, self.frames))
        out = np.zeros((max(0, stop - start), self.channels), dtype=np.float32)
        for path, (at, length) in zip(self.paths, self.spans):
            a, b = max(start, at), min(stop, at + length, self.frames)
            if b <= a:
                continue
            data = sf.read(path, start=a - at, stop=b - at, dtype="float32", always_2d=True)[0]
            out[a - start:a - start + data.shape[0]] += data  # a mono clip on every channel, as assemble_music
        return out


def _windows(frames: int, sr: int, window_s: float, overlap_s: float, first: int = 0) -> list[tuple[int, int, int, int]]:
    """(read start, read stop, keep from, keep to) in samples, windows of ``window_s`` every
    ``window_s - overlap_s`` from ``first`` to ``frames``, each keeping up to its overlaps' middles."""
    win, step = round(window_s * sr), round((window_s - overlap_s) * sr)
    if step <= 0 or win <= 0:
        raise BadInput(f"windows of {window_s} s overlapping by {overlap_s} s do not advance")
    out, a = [], first
    while True:
        b = min(a + win, frames)
        keep_from = first if a == first else a + (win - step) // 2
        last = b >= frames
        keep_to = frames if last else a + step + (win - step) // 2
        out.append((a, b, keep_from, keep_to))
        if last:
            return out
        a += step


def beats(source: AudioSource, *, tempo_spans: Sequence[tuple[float, float, float]] | None = None,
          prior_bpm: float | None = None, start_s: float = 0.0, end_s: float | None = None,
          window_s: float = WINDOW_S, overlap_s: float = OVERLAP_S) -> np.ndarray:
    """Beat times (seconds from the source's start) in [start_s, end_s) by
    ``metrics.music.detect_beats`` (with ``tempo_spans`` / ``prior_bpm``) per window; where two
    windows' beats meet, one closer than half a beat to the one before is dropped (the same beat
    found twice). Raises BadInput for non-finite audio."""
    sr = source.sr
    first = max(0, round(start_s * sr))
    stop = source.frames if end_s is None else min(source.frames, round(end_s * sr))
    if stop <= first:
        return np.zeros(0)
    found: list[float] = []
    for a, b, keep_from, keep_to in _windows(stop, sr, window_s, overlap_s, first):
        t0 = a / sr
        spans = None
        if tempo_spans:
            spans = [(max(s, t0) - t0, min(e, b / sr) - t0, bpm) for s, e, bpm in tempo_spans
                     if e > t0 and s < b / sr] or None
        got = mm.detect_beats(source.read(a, b), sr, prior_bpm=prior_bpm, tempo_spans=spans) + t0
        got = got[(got >= keep_from / sr) & (got < keep_to / sr)]
        if found and got.size:
            ibi = float(np.median(np.diff(found[-8:] + got[:8].tolist()))) if len(found) + got.size > 2 else 0.0
            if got[0] - found[-1] < 0.5 * ibi:
                got = got[1:]
        found += got.tolist()
    return np.asarray(found, dtype=float)


def music_report(source: AudioSource, plan: Any, *, cuts: Sequence[float] | None = None,
                 tolerance_s: float = mm.TOLERANCE_S, window_s: float = WINDOW_S,
                 overlap_s: float = OVERLAP_S) -> dict:
    """``metrics.music.music_report`` of the source's audio (sample 0 = the video start) against
    ``plan``: the very same call for music up to ``window_s`` long, by windows past that (module
    docstring), with ``beat_windows`` (window and overlap, seconds; how many) added."""
    sr = source.sr
    if source.frames <= round(window_s * sr):
        return mm.music_report(source.read(0, source.frames), sr, plan, cuts=cuts, tolerance_s=tolerance_s)
    cuts = list(plan.cuts if cuts is None else cuts)
    found = beats(source, tempo_spans=mm.plan_tempo_spans(plan), window_s=window_s, overlap_s=overlap_s)
    align = mm.cut_beat_alignment(np.zeros(0), sr, cuts, tolerance_s=tolerance_s, beats_s=found)
    segments = [_segment(source, seg, window_s, overlap_s) for seg in plan.segments]
    errors = [s["tempo_error"] for s in segments]
    modes = [s["mode_match"] for s in segments if s["mode_match"] is not None]
    peak, clipped, n = 0.0, 0, 0
    windows = _windows(source.frames, sr, window_s, 0.0)
    for a, b, _, _ in windows:
        x = np.abs(source.read(a, b))
        if x.size:
            peak, clipped, n = max(peak, float(x.max())), clipped + int(np.count_nonzero(x >= mm.CLIP_LEVEL)), n + x.size
    jumps = []
    pad = round(BOUNDARY_PAD_S * sr)
    for seg in plan.segments[1:]:
        at = round(seg.start * sr)
        part = source.read(at - pad, at + pad)
        if at - pad >= 0 and part.shape[0] == 2 * pad:
            jumps += mm.boundary_discontinuities(part, sr, [pad / sr])
    peak_db = 20 * math.log10(peak) if peak > 0 else -math.inf
    return {
        "cut_beat_hit_rate": mm._num(align.hit_rate, 4), "cut_beat_median_distance_s": mm._num(align.median_distance_s, 4),
        "cuts": align.n_cuts, "beat_tolerance_s": tolerance_s,
        "tempo_within_2pct": mm._num(np.mean([e is not None and abs(e) <= 0.02 for e in errors]), 4) if errors else None,
        "mode_agreement": mm._num(np.mean(modes), 4) if modes else None,
        "peak_dbfs": mm._num(peak_db, 2), "clipped_samples": clipped,
        "boundary_max_jump_db": max((j.jump_db for j in jumps), default=None),
        "boundary_clicks": sum(j.click for j in jumps),
        "segments": segments,
        "beat_windows": {"window_s": window_s, "overlap_s": overlap_s,
                         "count": len(_windows(source.frames, sr, window_s, overlap_s))},
    }


def _segment(source: AudioSource, seg: Any, window_s: float, overlap_s: float) -> dict:
    """One segment's row of the music report: its tempo and key measured on its audio alone."""
    sr = source.sr
    a, b = round(seg.start * sr), round(seg.end * sr)
    key = None
    if b - a <= round(window_s * sr):
        part = mm._analysis_mono(source.read(a, b), sr)
        bpm = mm.estimate_tempo(part, mm.ANALYSIS_SR, prior_bpm=seg.bpm).bpm
        try:
            key = mm.estimate_key(part, mm.ANALYSIS_SR)
        except BadInput:
            key = None
    else:
        bpm = mm.tempo_of_beats(beats(source, prior_bpm=seg.bpm, start_s=seg.start, end_s=seg.end,
                                      window_s=window_s, overlap_s=overlap_s))
        total, count = np.zeros(12), 0
        for wa, wb, _, _ in _windows(b, sr, window_s, 0.0, a):
            y = mm._analysis_mono(source.read(wa, wb), sr)
            if y.size >= 2048 and np.any(y):
                chroma = mm._librosa().feature.chroma_cqt(y=y, sr=mm.ANALYSIS_SR, hop_length=2048)
                total, count = total + chroma.sum(axis=1), count + chroma.shape[1]
        if count:
            try:
                key = mm.key_of_chroma(total / count)
            except BadInput:
                key = None
    return {"index": seg.index, "bpm": seg.bpm, "bpm_estimated": mm._num(bpm, 2),
            "tempo_error": mm._num(bpm / seg.bpm - 1, 4) if math.isfinite(bpm) else None,
            "key": seg.key, "key_estimated": key.key if key else None,
            "mode_match": (key.mode == seg.key.split()[1]) if key else None}


# --- the sound report, streamed ------------------------------------------------------------------
def sound_report(source: AudioSource, *, beats_s: Sequence[float] | None = None,
                 boundaries_s: Sequence[float] | None = None, block_s: float = BLOCK_S) -> dict[str, Any]:
    """``metrics.sound.sound_report`` of the source's audio, streamed in blocks of ``block_s``
    seconds past one block (the same figures; music up to one block is read whole). ``beats_s``
    None: the beats are tracked by :func:`beats`. Raises BadInput as sound_report does."""
    sr, n, channels = source.sr, source.frames, source.channels
    if n < sr:
        raise BadInput(f"a sound report need at least 1 s of audio, got {n / sr:.2f} s")
    if n <= round(block_s * sr):
        return sm.sound_report(source.read(0, n), sr, beats_s=beats_s, boundaries_s=boundaries_s)
    if channels > 2:
        raise BadInput(f"stereo width needs one or two channels, got {channels}")
    meter = _Meter(n, sr, channels, boundaries_s)
    welch = _Welch()
    up, down = _ratio(sr)
    step = max(down, round(block_s * sr) // down * down)  # block starts on the resampler's grid
    pad = math.ceil(RESAMPLE_PAD_S * sr / down) * down
    for a in range(0, n, step):
        b = min(a + step, n)
        x = source.read(a, b).astype(np.float64)
        if not np.isfinite(x).all():
            raise BadInput("a sound report: the audio holds NaN or infinite samples")
        meter.feed(x)
        if up == down:
            welch.feed(x)
        else:  # resampled with a margin read on either side, so the block's edges are the whole's
            from scipy.signal import resample_poly

            lo = max(0, a - pad)
            y = resample_poly(source.read(lo, min(n, b + pad)).astype(np.float64), up, down, axis=0)
            first = (a - lo) * up // down
            y = y[first:first + math.ceil(b * up / down) - a * up // down]
            welch.feed(y)
    curve = sm.balance_of_psd(*welch.result())
    if beats_s is None:
        beats_s = beats(source).tolist()
    bars = sm.bar_spans(beats_s, n / sr)
    rep = math.nan
    if len(bars) >= 2:
        feats = []
        for start, end in bars:
            a, b = round(start * sr), round(end * sr)
            feats.append(sm.bar_features(source.read(a, b).astype(np.float64).mean(axis=1), sr, 0.0, (b - a) / sr))
        rep = sm.repeat_share(np.stack(feats))
    return sm.report_of(curve, meter.crest_db(), meter.lra_lu(), meter.stereo(), meter.contrast_db(), rep)


def _ratio(sr: int) -> tuple[int, int]:
    g = math.gcd(int(sr), sm.ANALYSIS_SR)
    return sm.ANALYSIS_SR // g, int(sr) // g


class _Welch:
    """Welch's mean periodogram (``metrics.sound.spectral_balance``'s: WELCH_N-sample Hann segments,
    half overlapping) of audio fed in blocks at ANALYSIS_SR: every whole segment, as one call on the
    whole audio would take them."""

    def __init__(self) -> None:
        self.buf: np.ndarray | None = None
        self.total: Any = 0.0
        self.count = 0
        self.freqs: np.ndarray | None = None

    def feed(self, x: np.ndarray) -> None:
        from scipy.signal import welch

        buf = x if self.buf is None else np.concatenate([self.buf, x])
        nper, hop = sm.WELCH_N, sm.WELCH_N // 2
        if buf.shape[0] >= nper:
            k = (buf.shape[0] - nper) // hop + 1
            self.freqs, psd = welch(buf[:(k - 1) * hop + nper], fs=sm.ANALYSIS_SR, nperseg=nper, axis=0,
                                    detrend=False)
            self.total, self.count = self.total + psd * k, self.count + k
            buf = buf[k * hop:]
        self.buf = buf

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.freqs is None:
            raise BadInput("spectral balance needs at least one whole analysis segment")
        return self.freqs, (self.total / self.count).mean(axis=1)


class _Meter:
    """Sums over blocks for the crest factor, stereo width, loudness range and section contrast:
    the K-weighting filter's state carries from block to block, the short-term loudness comes from
    power sums over chunks that both its window and its hop are whole numbers of."""

    def __init__(self, n: int, sr: int, channels: int, boundaries_s: Sequence[float] | None) -> None:
        self.n, self.sr, self.at = n, sr, 0
        self.sos = sm._k_weighting(sr)
        self.zi = np.zeros((self.sos.shape[0], channels, 2))
        self.peak = self.sumsq = 0.0
        self.sums = np.zeros(7)  # mid^2, side^2, L, R, L^2, R^2, LR
        self.block, self.hop = max(1, round(sm.SHORT_TERM_S * sr)), max(1, round(sm.LRA_HOP_S * sr))
        self.chunk = math.gcd(self.block, self.hop)
        self.chunks: list[np.ndarray] = []
        self.carry = np.zeros(0)
        if boundaries_s is None:
            step = max(1, round(sm.SECTION_S * sr))
            cuts = list(range(step, n - step // 2, step))
        else:
            cuts = sorted({round(b * sr) for b in boundaries_s if 0 < round(b * sr) < n})
        self.edges = np.array([0, *cuts, n])
        self.section = np.zeros(len(self.edges) - 1)

    def feed(self, x: np.ndarray) -> None:
        from scipy.signal import sosfilt

        a, b = self.at, self.at + x.shape[0]
        self.peak = max(self.peak, float(np.abs(x).max()))
        self.sumsq += float(np.sum(np.square(x)))
        left, right = x[:, 0], x[:, -1]
        mid, side = (left + right) / 2, (left - right) / 2
        self.sums += [mid @ mid, side @ side, left.sum(), right.sum(), left @ left, right @ right, left @ right]
        y, self.zi = sosfilt(self.sos, x.T, axis=1, zi=self.zi)
        power = np.einsum("cn,cn->n", y, y)
        run = np.concatenate([self.carry, power])
        whole = run.size // self.chunk * self.chunk
        self.chunks.append(run[:whole].reshape(-1, self.chunk).sum(axis=1))
        self.carry = run[whole:]
        csum = np.concatenate(([0.0], np.cumsum(power)))
        k0 = int(np.searchsorted(self.edges, a, side="right")) - 1
        for k in range(max(0, k0), len(self.section)):
            lo, hi = max(int(self.edges[k]), a), min(int(self.edges[k + 1]), b)
            if lo >= b:
                break
            if hi > lo:
                self.section[k] += csum[hi - a] - csum[lo - a]
        self.at = b

    def crest_db(self) -> float:
        rms = math.sqrt(self.sumsq / (self.n * self.zi.shape[1]))
        if rms <= 0:
            raise BadInput("the crest factor of silence is undefined")
        return 20 * math.log10(self.peak / rms)

    def lra_lu(self) -> float:
        if self.n < sm.SHORT_TERM_S * self.sr:
            return 0.0
        csum = np.concatenate(([0.0], np.cumsum(np.concatenate(self.chunks))))
        starts = np.arange(0, max(1, self.n - self.block + 1), self.hop) // self.chunk
        per = self.block // self.chunk
        return sm.lra_of_short_term(-0.691 + sm._db((csum[starts + per] - csum[starts]) / self.block))

    def contrast_db(self) -> float:
        sizes = np.diff(self.edges)
        return sm.contrast_of_levels([-0.691 + float(sm._db(s / size)) for s, size in zip(self.section, sizes)
                                      if size > 0])

    def stereo(self) -> dict[str, float]:
        n = self.n
        mid2, side2, sl, sr_, ll, rr, lr = self.sums
        rm, rs = math.sqrt(mid2 / n), math.sqrt(side2 / n)
        width = min(10.0, rs / rm) if rm > 0 else (10.0 if rs > 0 else 0.0)
        ml, mr = sl / n, sr_ / n
        dl, dr = math.sqrt(max(0.0, ll / n - ml * ml)), math.sqrt(max(0.0, rr / n - mr * mr))
        corr = (lr / n - ml * mr) / (dl * dr) if dl > 0 and dr > 0 else 1.0
        mean = self.sumsq / (n * self.zi.shape[1])
        loss = 0.0 if mean <= 0 else float(sm._db(mid2 / n / mean))
        return {"width": width, "correlation": max(-1.0, min(1.0, corr)), "mono_loss_db": loss}
