"""The mix stage: put the music under the video and write the scored file.

Takes the video path and its MediaInfo, the :class:`~musicvid_core.domain.plan.Plan` and one WAV clip
per segment (clip i starts at segment i's start). Gives the output file (video stream copied, the
main audio track replaced by one mastered to a target in LUFS under a true-peak ceiling in dBTP,
exactly as long as the video, every other stream kept) and a metrics dict (integrated LUFS, true
peak dBTP, LRA in LU, gain and ducking in dB, seconds).

- ``compose``: ``compose(...)``, the whole mix: a measuring pass under speech, the premaster, the
  mastering in process, then one remux that encodes (or, split, copies) and meters the scored
  track in the same ffmpeg run. Raises
  MixError for a missing video or clip, a clip count that does not match the plan, or a failed
  ffmpeg run (with its reason); MediaToolError past its time budget.
- ``filtergraph``: the ffmpeg ``-filter_complex`` graph as pure strings (clips, ducking, the premaster).
- ``limiter``: the premaster read once (true peaks, K-weighted energies), the make-up gain fitted on
  them, the look-ahead true-peak limiter, and the master streamed as WAV bytes into the encoder.
- ``split``: long MP4/MOV mixes encoded to AAC in two halves at once and spliced.
- ``render``: the music bus summed in numpy, block by block (each clip added only where it plays),
  and the ducking gain applied in numpy: one music input for every ffmpeg pass, whatever the
  number of segments; memory one block.
- ``container``: the output format (.mp4 .m4v .mov .mkv .webm) and what each input stream becomes in
  it (every stream kept, the main audio track replaced); BadInput for what a format cannot carry.
- ``presets``: loudness presets (web, apple, broadcast) and ``job_options``.
- ``sizes``: ``work_bytes``, the disk the stage needs (imports nothing: the run's preflight asks).
"""
