"""Independent measurements of produced media: loudness, stream facts (durations, packet hashes) and
speech against music.

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
