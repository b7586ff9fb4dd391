"""Speech against music: how far the music sits under the dialogue, and whether it comes back.

Measured on the mixer's bus stems (float WAVs of the original sound and of the music as they enter
the final sum, see ``compose(stems_dir=...)``), so each source is metered on its own: no source
separation is needed. Loudness is BS.1770 over the samples of the given time spans put end to end,
gating included, as a dialogue level is measured. On the stems (48 kHz, mono or stereo) it is
metered in numpy on the selected samples read straight from the WAV: the same frames, filter,
blocks and gates as ffmpeg's ebur128 (``loudness_over_ffmpeg``, the reference, which other files
go through), without one ffmpeg run per span set (184 of them on a 15-minute talk). Both stream,
so hours of stems cost no memory.

Never NaN or infinite: silence (or spans too short to meter, < 0.4 s) reads -70 LUFS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from musicvid_core.domain.features import Region
from musicvid_core.media import run_ffmpeg
from musicvid_core.metrics.loudness import SILENCE_LUFS, gated_lufs, k_weighting, parse_ebur128_summary

RECOVERY_AFTER_S = 1.0  # the music should be back this long after speech ends...
RECOVERY_WINDOW_S = 1.0  # ...measured over this long a window
RECOVERY_TOLERANCE_LU = 3.0  # ...within this of its unducked level
_MIN_METERED_S = 0.4  # one BS.1770 gating block
_FRAME_S = 0.01  # the spans are cut on frames of 480 samples (10 ms at the stems' 48 kHz)
_METER_SR = 48000  # ebur128 meters at 48 kHz; files at other rates go through ffmpeg (it resamples)
_FRAME = 480  # samples of one 10 ms frame at 48 kHz
_STEP = 4800  # BS.1770 gating blocks are 400 ms long and start every 100 ms (75 % overlap)
_READ = 48000 * 8  # samples read at a time: a long span set costs ~6 MB, not the stem's length


def _selected_runs(spans: Sequence[tuple[float, float]], n: int) -> list[tuple[int, int]]:
    """The sample ranges [a, b) of the 10 ms frames the ffmpeg meter selects for ``spans`` (seconds)
    in a file of ``n`` samples: every frame whose start lies in [start, end - 5 ms] of a span (its
    ``aselect``), each once, in time order, adjacent frames joined into one range."""
    import numpy as np

    frames = n // _FRAME + (n % _FRAME > 0)
    chosen = np.zeros(frames, dtype=bool)
    for a, b in spans:  # 1e-6: the same frame starts ffmpeg's between() keeps on 4-decimal bounds
        first, last = math.ceil(a / _FRAME_S - 1e-6), math.floor((b - 0.005) / _FRAME_S + 1e-6)
        chosen[max(first, 0):min(last, frames - 1) + 1] = True
    edges = np.flatnonzero(np.diff(np.concatenate(([0], chosen.astype(np.int8), [0]))))
    return [(int(s) * _FRAME, min(int(e) * _FRAME, n)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def _metered(f, spans: Sequence[tuple[float, float]]) -> float:
    """Integrated loudness (LUFS, -70 floor, 0.01) of the open 48 kHz SoundFile ``f`` over ``spans``
    put end to end: K-weighted with the filter state carried across the joins, mean square over
    400 ms blocks every 100 ms from the first selected sample (a trailing part block is not
    metered), absolute then relative gate, as ebur128 does."""
    import numpy as np
    from scipy.signal import sosfilt

    sos = k_weighting(_METER_SR)
    state = np.zeros((2, f.channels, 2))  # sosfilt's zi for (sections, channels, 2)
    steps, carry = [], np.zeros(0)
    for a, b in _selected_runs(spans, f.frames):
        for at in range(a, b, _READ):
            f.seek(at)
            x = f.read(min(_READ, b - at), dtype="float64", always_2d=True)
            y, state = sosfilt(sos, x, axis=0, zi=state)
            power = np.concatenate((carry, np.square(y).sum(axis=1)))  # ch. weights: 1 for L, R
            whole = len(power) // _STEP * _STEP
            steps.append(power[:whole].reshape(-1, _STEP).sum(axis=1))
            carry = power[whole:]
    steps = np.concatenate(steps) if steps else np.zeros(0)
    lufs = gated_lufs(steps, _STEP)
    return SILENCE_LUFS if not math.isfinite(lufs) or lufs < SILENCE_LUFS else round(lufs, 2)


def loudness_over(path: str | Path, spans: Sequence[tuple[float, float]], *, timeout: float = 600.0) -> float:
    """Integrated loudness (LUFS, -70 floor, rounded to 0.01) of the audio file ``path`` over the
    time ``spans`` (seconds, clipped to the file) put end to end.

    BS.1770-4, gating included, on the samples of the 10 ms frames the spans cover, streamed: an
    hour of stems costs no more memory than a second. A 48 kHz mono or stereo file is metered in
    numpy (``_metered``, within 0.05 LU of ebur128: it prints 0.1 LU); anything else by
    ``loudness_over_ffmpeg``. Raises soundfile's error for a file it cannot read, MediaToolError
    when ffmpeg fails."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        spans = _clipped(spans, f.frames / f.samplerate)
        if sum(b - a for a, b in spans) < _MIN_METERED_S:
            return SILENCE_LUFS
        if f.samplerate == _METER_SR and f.channels <= 2:
            return _metered(f, spans)
    return loudness_over_ffmpeg(path, spans, timeout=timeout)


