"""Speech against music: how far the music sits under the dialogue, and whether it comes back.

Measured on the mixer's bus stems (float WAVs of the original sound and of the music as they enter
the final sum, see ``compose(stems_dir=...)``), so each source is metered on its own: no source
separation is needed. Loudness is BS.1770 (ffmpeg's ebur128) over the samples of the given time
spans put end to end, gating included, as a dialogue level is measured. The meter streams, so hours
of stems cost no memory.

Never NaN or infinite: silence (or spans too short to meter, < 0.4 s) reads -70 LUFS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from musicvid_core.domain.features import Region
from musicvid_core.media import run_ffmpeg
from musicvid_core.metrics.loudness import SILENCE_LUFS, parse_ebur128_summary

RECOVERY_AFTER_S = 1.0  # the music should be back this long after speech ends...
RECOVERY_WINDOW_S = 1.0  # ...measured over this long a window
RECOVERY_TOLERANCE_LU = 3.0  # ...within this of its unducked level
_MIN_METERED_S = 0.4  # one BS.1770 gating block
_FRAME_S = 0.01  # the spans are cut on frames of 480 samples (10 ms at the stems' 48 kHz)


def loudness_over(path: str | Path, spans: Sequence[tuple[float, float]], *, timeout: float = 600.0) -> float:
    """Integrated loudness (LUFS, -70 floor) of the audio file ``path`` over the time ``spans``
    (seconds, clipped to the file) put end to end.

    Metered by ffmpeg's ebur128 (BS.1770-4, gating included) on the selected samples, streamed: an
    hour of stems costs no more memory than a second. The spans are cut on 10 ms frames."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:  # the header only
        length = f.frames / f.samplerate
    spans = [(max(0.0, a), min(length, b)) for a, b in spans if min(length, b) > max(0.0, a)]
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
