"""Stream-level facts of a media file, measured with ffmpeg alone (imageio-ffmpeg ships no ffprobe).

Everything here comes from ffmpeg's ``framemd5`` muxer, which prints one line per packet: stream,
dts, pts, duration (in the stream's time base, announced in a ``#tb`` header) and the MD5 of the
packet's data (``framecrc`` prints the same lines with a cheaper checksum, for scans that only need
timestamps and durations).

- Video is stream-copied (never decoded), so the hashes are of the coded packets: equal hash lists
  prove a video stream went through untouched, whatever the container did to the timestamps.
- Audio is *decoded* for its duration. A packet scan would over-count: an AAC stream's first packet
  carries 1024 samples of encoder priming (pts -1024, dropped by the decoder through skip-samples side
  data) and its last packet carries padding that the container trims. Counting decoded samples gives
  exactly what a player plays, at the cost of a fast audio decode (~100x real time).
- Packets flagged discard (``F=0x4``: an edit list hides them; decoded as references, never shown)
  are hashed like the others but take no part in start and duration: the timeline is the player's.
"""

from __future__ import annotations

import itertools
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from musicvid_core.domain.errors import MediaToolError
from musicvid_core.media import DEFAULT_TIMEOUT_S, run_ffmpeg
from musicvid_core.metrics.loudness import EBUR128_FILTER, LoudnessReport, parse_ebur128_summary

_NOPTS = -(2**63)  # AV_NOPTS_VALUE as framemd5 prints it
DISCARD = 0x4  # AV_PKT_FLAG_DISCARD


@dataclass(frozen=True)
class Packet:
    dts: int  # in the stream's time base
    pts: int  # in the stream's time base (the dts when the packet has none)
    duration: int  # in the stream's time base
    size: int  # bytes
    md5: str  # of the packet data
    flags: int = 0  # AV_PKT_FLAG_* as framemd5 prints them (F=0x..); 0 when it prints none

    @property
    def shown(self) -> bool:
        """False for a packet an edit list hides (decoded for reference, never presented)."""
        return not self.flags & DISCARD


@dataclass
class StreamScan:
    media_type: str  # "video", "audio", ...
    time_base: Fraction  # seconds per timestamp tick
    packets: list[Packet] = field(default_factory=list)

    @property
    def shown(self) -> list[Packet]:
        """The packets a player presents (those an edit list hides left out)."""
        return [p for p in self.packets if p.shown]

    @property
    def hidden(self) -> int:
        """How many packets an edit list hides."""
        return sum(1 for p in self.packets if not p.shown)

    def add(self, dts: int, pts: int, duration: int, size: int, md5: str, flags: int) -> None:
        self.packets.append(Packet(dts=dts, pts=pts, duration=duration, size=size, md5=md5, flags=flags))

    @property
    def start_s(self) -> float:
        """Seconds: the earliest presentation time of a shown packet."""
        return _start_s([p.pts for p in self.shown], self.time_base)

    @property
    def span_s(self) -> float:
        """Seconds from the earliest pts to the end of the latest packet (pts + duration), over the
        shown packets.

        A packet without a duration (some containers leave it 0) is counted as lasting the
        stream's most common pts step, i.e. one frame.
        """
        shown = self.shown
        return _span_s([p.pts for p in shown], [p.duration for p in shown], self.time_base)

    @property
    def total_duration_s(self) -> float:
        """Seconds: the sum of packet durations (for decoded audio: the number of samples played)."""
        return float(sum(p.duration for p in self.packets) * self.time_base)


@dataclass
class StreamTimes:
    """What :class:`StreamScan`'s start_s, span_s and total_duration_s read, without the packets: the
    shown packets' pts and durations as two int64 columns and the sum of every packet's duration.
    A 60-minute file has ~260,000 packets; as Packet objects with their text they held ~150 MB during
    the output's duration scan (issue 18), as columns 4 MB."""

    media_type: str
    time_base: Fraction
    pts: array = field(default_factory=lambda: array("q"))
    durations: array = field(default_factory=lambda: array("q"))
    total: int = 0
    hidden: int = 0

    def add(self, dts: int, pts: int, duration: int, size: int, md5: str, flags: int) -> None:
        self.total += duration
        if flags & DISCARD:
            self.hidden += 1
        else:
            self.pts.append(pts)
            self.durations.append(duration)

    @property
    def start_s(self) -> float:
        return _start_s(self.pts, self.time_base)

    @property
    def span_s(self) -> float:
        return _span_s(self.pts, self.durations, self.time_base)

    @property
    def total_duration_s(self) -> float:
        return float(self.total * self.time_base)


def _start_s(pts: Sequence[int], time_base: Fraction) -> float:
    return float(min(pts) * time_base) if len(pts) else 0.0


def _span_s(pts: Sequence[int], durations: Sequence[int], time_base: Fraction) -> float:
    """StreamScan.span_s over the shown packets' ``pts`` and ``durations`` (0: one typical step)."""
    if not len(pts):
        return 0.0
    step = _typical_step(pts)
    end = max(p + (d or step) for p, d in zip(pts, durations))
    return float((end - min(pts)) * time_base)


def _typical_step(pts: Iterable[int]) -> int:
    ordered = sorted(pts)
    steps = Counter(b - a for a, b in itertools.pairwise(ordered) if b > a)
    return steps.most_common(1)[0][0] if steps else 0


