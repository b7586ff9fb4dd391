"""The pipeline's stages, one room each; what each takes and gives is in its own ``__init__``.

The path a job takes (the Tasks of workflow.asl.json, run by workflow/steps.py):

1. ``analyse`` (the Analyzer): the uploaded video -> :class:`~musicvid_core.domain.features.MediaInfo`
   + :class:`~musicvid_core.domain.features.VideoFeatures` (cuts, motion, brightness, loudness, speech,
   source music), in one decode.
2. ``plan`` (the Analyzer too): features + prompt + seed + job options -> a
   :class:`~musicvid_core.domain.plan.Plan` (segments with style, key, tempo, energy, cut-locked beats).
3. ``compose`` (the AudioGenerator, a Map over segments): Plan + segment index + seed -> one clip,
   float32 stereo at a sample rate.
4. ``mix`` (the AVOperator): video + plan + clips -> the scored file, mastered, plus its metrics.

Times are seconds from the video's first frame throughout. Stages import domain/, media, ports,
metrics and each other's pure helpers, never workflow/, adapters/ or an entry point; heavy libraries
are imported by the modules that need them, so importing a room stays cheap.
"""