def _clipped(spans: Sequence[tuple[float, float]], length: float) -> list[tuple[float, float]]:
    """``spans`` (seconds) clipped to [0, ``length``], the empty ones dropped."""
    return [(max(0.0, a), min(length, b)) for a, b in spans if min(length, b) > max(0.0, a)]


def loudness_over_ffmpeg(path: str | Path, spans: Sequence[tuple[float, float]], *,
                         timeout: float = 600.0) -> float:
    """``loudness_over`` metered by ffmpeg's ebur128 (LUFS, -70 floor, 0.1 LU as ebur128 prints it):
    one ffmpeg run per call. The reference the numpy meter is tested against; raises MediaToolError
    when ffmpeg fails."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:  # the header only
        length = f.frames / f.samplerate
    spans = _clipped(spans, length)
    if sum(b - a for a, b in spans) < _MIN_METERED_S:
        return SILENCE_LUFS
    # Decode only from the first span (on the 10 ms frame grid, so the frames are the same as
    # from the file's start) to the last: a one-second window of a long stem reads one second.
    start = math.floor(min(a for a, _ in spans) / _FRAME_S) * _FRAME_S
    stop = max(b for _, b in spans)
    select = "+".join(f"between(t\\,{a - start:.4f}\\,{b - start - 0.005:.4f})" for a, b in spans)
    chain = f"asetnsamples=n=480:p=0,aselect='{select}',asetpts=N/SR/TB,ebur128=framelog=quiet"
    proc = run_ffmpeg(["-nostats", "-ss", f"{start:.4f}", "-t", f"{stop - start:.4f}", "-i", str(path),
                       "-af", chain, "-f", "null", "-"], timeout=timeout, what="span meter")
    return parse_ebur128_summary(proc.stderr).integrated_lufs  # floored at -70, rounded


def _regions(speech_regions: Sequence[Region | tuple[float, float]]) -> list[tuple[float, float]]:
    spans = [(r.start, r.end) if isinstance(r, Region) else (float(r[0]), float(r[1])) for r in speech_regions]
    return sorted(spans)


def recovery_windows(speech: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Windows (seconds) starting RECOVERY_AFTER_S after each speech end, RECOVERY_WINDOW_S long, cut
    short half a second before the next speech (where the music may already be going down again) and
    at ``duration``; windows shorter than one gating block are dropped."""
    windows = []
    for i, (_, end) in enumerate(speech):
        stop = min(end + RECOVERY_AFTER_S + RECOVERY_WINDOW_S, duration)
        if i + 1 < len(speech):
            stop = min(stop, speech[i + 1][0] - 0.5)
        if stop - (end + RECOVERY_AFTER_S) >= _MIN_METERED_S:
            windows.append((end + RECOVERY_AFTER_S, stop))
    return windows


def speech_music_difference(original_stem: str | Path, music_stem: str | Path,
                            speech_regions: Sequence[Region | tuple[float, float]], *,
                            unducked_music: str | Path | None = None) -> dict:
    """How far the music sits under the speech, and whether it comes back after it.

    ``original_stem`` and ``music_stem`` are audio files of the original sound and of the (ducked)
    music, aligned on the same timeline; ``speech_regions`` are seconds. ``unducked_music`` is the
    music before ducking, when available: the recovery reference. Returns (LUFS / LU, rounded to 0.01):

    - ``speech_lufs``: the original sound during speech; ``music_lufs``: the music during speech;
    - ``speech_music_lu``: their difference (positive = music under the speech; >= 10 is the goal);
    - ``recovery_lu``: the largest shortfall, over the speech ends followed by room to measure, of
      the music RECOVERY_AFTER_S after speech ends against its unducked level in the same window
      (without ``unducked_music``: its level outside speech and its ramps); None when no speech end
      leaves room;
    - ``music_recovered``: recovery_lu <= RECOVERY_TOLERANCE_LU (None when recovery_lu is None);
    - ``speech_s``: seconds of speech measured.
    """
    import soundfile as sf

    speech = _regions(speech_regions)
    duration = sf.info(str(music_stem)).duration
    speech_lufs = loudness_over(original_stem, speech)
    music_lufs = loudness_over(music_stem, speech)
    shortfalls = []
    windows = recovery_windows(speech, duration)
    if windows and unducked_music is None:  # one reference for every window: the music away from speech
        undisturbed = loudness_over(music_stem, _outside(speech, duration, margin=RECOVERY_AFTER_S))
    for window in windows:
        reference = loudness_over(unducked_music, [window]) if unducked_music is not None else undisturbed
        shortfalls.append(reference - loudness_over(music_stem, [window]))
    recovery = round(max(shortfalls), 2) if shortfalls else None
    return {
        "speech_lufs": speech_lufs,
        "music_lufs": music_lufs,
        "speech_music_lu": round(speech_lufs - music_lufs, 2),
        "recovery_lu": recovery,
        "music_recovered": None if recovery is None else recovery <= RECOVERY_TOLERANCE_LU,
        "speech_s": round(sum(max(0.0, min(e, duration) - s) for s, e in speech), 3),
    }


def _outside(speech: list[tuple[float, float]], duration: float, *, margin: float) -> list[tuple[float, float]]:
    """The time (seconds) more than ``margin`` away from any speech: where the music is undisturbed."""
    spans, at = [], 0.0
    for start, end in speech:
        if start - margin > at:
            spans.append((at, start - margin))
        at = max(at, end + margin)
    if duration > at:
        spans.append((at, duration))
    return spans
