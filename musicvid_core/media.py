"""Running ffmpeg: the static binary imageio-ffmpeg ships, always with an argument list (never a
shell), always with a timeout, every input opened as media only (protocol and container
allow-lists), failures mapped to MediaToolError with stderr's tail (UnsupportedMedia for a refused
input)."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from musicvid_core.domain.errors import ConfigurationError, MediaToolError, UnsupportedMedia

DEFAULT_TIMEOUT_S = 1800.0
# The per-call limit (Settings.ffmpeg_timeout_s) covers an input up to this long; a longer input's
# calls get proportionally more (2 s per second of media at the default): a 2-hour input's mix pass
# took well over 30 minutes on a busy 2-core machine (docs/mixing.md, "Long and large inputs"), and a
# hung call still ends.
TIMEOUT_REFERENCE_S = 900.0
SCRATCH_PREFIX = "musicvid-"


def timeout_for(base_s: float, duration_s: float | None) -> float:
    """The time limit (seconds) for one ffmpeg call over ``duration_s`` seconds of media:
    ``base_s`` (Settings.ffmpeg_timeout_s) for inputs up to TIMEOUT_REFERENCE_S, scaled in proportion
    beyond (a 2-hour input: 8x). Unknown or non-finite durations keep ``base_s``."""
    if duration_s is None or not math.isfinite(duration_s) or duration_s <= TIMEOUT_REFERENCE_S:
        return float(base_s)
    return float(base_s) * float(duration_s) / TIMEOUT_REFERENCE_S


def scratch_prefix(kind: str = "") -> str:
    """Prefix for this process's scratch folders in the temp dir: ``musicvid-{pid}-{kind}``. The pid
    lets the next musicvid process remove a killed one's leftovers (workflow/recovery.py)."""
    return f"{SCRATCH_PREFIX}{os.getpid()}-{kind}"


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (:func:`find_ffmpeg` of the environment's settings), found once per process."""
    return find_ffmpeg()


def find_ffmpeg(settings=None) -> str:
    """Path of the ffmpeg binary: ``settings.ffmpeg`` (default: Settings(), $MUSICVID_FFMPEG), else
    imageio-ffmpeg's, else one on PATH; a configured path is returned unchecked. Raises
    ConfigurationError when there is none."""
    if settings is None:
        from musicvid_core.settings import Settings

        settings = Settings()
    configured = settings.ffmpeg
    if configured:
        return str(configured)
    explicit = os.environ.get("IMAGEIO_FFMPEG_EXE")  # imageio-ffmpeg's own setting, returned unchecked
    record = Path(settings.home) / "cache" / "ffmpeg.json"
    found = None if explicit else _remembered_ffmpeg(record)
    if found is not None:
        return found
    try:
        import imageio_ffmpeg

        found = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if not found:
            raise ConfigurationError("ffmpeg not found: install the [local] extra (imageio-ffmpeg)") from None
    if not explicit:
        _remember_ffmpeg(record, found)
    return found


# imageio-ffmpeg checks its binary by running `ffmpeg -version` in every process that asks: with its
# import, ~35 ms of each `musicvid run` before the first stage (issue 18). The path it found is kept
# in HOME/cache/ffmpeg.json per Python environment, with the binary's size and mtime; while the file
# there is the same one, it is used unchecked, as any other run's check already passed it.
def _remembered_ffmpeg(record: Path) -> str | None:
    try:
        entry = json.loads(record.read_text())[sys.prefix]
        if not isinstance(entry["path"], str):
            return None
        st = os.stat(entry["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if [st.st_size, st.st_mtime_ns] != [entry.get("size"), entry.get("mtime_ns")] or not os.access(entry["path"], os.X_OK):
        return None
    return str(entry["path"])


def _remember_ffmpeg(record: Path, path: str) -> None:
    try:
        st = os.stat(path)
        try:
            known = json.loads(record.read_text())
            known = known if isinstance(known, dict) else {}
        except (OSError, ValueError):
            known = {}
        known[sys.prefix] = {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        record.parent.mkdir(parents=True, exist_ok=True)
        part = record.with_name(f"{record.name}.{os.getpid()}.part")
        part.write_text(json.dumps(known))
        os.replace(part, record)  # a reader sees the old record or the new one, never half of one
    except OSError:
        pass  # a read-only home: the next run checks again


def run_ffmpeg(args: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S, what: str = "ffmpeg",
               check: bool = True, stdout=subprocess.DEVNULL, input: bytes | None = None,
               cwd: str | os.PathLike | None = None, feed: Iterable[bytes] | None = None) -> subprocess.CompletedProcess:
    """Run ``ffmpeg -hide_banner -nostdin ARGS`` (in ``cwd`` when given), every input guarded (see
    :func:`ffmpeg_command`); returns the CompletedProcess (stderr as text).

    ``input`` (bytes) or ``feed`` (an iterable of bytes, written as it yields: a stream that need
    not fit in memory, e.g. the master streamed into the encoder) goes to ffmpeg's stdin
    (``pipe:0``). Raises UnsupportedMedia when ffmpeg refused an input (not an accepted container,
    or a location outside the file given), whatever ``check`` says; MediaToolError when it exits
    non-zero (with ``check``) or runs past ``timeout`` seconds.
    """
    cmd = ffmpeg_command(args, stdin=input is not None or feed is not None)
    if feed is not None:
        proc = _run_fed(cmd, feed, stdout=stdout, timeout=timeout, what=what, cwd=cwd)
    else:
        try:
            proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, input=input,
                                  timeout=timeout, check=False, cwd=cwd)
        except subprocess.TimeoutExpired:
            raise MediaToolError(f"{what} timed out after {timeout:.0f} s") from None
    err = proc.stderr.decode("utf-8", "replace") if isinstance(proc.stderr, bytes) else proc.stderr
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, err)
    if proc.returncode != 0:
        check_refused(err, args, cwd=cwd)
    if check and proc.returncode != 0:
        raise MediaToolError(f"{what} failed: {last_error_line(err)}", returncode=proc.returncode,
                             stderr_tail=err[-2000:])
    return proc


@contextlib.contextmanager
def deadline(proc: subprocess.Popen, timeout: float):
    """Kill ``proc`` if it still runs ``timeout`` seconds from now (a stalled pipe would otherwise
    block its reader or writer forever); yields an Event that is set when it had to."""
    import threading

    expired = threading.Event()

    def expire() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()


def _run_fed(cmd: list[str], feed: Iterable[bytes], *, stdout, timeout: float, what: str,
             cwd) -> subprocess.CompletedProcess:
    """Run ``cmd`` writing ``feed`` to its stdin: stderr drained by a thread (a full pipe would stall
    ffmpeg, and so the writes), a timer that kills the process at ``timeout`` (a stalled reader
    would otherwise block a write forever). ffmpeg exiting early ends the feed (its error is what
    run_ffmpeg reports); an error in the feed kills ffmpeg and propagates."""
    import threading

    if stdout is subprocess.PIPE:
        raise ValueError("a fed ffmpeg run cannot also capture stdout (nothing would drain it)")
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE, cwd=cwd)
    errors: list[bytes] = []
    drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    drain.start()
    try:
        with deadline(proc, timeout) as expired:
            try:
                for data in feed:
                    proc.stdin.write(data)
            except BrokenPipeError:
                pass  # ffmpeg stopped reading: it failed or was killed; its exit says which
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        drain.join()
        close = getattr(feed, "close", None)
        if close is not None:
            close()  # a generator's files are closed now, not when it is collected
    if expired.is_set():
        raise MediaToolError(f"{what} timed out after {timeout:.0f} s")
    return subprocess.CompletedProcess(cmd, proc.returncode, None, b"".join(errors))


# --- inputs are opened as media, never as playlists ------------------------------------------------
# ffmpeg opens whatever an input names: a DASH or HLS manifest, a concat list, an SDP file or an
# image-sequence pattern makes it read other files (file://, another user's upload) or the network.
# Every input of every run is therefore opened with two of libavformat's own allow-lists, which it
# enforces when the input is opened, before a demuxer reads anything past the probe's first bytes:
# -protocol_whitelist (only the one local file named: no http, data, concat:, subfile:) and
# -format_whitelist (only the containers below; also checked when -f names one explicitly, so no
# later read of the same file can take it for a playlist).
ALLOWED_DEMUXERS = (
    "mov",       # MP4 / MOV / M4A / 3GP (mov,mp4,m4a,3gp,3g2,mj2); external data references stay off
    "matroska",  # Matroska and WebM (matroska,webm)
    "mpegts",    # .ts / .mts camera and broadcast files
    "mpeg",      # MPEG-PS (.mpg, .vob)
    "avi", "flv", "asf",  # AVI, Flash video, WMV/ASF: old camera and screen-recorder files
    "h264", "hevc",  # raw elementary streams (drones, dashcams): one file, no references
    "yuv4mpegpipe",  # Y4M, raw frames from video tools (and the hostile corpus' giant-frame headers)
    "ogg",       # Ogg Theora video, Ogg Vorbis / Opus music tracks
    "wav", "w64", "mp3", "flac", "aac",  # the music and stem files the pipeline writes and reads
    "png_pipe", "jpeg_pipe",  # one picture, one file (cover art); the probe refuses it as a video
    "srt",       # SubRip text subtitles (one file, no references): the sample media's subtitle tracks
)
FORMAT_WHITELIST = ",".join(ALLOWED_DEMUXERS)
# Demuxers that read other files or the network on purpose: named in the refusal's reason.
PLAYLIST_DEMUXERS = frozenset({"dash", "hls", "concat", "sdp", "rtp", "rtsp", "webm_dash_manifest",
                               "ffmetadata", "image2", "data", "tee"})
_REFUSED_MARKER = "not on whitelist"  # ffmpeg's words for both refusals
_FORMAT_REFUSED = "Format not on whitelist"
_PROBED_RE = re.compile(r"Format (\S+) probed with size=")
_SEQUENCE_RE = re.compile(r"%0?\d*d")


def local_input(path: str | os.PathLike):
    """``path`` (a file on this machine) made absolute, as a ``Path``: what every user-given path is
    handed to ffmpeg as. ffmpeg reads a relative ``a:b.mp4`` as protocol ``a`` (refused by the
    allow-list, or "Protocol not found"); an absolute path starts with ``/``, which no protocol name
    can, so it is always the file protocol, and names like ``concat:x`` or ``http:...`` given as
    strings to :func:`run_ffmpeg` are still refused as locations."""
    from pathlib import Path

    return Path(os.path.abspath(os.fspath(path)))


def _guarded(target: str) -> list[str]:
    protocol = "pipe" if target == "-" or target.startswith("pipe:") else "file"
    return ["-protocol_whitelist", protocol, "-format_whitelist", FORMAT_WHITELIST]


def _inputs(args: Sequence[str]) -> list[tuple[int, bool]]:
    """(index of each ``-i``, whether it is guarded). Inputs declared ``-f lavfi`` are generated by
    our own filter strings (test sources, silence), not read from anywhere: those run as they are."""
    out, start = [], 0
    for i, arg in enumerate(args):
        if arg == "-i" and i + 1 < len(args):
            opts = list(args[start:i])
            lavfi = any(opts[j] == "-f" and opts[j + 1] == "lavfi" for j in range(len(opts) - 1))
            out.append((i, not lavfi))
            start = i + 2
    return out


def ffmpeg_command(args: Sequence[str], *, stdin: bool = False) -> list[str]:
    """The full ffmpeg command line for ``args``: ``-hide_banner``, ``-nostdin`` (unless ``stdin``
    feeds the process), and every input (``-i X``) opened with the protocol and container
    allow-lists above. The one place every ffmpeg run is built, whether run_ffmpeg waits for it or
    a caller streams its output (the analysis decode)."""
    args = [str(a) for a in args]
    cmd = [ffmpeg_exe(), "-hide_banner", *([] if stdin else ["-nostdin"])]
    pos = 0
    for index, guarded in _inputs(args):
        cmd += args[pos:index]
        if guarded:
            cmd += _guarded(args[index + 1])
        pos = index
    return cmd + args[pos:]


def detected_format(path: str | os.PathLike, *, cwd: str | os.PathLike | None = None,
                    timeout: float = 60.0) -> str | None:
    """The demuxer ffmpeg's probe picks for the file at ``path`` (e.g. ``"dash"``,
    ``"mov,mp4,m4a,3gp,3g2,mj2"``), found without opening it any further: the allow-lists stay on
    and the probe's verdict is read from its debug log. None when nothing was recognised."""
    cmd = ffmpeg_command(["-v", "debug", "-i", os.fspath(path)])
    try:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout,
                              check=False, cwd=cwd)
    except subprocess.TimeoutExpired:
        return None
    found = _PROBED_RE.findall(proc.stderr.decode("utf-8", "replace"))
    if found:
        return found[0]
    # image2 picks a numbered-file pattern by its name alone, before any probe is logged
    return "image2" if _SEQUENCE_RE.search(os.path.basename(os.fspath(path))) else None


