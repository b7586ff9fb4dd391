"""Analysis: probe a video, measure its features in one decode pass, and plan the music.

- :func:`musicvid_core.analysis.probe.probe` -> MediaInfo (ffmpeg header + packet scan, no ffprobe)
- :func:`musicvid_core.analysis.features.analyze_video` -> VideoFeatures (one ffmpeg decode)
- :func:`musicvid_core.analysis.features.analyze` = probe + analyze_video
- :class:`musicvid_core.analysis.planner.RulePlanner` -> Plan

Modules are imported by their users directly, so importing this package stays free of numpy/OpenCV.
See docs/analysis.md.
"""
