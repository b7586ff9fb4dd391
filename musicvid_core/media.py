"""Running ffmpeg: the static binary imageio-ffmpeg ships, always with an argument list (never a
shell), always with a timeout, failures mapped to MediaToolError with stderr's tail."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence

from musicvid_core.domain.errors import ConfigurationError, MediaToolError

DEFAULT_TIMEOUT_S = 1800.0
SCRATCH_PREFIX = "musicvid-"


def scratch_prefix(kind: str = "") -> str:
    """Prefix for this process's scratch folders in the temp dir: ``musicvid-{pid}-{kind}``. The pid
    lets the next musicvid process remove a killed one's leftovers (workflow/recovery.py)."""
    return f"{SCRATCH_PREFIX}{os.getpid()}-{kind}"


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: Settings.ffmpeg ($MUSICVID_FFMPEG), else imageio-ffmpeg's, else one
    on PATH."""
    from musicvid_core.settings import Settings

    configured = Settings().ffmpeg
    if configured:
        return str(configured)
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found:
            return found
    raise ConfigurationError("ffmpeg not found: install the [local] extra (imageio-ffmpeg)")


def run_ffmpeg(args: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S, what: str = "ffmpeg",
               check: bool = True, stdout=subprocess.DEVNULL, input: bytes | None = None,
               cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run ``ffmpeg -hide_banner -nostdin ARGS`` (in ``cwd`` when given); returns the
    CompletedProcess (stderr as text).

    Raises MediaToolError when it exits non-zero (with ``check``) or runs past ``timeout`` seconds.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", *([] if input is not None else ["-nostdin"]), *map(str, args)]
    try:
        proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, input=input,
                              timeout=timeout, check=False, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise MediaToolError(f"{what} timed out after {timeout:.0f} s") from None
    err = proc.stderr.decode("utf-8", "replace") if isinstance(proc.stderr, bytes) else proc.stderr
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, err)
    if check and proc.returncode != 0:
        raise MediaToolError(f"{what} failed: {last_error_line(err)}", returncode=proc.returncode,
                             stderr_tail=err[-2000:])
    return proc


def last_error_line(stderr: str) -> str:
    """The most telling line of ffmpeg's stderr (the last non-progress line)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("frame=")
             and not ln.startswith("size=")]
    return lines[-1][:300] if lines else "no error output"


# --- the preview proxy ---------------------------------------------------------------------------
# A small H.264 copy of the picture for previews: at most PROXY_HEIGHT lines (even, aspect kept),
# x264's fastest preset, every frame kept with its own timestamp, no audio. Built once per job (in
# the analysis decode when possible, see analysis.features.analyze_video) and then stream-copied
# into every preview, so iterating on the music never re-encodes the picture.
PROXY_HEIGHT = 360
PROXY_FILTER = f"scale=-2:'2*trunc(min({PROXY_HEIGHT},ih)/2)':flags=fast_bilinear"
# H.264 decoding shortcuts when the proxy has a decode of its own: no deblocking.
PROXY_DECODE_ARGS = ["-skip_loop_filter", "all", "-flags2", "+fast"]


def proxy_output_args(dest: str) -> list[str]:
    """ffmpeg output options writing the proxy of input 0's first video stream to ``dest`` (MP4).
    Rotation (the display matrix) is carried over even when the input is read with -noautorotate."""
    return ["-map", "0:v:0", "-vf", PROXY_FILTER, "-fps_mode", "passthrough", "-c:v", "libx264",
            "-preset", "ultrafast", "-crf", "30", "-pix_fmt", "yuv420p", "-an", "-sn", "-dn",
            "-f", "mp4", dest]


def make_proxy(video: str | os.PathLike, dest: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Write the preview proxy of ``video`` to ``dest`` (atomically: a half-written proxy never
    appears). Raises MediaToolError when ffmpeg fails or runs past ``timeout`` seconds."""
    tmp = f"{os.fspath(dest)}.part"
    try:
        run_ffmpeg(["-y", "-noautorotate", *PROXY_DECODE_ARGS, "-i", os.fspath(video), *proxy_output_args(tmp)],
                   timeout=timeout, what="preview proxy")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_float_wav(path: str | os.PathLike, audio, sample_rate: int) -> None:
    """Write ``audio`` (float samples, shaped (n,) or (n, channels)) as a 32-bit float WAV.

    Written by hand because libsndfile stamps float WAVs with a PEAK chunk holding the time of
    writing: the same samples would give different bytes. Here the same samples give the same file
    (the same seed, the same bytes, end to end). Canonical WAVE_FORMAT_IEEE_FLOAT: an 18-byte fmt
    chunk and a fact chunk, read by ffmpeg, libsndfile and every editor."""
    import struct

    import numpy as np

    data = np.ascontiguousarray(audio, dtype="<f4")
    channels = 1 if data.ndim == 1 else data.shape[1]
    frames = data.shape[0]
    payload = data.tobytes()
    header = (struct.pack("<4sI4s", b"RIFF", 4 + 26 + 12 + 8 + len(payload), b"WAVE")
              + struct.pack("<4sIHHIIHHH", b"fmt ", 18, 3, channels, sample_rate, sample_rate * channels * 4,
                            channels * 4, 32, 0)
              + struct.pack("<4sII", b"fact", 4, frames)
              + struct.pack("<4sI", b"data", len(payload)))
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(payload)


def resample(audio, rate_in: int, rate_out: int):
    """(frames, channels) float32 audio from ``rate_in`` to ``rate_out`` Hz (scipy's polyphase
    filter); the same array when the rates are equal."""
    if rate_in == rate_out:
        return audio
    import math

    import numpy as np
    from scipy.signal import resample_poly

    g = math.gcd(int(rate_in), int(rate_out))
    return resample_poly(audio, rate_out // g, rate_in // g, axis=0).astype(np.float32)
