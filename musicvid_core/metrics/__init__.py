"""Independent measurements of produced media: loudness and stream facts (durations, packet hashes).

These never share code paths with the mixer they check: they decode or scan the finished file.
"""

from .loudness import LoudnessReport, measure_array, measure_loudness
from .streams import (measure_output, scan_video_packets, stream_durations, video_packet_hashes,
                      video_packet_pts)

__all__ = ["LoudnessReport", "measure_array", "measure_loudness", "measure_output", "scan_video_packets",
           "stream_durations", "video_packet_hashes", "video_packet_pts"]