def refusal_reason(fmt: str | None) -> str:
    """Why an input in format ``fmt`` (a demuxer name; "" when unknown; None: a location, not a
    format) is refused: one line, completing "the video ..."."""
    if fmt is None:
        return "names a location other than the file it was given (only the file itself is read)"
    if not fmt:
        return ("is not in a media container read here (accepted: MP4/MOV, Matroska/WebM, MPEG-TS/PS, AVI, "
                "FLV, ASF, Ogg and common audio files)")
    if fmt == "image2":
        return "names an image sequence (a numbered-file pattern: it points at other files), not a video"
    if fmt in PLAYLIST_DEMUXERS:
        return f"is a playlist or manifest ({fmt}: it points at other files or streams), not a media file"
    if fmt.endswith("_pipe") or fmt in ("image2pipe", "gif", "apng"):
        return f"is a still image ({fmt.removesuffix('_pipe')}), not a video"
    return (f"is in the {fmt} format, which is not read here (accepted: MP4/MOV, Matroska/WebM, MPEG-TS/PS, "
            "AVI, FLV, ASF, Ogg and common audio files)")


def check_refused(stderr: str, args: Sequence[str], *, cwd: str | os.PathLike | None = None) -> None:
    """Raise UnsupportedMedia (one line, ``reason`` and ``format`` in its context) when ``stderr``
    says ffmpeg refused one of the inputs of ``args`` under the allow-lists; else return."""
    if _REFUSED_MARKER not in stderr:
        return
    args = [str(a) for a in args]
    fmt = None  # a protocol refused: the input named a location, not a file
    if _FORMAT_REFUSED in stderr:
        fmt = ""
        for index, guarded in _inputs(args):
            found = detected_format(args[index + 1], cwd=cwd) if guarded else None
            if found is not None and not any(name in ALLOWED_DEMUXERS for name in found.split(",")):
                fmt = found
                break
    reason = refusal_reason(fmt)
    raise UnsupportedMedia(f"the input {reason}", reason=reason, format=fmt)


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
