"""Probe a media file without ffprobe.

imageio-ffmpeg ships ``ffmpeg`` but not ``ffprobe``, so the probe reads what ``ffmpeg -i`` prints
about the input (container, streams, rotation) and then measures the video stream's exact duration
with a packet scan that copies packets without decoding them (``-c copy -f framecrc``): the last
packet's pts + duration minus the first pts, in the stream time base the scan prints. The header's
``Duration:`` is the container's (often the longest stream, rounded to 10 ms), which is not the
duration the output audio must match.

The timeline is the player's (issue 17): packets the demuxer flags as discarded (an edit list's
hidden lead-in, e.g. the frames before the edit point of a lossless ``-ss ... -c copy`` trim) are
decoded but never shown, so they count in neither the duration nor the frame rate; the video's
start is where its first shown frame sits after the container's start. Every stream is listed (the
mix keeps them all), and with several audio tracks the main one (the one the music replaces) is
chosen: the one asked for, else the default-flagged one that is not silent, else the first that is
not silent.
"""

from __future__ import annotations

import re
import tempfile
from fractions import Fraction
from pathlib import Path

from musicvid_core.domain.errors import BadInput, UnsupportedMedia
from musicvid_core.domain.features import AudioStreamInfo, MediaInfo, StreamInfo
from musicvid_core.media import DEFAULT_TIMEOUT_S, last_error_line, run_ffmpeg

MAX_DIMENSION = 8192  # px, either side: beyond this decoding is a memory hazard, not a video we score

# ffmpeg's stream specifier for "video, but not cover art / attached pictures".
VIDEO_STREAM = "0:V:0"

# Channel counts of ffmpeg's named layouts that are not "N.M[.K]" numerals (those are summed).
_NAMED_LAYOUTS = {"mono": 1, "stereo": 2, "downmix": 2, "binaural": 2, "quad": 4, "hexagonal": 6,
                  "octagonal": 8, "cube": 8, "hexadecagonal": 16}

_INPUT_RE = re.compile(r"^Input #0, (.+?), from ", re.MULTILINE)
_DURATION_RE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_CONTAINER_START_RE = re.compile(r"Duration: .*?, start: (-?[\d.]+)")
_STREAM_RE = re.compile(r"^\s*Stream #0:(\d+)(?:\[0x[0-9a-f]+\])?(?:\((\w+)\))?: (\w+): (.*)$")
_STREAM_START_RE = re.compile(r", start (-?[\d.]+)")
_TAG_RE = re.compile(r"\(([\w ]{1,4}) / 0x[0-9A-Fa-f]+\)")
_CHAPTER_RE = re.compile(r"^\s*Chapter #0:\d+: ", re.MULTILINE)
_MAX_VOLUME_RE = re.compile(r"Parsed_volumedetect_(\d+) .*max_volume: (-?(?:[\d.]+|inf)) dB")
SILENT_DBFS = -60.0  # an audio track whose peak stays under this is silent: not the main track
_DIMS_RE = re.compile(r",\s(\d+)x(\d+)\b")
_RATE_RE = {key: re.compile(rf"([\d.]+)(k?) {key}\b") for key in ("fps", "tbr")}
_HZ_LAYOUT_RE = re.compile(r"(\d+) Hz, ([^,]+)")
_DISPLAY_MATRIX_RE = re.compile(r"display ?matrix: rotation of (-?[\d.]+) degrees", re.IGNORECASE)
_ROTATE_TAG_RE = re.compile(r"^\s*rotate\s*:\s*(-?\d+)", re.MULTILINE)
_TB_RE = re.compile(r"^#tb 0: (\d+)/(\d+)", re.MULTILINE)
_NOPTS = -(2**63)  # AV_NOPTS_VALUE as framecrc prints it
_DISCARD = 0x4  # AV_PKT_FLAG_DISCARD: decoded for reference, never shown (an edit list's lead-in)

_INVALID_SIZE_RE = re.compile(r"Picture size (\d+x\d+) is invalid")
# Demuxers of single pictures and image sequences (ffmpeg names most of them "<codec>_pipe").
_IMAGE_DEMUXERS = frozenset({"image2", "image2pipe", "tiff", "svg"})

# Phrases in ffmpeg's stderr that mean the file stops before its index says it should.
_TRUNCATION_MARKERS = ("moov atom not found", "partial file", "truncated")


