"""Running ffmpeg: the static binary imageio-ffmpeg ships, always with an argument list (never a
shell), always with a timeout, failures mapped to MediaToolError with stderr's tail."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence

from .domain.errors import ConfigurationError, MediaToolError

DEFAULT_TIMEOUT_S = 1800.0


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: $MUSICVID_FFMPEG, else imageio-ffmpeg's, else one on PATH."""
    env = os.environ.get("MUSICVID_FFMPEG")
    if env:
        return env
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found:
            return found
    raise ConfigurationError("ffmpeg not found: install the [local] extra (imageio-ffmpeg)")


def run_ffmpeg(args: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S, what: str = "ffmpeg",
               check: bool = True, stdout=subprocess.DEVNULL, input: bytes | None = None
               ) -> subprocess.CompletedProcess:
    """Run ``ffmpeg -hide_banner -nostdin ARGS``; returns the CompletedProcess (stderr as text).

    Raises MediaToolError when it exits non-zero (with ``check``) or runs past ``timeout`` seconds.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", *([] if input is not None else ["-nostdin"]), *map(str, args)]
    try:
        proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, input=input,
                              timeout=timeout, check=False)
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
