"""Video features in ONE decode pass: scene cuts, motion, brightness, loudness, speech.

One ffmpeg process decodes the input once and writes
  1. the first video stream, downscaled to ``ANALYSIS_LONG_SIDE`` px, as raw BGR frames on stdout
     (every frame, no rate conversion), read here frame by frame and never accumulated;
  2. each frame's exact presentation timestamp into a side file (``-stats_enc_pre``), so cut times
     are right for variable-frame-rate input too;
  3. when there is audio, the first audio stream through the BS.1770 meter and into a 16 kHz mono
     WAV for voice activity detection (see audio.py).
The benchmark goal is end to end within 2x one plain decode, so nothing decodes the input twice.
Per frame we keep a few floats (cut score, motion, brightness), not pixels: memory stays flat.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from array import array
from pathlib import Path

import cv2
import numpy as np

from musicvid_core.domain.errors import MediaToolError, UnsupportedMedia
from musicvid_core.domain.features import Curve, Cut, MediaInfo, VideoFeatures
from musicvid_core.media import (
    DEFAULT_TIMEOUT_S,
    check_refused,
    deadline,
    ffmpeg_command,
    last_error_line,
    proxy_output_args,
    scratch_prefix,
)
from musicvid_core.stages.analyse import audio
from musicvid_core.stages.analyse.cuts import MIN_CONTENT_VAL, CutDetector
from musicvid_core.stages.analyse.probe import VIDEO_STREAM, probe

ANALYSIS_LONG_SIDE = 160  # px: plenty for cut and motion statistics, and cheap to scale to
CURVE_HZ = 5.0  # motion and brightness curves: averages over 0.2 s bins
# Motion is the mean absolute luma difference (0..255) between consecutive frames, rescaled to a
# 30 fps frame interval so 24/30/60 fps footage of the same movement scores alike, then mapped
# through 1 - exp(-d / MOTION_SCALE) (a pan across a third of the frame per second reads ~0.5).
MOTION_SCALE = 6.0
MOTION_REF_FPS = 30.0
# Cut strength = content score / (4 x the minimum): a barely-detected cut 0.25, a change between
# unrelated shots (scores 60..130 typical) 1.
STRENGTH_FULL = 4 * MIN_CONTENT_VAL
# The decoder skips its deblocking filter: at ANALYSIS_LONG_SIDE px a frame's area average does not
# see it, and it is ~10 % of an H.264 decode's CPU (0.9 of 8.7 CPU-s on the bench's 60 s 720p input,
# docs/speed.md). The proxy decodes the same way on its own (media.PROXY_DECODE_ARGS).
DECODE_ARGS = ["-skip_loop_filter", "all"]

_STATS_FILE = "frames.txt"
_LOUDNESS_FILE = "loudness.txt"
_WAV_FILE = "speech.wav"
_STDERR_FILE = "ffmpeg.log"
_PROXY_FILE = "proxy.mp4"


def analyze(path: str | Path, media: MediaInfo | None = None, *, analysis_fps: float | None = None,
            timeout: float = DEFAULT_TIMEOUT_S) -> VideoFeatures:
    """Probe ``path`` (unless ``media`` is given) and measure its features: the one-call entry
    point for notebooks. Raises what :func:`probe` and :func:`analyze_video` raise."""
    if media is None:
        media = probe(path, timeout=timeout)
    return analyze_video(path, media, analysis_fps=analysis_fps, timeout=timeout)


def analysis_size(width: int, height: int) -> tuple[int, int]:
    """Frame size (px) the analysis decodes to: longer side ``ANALYSIS_LONG_SIDE``, aspect kept,
    even. Storage size, not display size: rotation does not change these statistics."""
    scale = ANALYSIS_LONG_SIDE / max(width, height)
    return (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))


def analyze_video(path: str | Path, media: MediaInfo, *, analysis_fps: float | None = None,
                  timeout: float = DEFAULT_TIMEOUT_S, proxy: str | Path | None = None) -> VideoFeatures:
    """Measure cuts, motion, brightness and (with audio) loudness and speech of the video at
    ``path``, described by ``media`` (from :func:`probe`), in one ffmpeg decode.

    Times are seconds from the first video frame; curves cover [0, media.duration]. With
    ``analysis_fps`` the frames are resampled to that rate first (cuts then land within one
    analysis frame). With ``proxy``, the same decode also writes the preview proxy there (see
    media.proxy_output_args; it appears only when the analysis succeeds). Raises UnsupportedMedia when
    no frame decodes, MediaToolError when ffmpeg fails or runs past ``timeout`` seconds.
    """
    path = Path(path).resolve()  # ffmpeg runs in a scratch folder (see _command)
    width, height = analysis_size(media.width, media.height)
    fps = float(analysis_fps if analysis_fps and analysis_fps < media.fps else media.fps)
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("analysis-")) as tmp:
        scratch = Path(tmp)
        frames = _FrameMeter(fps, (height, width))
        cmd = _command(path, media, width, height, analysis_fps)
        if proxy is not None:
            cmd += proxy_output_args(_PROXY_FILE)
        _decode(cmd, scratch, width * height * 3, frames.add, timeout)
        if frames.count == 0:
            raise UnsupportedMedia(f"{path.name}: no video frame could be decoded", path=str(path))
        times = _frame_times(scratch / _STATS_FILE, frames.count, fps)
        origin = float(times[0])
        times = times - origin
        duration = media.duration
        features = VideoFeatures(media=media, cuts=frames.cuts(times), **frames.curves(times, duration))
        if media.has_audio:
            loudness, integrated = audio.read_loudness(scratch / _LOUDNESS_FILE, origin, duration)
            features.loudness = loudness
            features.audio_integrated_lufs = integrated
            features.speech = audio.speech_regions(scratch / _WAV_FILE, origin, duration)
            features.music = audio.music_regions(scratch / _WAV_FILE, origin, duration, features.speech)
            # A music region only covers speech where it was taken to the clip's edge over a blip
            # the VAD heard in a song's first (or last) notes: that blip is the song, not a voice.
            features.speech = [r for r in features.speech
                               if not any(m.start <= r.start and r.end <= m.end for m in features.music)]
        if proxy is not None:
            shutil.move(scratch / _PROXY_FILE, proxy)
    return features


def _command(path: Path, media: MediaInfo, width: int, height: int,
             analysis_fps: float | None) -> list[str]:
    """The one decode. Output paths are relative (ffmpeg runs in the scratch folder), which keeps
    them out of filtergraph escaping rules."""
    vf = f"scale={width}:{height}:flags=area"
    if analysis_fps and analysis_fps < media.fps:
        vf = f"fps={analysis_fps},{vf}"
    args = ["-nostats", "-v", "error",
            # Rotation does not change these statistics, and turning full-size frames costs time.
            "-noautorotate", *DECODE_ARGS, "-i", str(path),
            "-map", VIDEO_STREAM, "-vf", vf, "-fps_mode", "passthrough",
            # Keep the demuxer's time base so the logged pts are the frames' exact timestamps.
            "-enc_time_base:v", "demux", "-stats_enc_pre", _STATS_FILE, "-stats_enc_pre_fmt", "{pts} {tb}",
            "-pix_fmt", "bgr24", "-f", "rawvideo", "pipe:1"]
    if media.has_audio:
        args += audio.audio_output_args(_LOUDNESS_FILE, _WAV_FILE, media.main_track)
    return ffmpeg_command(args)  # the input opened under the media allow-lists, as every ffmpeg run


def _decode(cmd: list[str], scratch: Path, frame_bytes: int, on_frame, timeout: float) -> None:
    """Run ``cmd`` in ``scratch`` and hand each raw frame (bytes) to ``on_frame`` as it arrives.

    Not run_ffmpeg: frames must be consumed while ffmpeg runs. The same contract holds: argument
    list, a timeout (a timer kills the process), failures as MediaToolError with stderr's tail.
    """
    with open(scratch / _STDERR_FILE, "w+b") as err:
        proc = subprocess.Popen(cmd, cwd=scratch, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, bufsize=frame_bytes * 4)
        try:
            with deadline(proc, timeout) as expired:
                while True:
                    frame = proc.stdout.read(frame_bytes)
                    if len(frame) < frame_bytes:
                        break
                    on_frame(frame)
                proc.stdout.close()
                returncode = proc.wait()
        finally:
            if proc.poll() is None:  # our own code raised mid-stream
                proc.kill()
                proc.wait()
        if expired.is_set():
            raise MediaToolError(f"analysis decode timed out after {timeout:.0f} s")
        if returncode != 0:
            err.seek(max(0, err.seek(0, 2) - 4000))
            tail = err.read().decode("utf-8", "replace")
            check_refused(tail, cmd, cwd=scratch)
            raise MediaToolError(f"analysis decode failed: {last_error_line(tail)}",
                                 returncode=returncode, stderr_tail=tail[-2000:])


def _frame_times(stats: Path, count: int, fps: float) -> np.ndarray:
    """Presentation times (s, output timeline) of the first ``count`` frames from the pts log."""
    times = np.empty(count)
    n = 0
    with open(stats, encoding="ascii", errors="replace") as fh:
        for line in fh:
            if n == count:
                break
            pts, tb = line.split()
            num, den = tb.split("/")
            times[n] = int(pts) * int(num) / int(den)
            n += 1
    if n < count:  # cannot happen with a healthy ffmpeg; keep the frames usable at nominal rate
        times[n:] = (times[n - 1] if n else 0.0) + np.arange(1, count - n + 1) / fps
    return times


class _FrameMeter:
    """Per-frame statistics of the small BGR frames, fed one frame at a time: cuts (cuts.py),
    brightness and the luma difference behind motion."""

    def __init__(self, fps: float, shape: tuple[int, int]) -> None:
        self.fps = fps
        self.count = 0
        self._cuts = CutDetector(fps)
        self._cut_frames: list[int] = []
        self._brightness = array("d")
        self._difference = array("d")  # mean |luma(i) - luma(i-1)|, 0..255; frame 0 has none
        self._previous = None
        self._shape = shape  # (height, width)

    def add(self, raw: bytes) -> None:
        frame = np.frombuffer(raw, np.uint8).reshape(*self._shape, 3)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        self._brightness.append(cv2.mean(gray)[0] / 255.0)
        self._difference.append(cv2.mean(cv2.absdiff(gray, self._previous))[0]
                                if self._previous is not None else math.nan)
        self._previous = gray
        self._cuts.add(frame)
        self.count += 1

    def cuts(self, times: np.ndarray) -> list[Cut]:
        self._cut_frames = self._cuts.frames()
        out = []
        for index in self._cut_frames:
            if 0 < index < self.count:
                strength = min(1.0, max(0.0, self._cuts.scores[index] / STRENGTH_FULL))
                out.append(Cut(time=round(float(times[index]), 6), strength=round(strength, 3)))
        return out

    def curves(self, times: np.ndarray, duration: float) -> dict[str, Curve]:
        n = self.count
        diff = np.frombuffer(self._difference, dtype=np.float64)[:n].copy()
        diff[[i for i in self._cut_frames if 0 < i < n]] = math.nan  # a cut is not motion
        interval = np.diff(times, prepend=times[0])
        interval = np.clip(interval, 1.0 / 240, None)
        motion = 1.0 - np.exp(-(diff / (interval * MOTION_REF_FPS)) / MOTION_SCALE)
        brightness = np.frombuffer(self._brightness, dtype=np.float64)[:n]
        return {"motion": _binned(times, motion, duration), "brightness": _binned(times, brightness, duration)}


def _binned(times: np.ndarray, values: np.ndarray, duration: float) -> Curve:
    """Average ``values`` (NaN = no value) over 1/CURVE_HZ bins covering [0, duration]; a bin with no
    value holds its neighbour's. Times are bin centres."""
    step = 1.0 / CURVE_HZ
    nbins = max(1, math.ceil(duration / step - 1e-9))
    index = np.clip((times / step).astype(np.int64), 0, nbins - 1)
    ok = np.isfinite(values)
    sums = np.bincount(index[ok], weights=values[ok], minlength=nbins)
    counts = np.bincount(index[ok], minlength=nbins)
    filled = np.full(nbins, np.nan)
    filled[counts > 0] = sums[counts > 0] / counts[counts > 0]
    if not np.isfinite(filled).any():
        filled[:] = 0.0
    # hold the last value forward, then the first backward
    last = np.where(np.isfinite(filled), np.arange(nbins), 0)
    np.maximum.accumulate(last, out=last)
    filled = filled[last]
    first_valid = int(np.argmax(np.isfinite(filled)))
    filled[:first_valid] = filled[first_valid]
    centres = [(k * step + min((k + 1) * step, duration)) / 2 for k in range(nbins)]
    return Curve(times=[round(t, 4) for t in centres], values=[round(float(v), 4) for v in filled])