def probe(path: str | Path, *, timeout: float = DEFAULT_TIMEOUT_S, label: str | None = None,
          audio_track: int | None = None, scan: bool = True) -> MediaInfo:
    """Describe the video at ``path``: container, precise video duration (s, as a player shows it),
    size (px), fps, codec, rotation (degrees clockwise for display), every stream, and the audio
    streams with the main one chosen (``audio_track``: that audio ordinal, as ``0:a:N``).

    Raises BadInput for a missing path or an ``audio_track`` the file does not have,
    UnsupportedMedia (one-line message) for anything that is not a usable video (empty, not media,
    truncated, audio-only, no frames, oversized), MediaToolError when ffmpeg itself fails or runs
    past ``timeout`` seconds. ``label`` names the file in messages (default: its file name; the
    pipeline says "the video" rather than show a storage key). ``scan=False``: the header only, no
    packet scan (a pass over the file): duration and fps as the header says, hidden frames 0 and
    no check for frames; for a check that needs neither (workflow/preflight.py).
    """
    path = Path(path)
    if not path.exists():
        raise BadInput(f"no such file: {path}")
    if not path.is_file():
        raise BadInput(f"not a file: {path}")
    name = label or path.name
    if path.stat().st_size == 0:
        raise UnsupportedMedia(f"{name} is empty (0 bytes)", path=str(path))

    try:  # the first open of the input: a playlist, manifest or other refused format ends here
        header = run_ffmpeg(["-i", str(path)], timeout=timeout, what="probe", check=False).stderr
    except UnsupportedMedia as exc:
        reason = exc.context.get("reason") or "cannot be opened as media"
        raise UnsupportedMedia(f"{name} {reason}", path=str(path), format=exc.context.get("format")) from None
    info = _parse_header(header, path, name)
    duration, packets, hidden = _scan_video_packets(path, timeout, name) if scan else (0.0, None, 0)
    if packets == 0:
        raise UnsupportedMedia(f"{name} has no video frames", path=str(path))
    if duration <= 0:
        duration = info["container_duration"]
    if duration <= 0:
        raise UnsupportedMedia(f"{name} has a video stream of zero duration", path=str(path))
    # The header's fps is rounded ("29.97 fps"); packets per second is exact for constant frame
    # rate and the true average for variable frame rate.
    fps = packets / duration if packets is not None and packets > 1 else info["fps"] or 1.0 / duration
    audio = info["audio"]
    main = _main_audio(path, audio, audio_track, timeout, name)
    return MediaInfo(path=str(path), container=info["container"], duration=duration,
                     width=info["width"], height=info["height"], fps=fps,
                     video_codec=info["video_codec"], rotation=info["rotation"], audio=audio,
                     start=info["start"], hidden_frames=hidden, main_audio=main,
                     streams=sorted(info["streams"], key=lambda stream: stream.index),
                     chapters=info["chapters"])


def _main_audio(path: Path, audio: list[AudioStreamInfo], requested: int | None, timeout: float,
                name: str) -> int | None:
    """The audio ordinal the music replaces (None without audio). BadInput for a track not there."""
    if requested is not None:
        if not 0 <= requested < len(audio):
            have = f"audio tracks 0..{len(audio) - 1}" if audio else "no audio track"
            raise BadInput(f"{name} has {have}; there is no audio track {requested}")
        return requested
    if len(audio) < 2:
        return 0 if audio else None
    peaks = _track_peaks(path, len(audio), timeout)
    for track, peak in zip(audio, peaks, strict=True):
        track.silent = peak < SILENT_DBFS
    speaking = [t for t in audio if not t.silent]
    chosen = next((t for t in speaking if t.default), None) or (speaking[0] if speaking else None)
    chosen = chosen or next((t for t in audio if t.default), audio[0])
    return chosen.index


def _track_peaks(path: Path, count: int, timeout: float) -> list[float]:
    """Sample peak (dBFS, -inf for digital silence) of each of the first ``count`` audio tracks, in
    one audio-only decode: one volumedetect per track, read back by its position in the graph."""
    graph = ";".join(f"[0:a:{k}]volumedetect[p{k}]" for k in range(count))
    outputs = [arg for k in range(count) for arg in ("-map", f"[p{k}]", "-f", "null", "-")]
    proc = run_ffmpeg(["-vn", "-sn", "-dn", "-i", str(path), "-filter_complex", graph, *outputs],
                      timeout=timeout, what="audio track levels", check=False)
    peaks = [float("-inf")] * count
    for found in _MAX_VOLUME_RE.finditer(proc.stderr):
        k = int(found.group(1))
        if k < count:
            peaks[k] = float(found.group(2))
    return peaks


