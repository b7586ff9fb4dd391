"""What the mix stage needs on disk, as plain arithmetic: `musicvid run`'s preflight asks before
its first stage, so this module imports nothing (issue 18: the mixer's own modules stay off that path)."""

from __future__ import annotations


def work_bytes(duration_s: float, *, sample_rate: int = 48000, stems: bool = False, sound: bool = True,
               bitrate_bps: int = 256_000) -> dict[str, int]:
    """Disk (bytes) compose needs for ``duration_s`` seconds of video beside its output: the float
    stereo WAVs of its temporary folder (the music bus and the premaster: the master is no file, it
    streams into the encoder; with ``sound``, the original bus and the ducked music tapped for the
    speech report; with ``stems``, three more that it keeps) and the scored track the output gains
    (at ``bitrate_bps``), and, in ``work_wavs`` too, twice that for a split encode's halves and
    their splice (split.py). The output's copy of the video is the caller's to count (about the
    input's size). 2 h at 48 kHz: 2.8 GB per WAV."""
    wav = round(duration_s * sample_rate) * 2 * 4
    count = 2 + (2 if sound else 0) + (3 if stems else 0)
    scored = round(duration_s * bitrate_bps / 8)
    return {"work_wavs": count * wav + 2 * scored, "scored_track": scored}