def parse_framemd5(text: str | Iterable[str], scan: type = StreamScan) -> dict:
    """Parse ffmpeg framemd5 (version 2) output (the text, or its lines) into one ``scan`` per output
    stream index: a StreamScan (every packet), or StreamTimes (only what durations need)."""
    streams: dict = {}
    for line in text.splitlines() if isinstance(text, str) else text:
        line = line.rstrip("\r\n")
        if line.startswith("#tb "):
            idx, tb = line[4:].split(":", 1)
            streams.setdefault(int(idx), scan("", Fraction(0))).time_base = Fraction(tb.strip())
        elif line.startswith("#media_type "):
            idx, kind = line[12:].split(":", 1)
            streams.setdefault(int(idx), scan("", Fraction(0))).media_type = kind.strip()
        elif line and not line.startswith("#"):
            # stream, dts, pts, duration, size, hash[, side data ...]
            f = [x.strip() for x in line.split(",")]
            dts, pts = int(f[1]), int(f[2])
            flags = next((int(x[4:], 16) for x in f[6:] if x.startswith("F=0x")), 0)
            streams[int(f[0])].add(dts, dts if pts == _NOPTS else pts, int(f[3]), int(f[4]), f[5], flags)
    return streams


def framehash(path: str | Path, args: list[str], timeout: float, what: str,
              muxer: str = "framemd5", scan: type = StreamScan) -> tuple[dict, str]:
    """Run a framehash muxer (framemd5, or framecrc: same lines, a cheaper checksum) over ``path``;
    returns the parsed scans (``scan``: as :func:`parse_framemd5`) and ffmpeg's stderr. The lines
    go to a temporary file and are parsed one at a time: never the whole text in memory."""
    with tempfile.TemporaryFile() as out:
        proc = run_ffmpeg(["-i", str(path), *args, "-f", muxer, "-"], timeout=timeout, what=what, stdout=out)
        out.seek(0)
        return parse_framemd5((line.decode("utf-8", "replace") for line in out), scan), proc.stderr


def scan_video_packets(path: str | Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> StreamScan:
    """The coded packets of the first video stream, in decode order (stream copy, no decoding).

    Raises MediaToolError when the file cannot be read or has no video stream.
    """
    scans, _ = framehash(path, ["-map", "0:v:0", "-c", "copy"], timeout, "video packet scan")
    if not scans:
        raise MediaToolError(f"no video packets in {Path(path).name}")
    return scans[0]


def video_packet_hashes(path: str | Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> list[str]:
    """MD5 of each packet of the first video stream, in decode order."""
    return [p.md5 for p in scan_video_packets(path, timeout=timeout).packets]


def video_packet_pts(path: str | Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> list[float]:
    """Presentation time in seconds of each packet of the first video stream, in decode order."""
    scan = scan_video_packets(path, timeout=timeout)
    return [float(p.pts * scan.time_base) for p in scan.packets]


def stream_durations(path: str | Path, *, timeout: float = DEFAULT_TIMEOUT_S, audio: int = 0) -> dict:
    """Exact durations and start times, in seconds, of the first video and audio stream ``audio``
    (ffmpeg's ``0:a:N``; default the first).

    Returns ``{"video", "video_start", "audio", "audio_start"}``; the entries of a stream the file
    lacks are None. Video: first pts to the end of the last packet, from a packet scan. Audio: the
    number of decoded samples over the sample rate (priming and padding excluded), starting at the
    first decoded sample's pts. One ffmpeg run. Raises MediaToolError when the file cannot be read.
    """
    # The trailing "?" makes each map optional, so one run serves files without either stream.
    scans, _ = framehash(path, ["-map", "0:v:0?", "-map", f"0:a:{audio}?", *_DURATION_CODECS], timeout,
                          "stream duration scan", muxer="framecrc", scan=StreamTimes)
    return _durations(scans)


def measure_output(path: str | Path, *, timeout: float = DEFAULT_TIMEOUT_S,
                   audio: int = 0) -> tuple[LoudnessReport, dict]:
    """``measure_loudness`` of audio stream ``audio`` (``0:a:N``, the scored track) and
    ``stream_durations`` of ``path`` in one ffmpeg run: the audio is decoded once, through the
    ebur128 meter (which passes it on unchanged) into the sample count; video packets are scanned,
    never decoded.

    Raises MediaToolError when the file cannot be read or has no such audio stream.
    """
    scans, stderr = framehash(path, ["-map", "0:v:0?", "-map", f"0:a:{audio}", "-af", EBUR128_FILTER,
                                      *_DURATION_CODECS], timeout, "output meter", muxer="framecrc",
                          scan=StreamTimes)
    return parse_ebur128_summary(stderr), _durations(scans)


# Video copied (packets only); audio decoded, so its packets are what a player plays. framecrc
# (Adler-32) is enough here: these scans read timestamps and durations, not hashes.
_DURATION_CODECS = ["-c:v", "copy", "-c:a", "pcm_s16le"]


def _durations(scans: dict[int, StreamTimes]) -> dict:
    by_type = {s.media_type: s for s in scans.values()}
    video, audio = by_type.get("video"), by_type.get("audio")
    return {
        "video": video.span_s if video else None,
        "video_start": video.start_s if video else None,
        "audio": audio.total_duration_s if audio else None,
        "audio_start": audio.start_s if audio else None,
    }