def header_duration(stderr: str) -> float | None:
    """The container's duration (s) in ``ffmpeg -i``'s header text, None when it prints none."""
    dur = _DURATION_RE.search(stderr)
    if not dur:
        return None
    h, m, s = dur.groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def _parse_header(stderr: str, path: Path, name: str) -> dict:
    """The fields of ``ffmpeg -i`` output; raises UnsupportedMedia when it names no usable video."""
    found = _INPUT_RE.search(stderr)
    if not found:
        low = stderr.lower()
        # The mov demuxer is also tried for any *.mp4 name, so random bytes get "moov atom not
        # found" too: only a file that starts like an MP4/MOV is a truncated one.
        truncated = any(marker in low for marker in _TRUNCATION_MARKERS)
        if truncated and ("moov atom" not in low or _starts_like_isobmff(path)):
            raise UnsupportedMedia(f"{name} is truncated or incomplete (ffmpeg: "
                                   f"{_first_marker_line(stderr)})", path=str(path))
        size = _INVALID_SIZE_RE.search(stderr)
        if size:
            raise UnsupportedMedia(f"{name} declares a {size.group(1)} picture, larger than any decoder "
                                   f"accepts (the limit here is {MAX_DIMENSION} px a side)", path=str(path))
        if "invalid data found" in low or truncated:
            raise UnsupportedMedia(f"{name} is not a media file ffmpeg can read (invalid data)",
                                   path=str(path))
        raise UnsupportedMedia(f"{name} cannot be opened as media: {last_error_line(stderr)}",
                               path=str(path))
    if found.group(1) in _IMAGE_DEMUXERS or found.group(1).endswith("_pipe"):
        raise UnsupportedMedia(f"{name} is a still image ({found.group(1).removesuffix('_pipe')}), not a video",
                               path=str(path))
    info: dict = {"container": found.group(1), "container_duration": 0.0, "audio": [],
                  "rotation": 0, "streams": [], "start": 0.0,
                  "chapters": len(_CHAPTER_RE.findall(stderr))}
    info["container_duration"] = header_duration(stderr) or 0.0
    container_start = _CONTAINER_START_RE.search(stderr)
    origin = float(container_start.group(1)) if container_start else 0.0

    video_lines: list[str] | None = None  # the first real video stream's line and its sub-lines
    current: list[str] | None = None
    for line in stderr.splitlines():
        stream = _STREAM_RE.match(line)
        if stream:
            index, language, kind, desc = stream.groups()
            current = None
            info["streams"].append(_stream(int(index), language, kind, desc))
            if kind == "Video" and video_lines is None and "(attached pic)" not in desc:
                video_lines = current = [desc]
                first_shown = _STREAM_START_RE.search(desc)
                if first_shown:  # printed when the stream starts elsewhere than the container
                    info["start"] = max(0.0, round(float(first_shown.group(1)) - origin, 6))
            elif kind == "Audio":
                info["audio"].append(_audio_stream(len(info["audio"]), desc))
        elif current is not None and line.startswith("    "):  # the stream's metadata, side data
            current.append(line)
        else:
            current = None
    if video_lines is None:
        if not info["audio"] and not any(_STREAM_RE.match(line) for line in stderr.splitlines()):
            raise UnsupportedMedia(f"{name} holds no streams at all (zero duration or an empty container)",
                                   path=str(path))
        raise UnsupportedMedia(f"{name} has no video stream (audio-only or not a video)",
                               path=str(path))

    desc, extra = video_lines[0], "\n".join(video_lines[1:])
    info["video_codec"] = desc.split(",", 1)[0].split()[0]
    dims = _DIMS_RE.search(desc)
    width, height = (int(dims.group(1)), int(dims.group(2))) if dims else (0, 0)
    if width <= 0 or height <= 0:
        raise UnsupportedMedia(f"{name} has a video stream without a picture size", path=str(path))
    if max(width, height) > MAX_DIMENSION:
        raise UnsupportedMedia(f"{name} is {width}x{height}; the limit is {MAX_DIMENSION} px a side",
                               path=str(path))
    info["width"], info["height"] = width, height
    info["fps"] = _rate(desc, "fps") or _rate(desc, "tbr")
    info["rotation"] = _rotation(extra)
    return info


