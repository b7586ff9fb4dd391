"""The analyse stage: measure the video the music goes under.

Takes a video path. Gives :class:`~musicvid_core.domain.features.MediaInfo` (``probe``: container,
streams, rotation, the video stream's exact duration in seconds, without ffprobe) and
:class:`~musicvid_core.domain.features.VideoFeatures` (``features.analyze`` / ``analyze_video``:
scene cuts, motion and brightness curves, loudness in LUFS, speech and source-music regions), all in
seconds from the first shown video frame (the player's timeline: frames an edit list hides do not
count), from ONE ffmpeg decode. ``audio`` reads that decode's audio branch (BS.1770 meter, 16 kHz
voice activity) of the main audio track; ``cuts`` finds each new shot's first frame. Raises BadInput
for a missing path, UnsupportedMedia for a file with no decodable video, and MediaToolError when
ffmpeg fails or times out.
"""
