"""Media readers for the figures and players: frames, audio samples and loudness over time, with the
static ffmpeg (any container, any codec it decodes).

Takes a media path; gives numpy arrays (RGB frames, float32 mono samples at a rate in Hz) or loudness
series in LUFS (one reading per 100 ms), or an ``.m4a`` copy of the sound. Times in seconds. Raises
MediaToolError when ffmpeg cannot decode the file or it has no audio. numpy is imported on use.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["audio_of", "loudness_series", "parse_meter_log", "read_audio", "thumbnails"]

METER_STEP_S = 0.1  # ffmpeg ebur128 writes one momentary and one short-term reading per 100 ms
MOMENTARY_S = 0.4  # EBU R128 momentary window
SHORT_TERM_S = 3.0  # EBU R128 short-term window


def thumbnails(video: str | Path, times: Sequence[float], *, height: int = 72,
               timeout: float = 120.0) -> list:
    """RGB frames (uint8 arrays, ``height`` px tall, aspect kept) of ``video`` at ``times`` (s).
    Raises MediaToolError when ffmpeg cannot decode the video."""
    import numpy as np

    from musicvid_core.media import run_ffmpeg
    from musicvid_core.stages.analyse.probe import probe

    info = probe(video, timeout=timeout)
    width = max(2, round(info.width * height / max(1, info.height) / 2) * 2)
    frames = []
    for t in times:
        t = min(max(0.0, t), max(0.0, info.duration - 1.0 / max(info.fps, 1.0)))
        proc = run_ffmpeg(["-ss", f"{t:.3f}", "-i", str(video), "-frames:v", "1", "-an",
                           "-vf", f"scale={width}:{height}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          timeout=timeout, what="thumbnail", stdout=subprocess.PIPE)
        data = np.frombuffer(proc.stdout, dtype=np.uint8)
        if data.size < width * height * 3:  # a seek past the last frame decodes nothing: leave a gap
            frames.append(np.zeros((height, width, 3), dtype=np.uint8))
        else:
            frames.append(data[: width * height * 3].reshape(height, width, 3))
    return frames


def read_audio(path: str | Path, *, rate: int = 8000, timeout: float = 300.0):
    """The first audio stream of ``path`` as float32 mono samples at ``rate`` Hz (for waveform
    views: a low rate is plenty). Returns (samples, rate). MediaToolError when it has no audio."""
    import numpy as np

    from musicvid_core.media import run_ffmpeg

    proc = run_ffmpeg(["-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"],
                      timeout=timeout, what="audio decode", stdout=subprocess.PIPE)
    return np.frombuffer(proc.stdout, dtype=np.float32), rate


def loudness_series(path: str | Path, *, timeout: float = 300.0) -> dict:
    """Loudness over time of the first audio stream of ``path``, from ffmpeg's ebur128 meter
    (BS.1770 / EBU R128): ``{"time": [...], "momentary": [...], "short_term": [...]}``, one reading
    per 100 ms, each at the end of its window (momentary 0.4 s, short-term 3 s), LUFS floored at -70
    (silence); None where the window is not yet full (the first 0.4 s / 3 s). Raises
    MediaToolError when the file has no audio."""
    import tempfile

    from musicvid_core.media import run_ffmpeg

    with tempfile.TemporaryDirectory(prefix="mv-meter-") as tmp:
        # ametadata's file= is parsed by the filtergraph, so it gets a plain name and ffmpeg runs in
        # the scratch folder (as analysis.features does) instead of escaping an arbitrary path.
        run_ffmpeg(["-i", str(Path(path).resolve()), "-map", "0:a:0",
                    "-af", "ebur128=metadata=1,ametadata=mode=print:file=meter.txt", "-f", "null", "-"],
                   timeout=timeout, what="loudness meter", cwd=tmp)
        log = Path(tmp) / "meter.txt"
        return parse_meter_log(log.read_text(encoding="utf-8", errors="replace") if log.exists() else "")


def parse_meter_log(text: str) -> dict:
    times: list[float] = []
    momentary: list[float] = []
    short: list[float] = []
    at: float | None = None
    for line in text.splitlines():
        if line.startswith("frame:"):
            at = float(line.rsplit("pts_time:", 1)[1]) + METER_STEP_S
        elif at is not None and line.startswith("lavfi.r128.M="):
            times.append(round(at, 3))
            momentary.append(_floor(float(line.split("=", 1)[1])))
        elif at is not None and line.startswith("lavfi.r128.S="):
            short.append(_floor(float(line.split("=", 1)[1])))
    n = min(len(times), len(momentary), len(short))
    # Before a window is full the meter has no honest reading (ebur128 prints -inf / -120.7): None.
    return {"time": times[:n],
            "momentary": [v if t >= MOMENTARY_S - 1e-6 else None for t, v in zip(times, momentary[:n])],
            "short_term": [v if t >= SHORT_TERM_S - 1e-6 else None for t, v in zip(times, short[:n])]}


def _floor(lufs: float) -> float:
    return -70.0 if not math.isfinite(lufs) or lufs < -70.0 else round(lufs, 2)


def audio_of(video: str | Path, dest: str | Path, *, timeout: float = 300.0) -> Path:
    """Copy the first audio stream of ``video`` (AAC, no re-encode) into ``dest`` (.m4a): small
    files for audio players."""
    from musicvid_core.media import run_ffmpeg

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(["-y", "-i", str(video), "-map", "0:a:0", "-c", "copy", "-vn", str(dest)], timeout=timeout,
               what="audio extract")
    return dest