def _starts_like_isobmff(path: Path) -> bool:
    """True when the file begins with an ISO-BMFF box (``size`` + a known type, e.g. ``ftyp``)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    return len(head) == 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide")


def _first_marker_line(stderr: str) -> str:
    for line in stderr.splitlines():
        if any(marker in line.lower() for marker in _TRUNCATION_MARKERS):
            return line.split("] ", 1)[-1].strip()[:200]
    return last_error_line(stderr)


def _rate(desc: str, key: str) -> float:
    found = _RATE_RE[key].search(desc)
    if not found:
        return 0.0
    return float(found.group(1)) * (1000 if found.group(2) else 1)


def _rotation(extra: str) -> int:
    """Clockwise degrees a player turns the picture. ffmpeg prints the display matrix's angle
    counter-clockwise (a phone's portrait clip says -90), the legacy ``rotate`` tag clockwise (90)."""
    matrix = _DISPLAY_MATRIX_RE.search(extra)
    if matrix:
        return round(-float(matrix.group(1))) % 360
    tag = _ROTATE_TAG_RE.search(extra)
    return int(tag.group(1)) % 360 if tag else 0


def _audio_stream(index: int, desc: str) -> AudioStreamInfo:
    codec = desc.split(",", 1)[0].split()[0]
    found = _HZ_LAYOUT_RE.search(desc)
    rate, layout = (int(found.group(1)), found.group(2).strip()) if found else (0, "")
    return AudioStreamInfo(index=index, codec=codec, sample_rate=rate, channels=_channels(layout),
                           layout=layout, default="(default)" in desc)


def _stream(index: int, language: str | None, kind: str, desc: str) -> StreamInfo:
    """One ``Stream #0:N`` line: kind, codec, codec tag, language and the flags the mix keeps."""
    tag = _TAG_RE.search(desc.split(",", 1)[0])
    return StreamInfo(index=index, kind=kind.lower(), codec=desc.split(",", 1)[0].split()[0] if desc else "",
                      tag=tag.group(1).strip() if tag else "", language=language or "",
                      default="(default)" in desc, attached_pic="(attached pic)" in desc)


def _channels(layout: str) -> int:
    """Channel count of an ffmpeg layout name: "5.1(side)" -> 6, "7.1.4" -> 12, "6 channels" -> 6."""
    counted = re.match(r"(\d+) channels", layout)
    if counted:
        return int(counted.group(1))
    base = layout.split("(", 1)[0].strip()
    if re.fullmatch(r"\d+(\.\d+)+", base):
        return sum(int(part) for part in base.split("."))
    return _NAMED_LAYOUTS.get(base, 0)


def _scan_video_packets(path: Path, timeout: float, name: str) -> tuple[float, int, int]:
    """(duration in seconds, shown packets, hidden packets) of the first video stream, from its
    packet timestamps.

    Packets are copied, not decoded, so this reads the file once at disk speed. framecrc prints one
    line per packet (``stream, dts, pts, duration, size, crc[, F=flags]``) in the time base of its
    ``#tb`` header; the listing goes to a temporary file and is read line by line, so hours of
    video cost no memory. B-frames reorder pts, hence min/max rather than first/last lines. Packets
    flagged discard (an edit list hides them: decoded as references, never shown) are counted
    apart and take no part in the duration.
    """
    with tempfile.TemporaryFile() as listing:
        # -v error: stderr holds only problems, not the input's metadata (a title could say anything).
        proc = run_ffmpeg(["-v", "error", "-i", str(path), "-map", VIDEO_STREAM, "-c", "copy",
                           "-f", "framecrc", "-"],
                          timeout=timeout, what="packet scan", check=False, stdout=listing)
        if any(marker in proc.stderr.lower() for marker in _TRUNCATION_MARKERS):
            raise UnsupportedMedia(f"{name} is truncated (ffmpeg: {_first_marker_line(proc.stderr)})",
                                   path=str(path))
        listing.seek(0)
        time_base = None
        packets = timed = hidden = 0
        first = last = last_duration = None  # in time_base units
        for raw in listing:
            line = raw.decode("ascii", "replace")
            if line.startswith("#"):
                found = _TB_RE.match(line)
                if found:
                    time_base = Fraction(int(found.group(1)), int(found.group(2)))
                continue
            if not line.strip():
                continue
            fields = line.split(",")
            if _flags(fields) & _DISCARD:
                hidden += 1
                continue
            packets += 1
            try:
                dts, pts, dur = int(fields[1]), int(fields[2]), int(fields[3])
            except (IndexError, ValueError):
                continue
            # AVI and raw streams carry no pts: there, decode order is display order and dts serves.
            ts = pts if pts != _NOPTS else dts
            if ts == _NOPTS:
                continue
            timed += 1
            first = ts if first is None else min(first, ts)
            if last is None or ts >= last:
                last, last_duration = ts, dur
    if packets == 0 and hidden == 0 and proc.returncode != 0:
        raise UnsupportedMedia(f"{name}: cannot read video packets: {last_error_line(proc.stderr)}",
                               path=str(path))
    if time_base is None or first is None:
        return 0.0, packets, hidden
    # The last frame lasts its packet's duration, unless the container stores none or a token one
    # (AVI says 1 tick): then the average frame interval.
    spacing = (last - first) / (timed - 1) if timed > 1 else 0
    if last_duration is None or last_duration < spacing / 2:
        last_duration = spacing
    return float((last + last_duration - first) * time_base), packets, hidden


def _flags(fields: list[str]) -> int:
    """A framecrc line's packet flags (``F=0x5``: key + discard); 0 when it prints none."""
    for field in fields[6:]:
        field = field.strip()
        if field.startswith("F=0x"):
            return int(field[4:], 16)
    return 0
