"""Independent measurements of produced media: loudness, stream facts (durations, packet hashes),
speech against music; ``music`` (cut-beat fit, tempo, key) and ``sound`` (spectral balance against
real recordings, crest, loudness range, stereo width, section contrast, repetition) on the music;
``bars`` (beats, bar lines, pulse) and ``edit`` (how an edited recording fits its picture: hit
rates, seam audibility, exact length) for the track editor; ``windows``: the music and sound reports
of long music in bounded memory, read window by window from the segment clips (what a job's
``metrics.music`` runs).

These never share code paths with the mixer they check: they decode or scan the finished file.
"""

from musicvid_core.metrics.loudness import LoudnessReport, measure_array, measure_loudness
from musicvid_core.metrics.speech import speech_music_difference
from musicvid_core.metrics.streams import (
           measure_output,
           scan_video_packets,
           stream_durations,
           video_packet_hashes,
           video_packet_pts,
)

__all__ = ["LoudnessReport", "measure_array", "measure_loudness", "measure_output", "scan_video_packets",
           "speech_music_difference", "stream_durations", "video_packet_hashes", "video_packet_pts"]
