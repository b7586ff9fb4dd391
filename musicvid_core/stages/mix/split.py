"""The scored track's AAC encode in two halves at once, spliced (issue 18).

ffmpeg's native AAC encoder runs on one thread: on 15 minutes of stereo at 256 kbit/s it is ~17 s,
most of the final run, while the machine's other core idles. Long mixes into MP4/MOV are therefore
encoded as two halves at once, each by its own ffmpeg fed its part of the master by its own thread:

- half A codes samples ``[0, S + P)``, half B ``[S - P, N)``: ``S`` the middle, on a whole 1024-sample
  frame, ``P`` the pre-roll (PREROLL_FRAMES frames, 2.7 s at 48 kHz);
- the spliced stream is A's frames up to sample ``S`` and B's from sample ``S`` on (ADTS frames are
  self-delimiting; each frame's decode overlap-adds the one before, so B's pre-roll primes it).

`python bench/aac_split.py` measured the splice: the encoder is causal (every one of A's frames is
byte-identical to the single encode's), and with 128 frames of pre-roll the coding error around the
splice lies within the single encode's own spread at every splice point tried (median +0.0 dB, the
largest +1.8 dB, the 95th percentile of the single encode's own windows). Same coder, same bitrate.

The spliced ADTS stream is then muxed by stream copy (compose's final run), shifted back by the
encoder's priming (PRIMING samples): MP4 and MOV then carry the same edit list as a single encode's
(tested: the decoded output has the same length and alignment, sample for sample up to ``S``).
Matroska does not (it keeps the priming as samples: 21 ms late), so only MP4-family outputs split,
and only mixes long enough for the halves to pay for the second process (SPLIT_MIN_S).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from musicvid_core.domain.errors import MediaToolError
from musicvid_core.media import run_ffmpeg

FRAME = 1024  # samples per AAC frame
PRIMING = 1024  # ffmpeg's native AAC encoder delay (its initial_padding)
PREROLL_FRAMES = 128  # bench/aac_split.py: the splice within the single encode's own spread
SPLIT_MIN_S = 120.0  # shorter mixes encode in one run: ~2 s of AAC does not pay for a second process
SPLIT_MUXERS = frozenset({"mp4", "mov"})  # formats whose priming edit list a copied stream keeps


@dataclass(frozen=True)
class Encoded:
    """The spliced scored track: ``path`` (ADTS) holds ``frames`` frames coding ``total`` samples at
    ``sample_rate`` Hz, after PRIMING samples of encoder delay."""

    path: Path
    frames: int
    total: int
    sample_rate: int

    @property
    def priming_s(self) -> float:
        return PRIMING / self.sample_rate

    def last_frame_bsf(self) -> str | None:
        """A ``setts`` bitstream filter giving the last frame its real duration (the samples it
        codes, not 1024): an encoder says so in the packet, ADTS cannot, and MP4's edit list is
        cut from the packets' durations. None when the frames do not end where they should."""
        rest = self.total + PRIMING - (self.frames - 1) * FRAME
        if not 0 < rest <= FRAME:
            return None
        return f"setts=duration=if(eq(N\\,{self.frames - 1})\\,({rest}/{self.sample_rate})/TB\\,DURATION)"


def worth_splitting(*, muxer: str, codec: str, seconds: float, preview: bool) -> bool:
    """Whether compose encodes this mix in two halves (module docstring)."""
    return not preview and codec == "aac" and muxer in SPLIT_MUXERS and seconds >= SPLIT_MIN_S


def halves(total: int) -> tuple[tuple[int, int], tuple[int, int], int]:
    """The sample ranges ``(A, B)`` the two encoders code, and the splice ``S``."""
    middle = (total // 2) // FRAME * FRAME
    preroll = PREROLL_FRAMES * FRAME
    return (0, min(total, middle + preroll)), (max(0, middle - preroll), total), middle


def encode(feed: Callable[[int, int], Iterator[bytes]], total: int, dest: Path, *, bitrate: str,
           sample_rate: int, timeout: float) -> Encoded:
    """Encode the ``total`` samples that ``feed(start, stop)`` yields (a WAV byte stream of that
    range, e.g. limiter.master_blocks) as AAC at ``bitrate``, in two halves at once, into ``dest``
    (ADTS): the frames of one stream, as one encode would lay them out. Raises MediaToolError when
    an encode fails or runs past ``timeout`` seconds."""
    (a0, a1), (b0, b1), middle = halves(total)
    parts = [dest.with_name(dest.stem + ".a.aac"), dest.with_name(dest.stem + ".b.aac")]

    def one(start: int, stop: int, part: Path) -> None:
        run_ffmpeg(["-y", "-f", "wav", "-ignore_length", "1", "-i", "pipe:0", "-c:a", "aac", "-b:a", bitrate,
                    "-f", "adts", str(part)], feed=feed(start, stop), timeout=timeout, what="AAC encode")

    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(one, a0, a1, parts[0]), pool.submit(one, b0, b1, parts[1])]
        for run in runs:
            run.result()
    # A's frame k (the priming frame first) ends at sample k * FRAME of its range: keep it up to the
    # splice. B's range starts middle - preroll: its frames from the one ending past the splice on.
    keep_a = middle // FRAME + 1
    skip_b = (middle - b0) // FRAME + 1
    first, second = frame_offsets(parts[0]), frame_offsets(parts[1])
    if len(first) - 1 < keep_a or len(second) - 1 <= skip_b:
        raise MediaToolError("AAC encode wrote fewer frames than its samples need",
                             frames=[len(first) - 1, len(second) - 1], samples=total)
    with open(dest, "wb") as out:  # copied in pieces: an hour's halves are 115 MB
        _copy_range(parts[0], out, 0, first[keep_a])
        _copy_range(parts[1], out, second[skip_b], second[-1])
    for part in parts:
        part.unlink()
    return Encoded(dest, keep_a + len(second) - 1 - skip_b, total, sample_rate)


def frame_offsets(path: Path) -> list[int]:
    """Where each frame of an ADTS file starts, and (last) where the file ends: the headers are
    read (the 0xFFF sync word, then the frame's length), never the whole file at once."""
    offsets, at = [], 0
    with open(path, "rb") as f:
        while True:
            f.seek(at)
            header = f.read(7)
            if len(header) < 7:
                break
            offsets.append(at)
            at += _frame_length(header, at)
    offsets.append(at)
    return offsets


def _copy_range(src: Path, out, start: int, stop: int, piece: int = 1 << 20) -> None:
    with open(src, "rb") as f:
        f.seek(start)
        left = stop - start
        while left > 0:
            data = f.read(min(piece, left))
            if not data:
                break
            out.write(data)
            left -= len(data)


def adts_frames(data: bytes) -> list[bytes]:
    """The frames of an ADTS stream (each starts with the 0xFFF sync word and states its length)."""
    frames, at = [], 0
    while at + 7 <= len(data):
        length = _frame_length(data[at:at + 7], at)
        frames.append(data[at:at + length])
        at += length
    return frames


def _frame_length(header: bytes, at: int) -> int:
    """The length (bytes) of the ADTS frame whose 7-byte ``header`` starts at offset ``at``."""
    if header[0] != 0xFF or header[1] & 0xF0 != 0xF0:
        raise MediaToolError("AAC encode wrote a stream that is not ADTS", offset=at)
    length = ((header[3] & 0x03) << 11) | (header[4] << 3) | (header[5] >> 5)
    if length < 7:
        raise MediaToolError("AAC encode wrote a stream that is not ADTS", offset=at)
    return length
