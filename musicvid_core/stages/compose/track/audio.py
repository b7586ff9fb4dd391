"""Reading a music file: any format ffmpeg decodes (mp3, wav, flac, m4a/aac, ogg/opus, ...), any
sample rate, mono or stereo, to float32 at the rate asked for. A file that is not audio, is
silent or is shorter than MIN_SECONDS is a one-line BadInput."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np

from musicvid_core.domain.errors import BadInput, MediaToolError
from musicvid_core.media import run_ffmpeg

MIN_SECONDS = 8.0  # shorter than this is no track to edit (a bar or two)
SILENCE_DBFS = -60.0  # a track whose RMS stays below this is silent
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".m4a", ".aac", ".ogg", ".opus", ".oga", ".aif", ".aiff", ".wma",
                    ".webm", ".mka")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's bytes (the analysis cache key). Raises BadInput when unreadable."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise BadInput(f"cannot read music file {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def decode(path: str | os.PathLike, sample_rate: int, *, channels: int = 2, timeout: float = 600.0) -> np.ndarray:
    """The first audio stream of ``path`` as float32 (samples, channels) at ``sample_rate`` Hz
    (ffmpeg resamples and up- or down-mixes). Raises BadInput when the file is missing or holds no
    decodable audio; MediaToolError when ffmpeg times out."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"music file not found: {p}")
    args = ["-v", "error", "-i", str(p), "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", str(channels),
            "-ar", str(int(sample_rate)), "-f", "f32le", "-"]
    try:
        proc = run_ffmpeg(args, timeout=timeout, what="decoding music", stdout=subprocess.PIPE)
    except MediaToolError as exc:
        if "timed out" in exc.message:
            raise
        raise BadInput(f"not an audio file ffmpeg can decode: {p.name}") from None
    data = np.frombuffer(proc.stdout, dtype="<f4")
    usable = data.size - data.size % channels
    return data[:usable].reshape(-1, channels)


def load_track(path: str | os.PathLike, sample_rate: int, *, channels: int = 2) -> np.ndarray:
    """:func:`decode`, then checked: BadInput when it is shorter than MIN_SECONDS or silent
    (RMS below SILENCE_DBFS) or holds NaN or infinite samples."""
    audio = decode(path, sample_rate, channels=channels)
    check_audio(audio, sample_rate, name=Path(path).name)
    return audio


def check_audio(audio: np.ndarray, sample_rate: int, *, name: str = "music") -> None:
    """BadInput unless ``audio`` (samples[, channels]) at ``sample_rate`` Hz is finite, at least
    MIN_SECONDS long and not silent."""
    seconds = audio.shape[0] / float(sample_rate) if sample_rate > 0 else 0.0
    if seconds < MIN_SECONDS:
        raise BadInput(f"{name} is too short to edit: {seconds:.1f} s of audio, at least {MIN_SECONDS:.0f} s needed")
    if not np.isfinite(audio).all():
        raise BadInput(f"{name} holds NaN or infinite samples")
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if rms <= 0 or 20 * np.log10(rms) < SILENCE_DBFS:
        raise BadInput(f"{name} is silent (RMS below {SILENCE_DBFS:.0f} dBFS)")
