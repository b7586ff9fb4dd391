"""The plan stage: every planning decision, from what was measured and asked for to a Plan.

Takes the measured :class:`~musicvid_core.domain.features.VideoFeatures` (cuts, motion, brightness,
speech, source music), the prompt and the seed, the job's :class:`~musicvid_core.domain.options.JobOptions`
(requested hits, the source-music policy) and, for a one-segment re-roll, the previous attempt's plan.
Gives a validated :class:`~musicvid_core.domain.plan.Plan`: segments tiling the video, each with its
style, mood, key, energy and a beat grid locked to the scene cuts (and hits), plus the mix-level
fields (fades, ducking, source-music policy). Times in seconds from the video start.

- ``decide``: the one entry (``decide_plan``): re-roll or plan, hits and open timing to
  ``lock_timing``, the job's options over the planner's defaults. The workflow's Analyzer only
  loads its inputs, calls it and stores the plan.
- ``planner``: the rule planner (segmenting at cuts, tempo and key from prompt and picture),
  ``lock_timing`` (beat grids fitted to cuts, per-bar energy) and ``reroll_segment``.
- ``timing``: ``fit_beats``, the cut-locked beat grid of one segment (a small dynamic programme).
- ``prompt`` and ``intent``: free-text prompt -> PromptIntent (style, mood, tempo, key, instruments,
  energy, arc), with what was understood recorded.

Model planners (Bedrock) live in adapters/model and implement ports.JobPlanner; they take their
mix-level fields from ``RulePlanner.draft`` and leave the beat grids to ``lock_timing``.
"""
