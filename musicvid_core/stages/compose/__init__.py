"""The compose stage: music for one plan segment.

Takes a :class:`~musicvid_core.domain.plan.Plan`, a segment index and a seed. Gives float32 stereo
audio, shape ``(plan.clip_samples(index, sample_rate), 2)``, at ``sample_rate`` Hz (48 kHz by default):
the segment plus its release tail, peaks <= 1.0, identical for the same (plan, index, seed).

- ``procedural``: ``ProceduralGenerator``, the default MusicGenerator (ports.py): compose, render stems,
  produce, finish.
- ``composer``: segment -> General MIDI arrangement (pretty_midi), assembled from ``grid`` (beat and
  bar times), ``harmony`` (keys, chords, voicing), ``patterns`` (drum kit, what each role plays in a
  bar) and ``roles`` (which instrument plays which role, at what level).
- ``render``: MIDI -> audio with a SoundFont (one stem per role and drum group); ``fonts``: which
  SoundFont (MuseScore General, FluidR3, TimGM6mb) and how TinySoundFont loads it; ``fontsubset``:
  the bank cut down to the presets and zones played; ``onsets``: when a rendered note is heard.
- ``production``: the stems mixed per style (``mixes``: channel strips, buses, sends, master) with
  pedalboard; ``fx``: level by energy, peak limit, the end fade (``finish``), loudness helpers.

Raises GenerationError for a bad index or a failed render, ConfigurationError without a SoundFont
renderer. Model generators (MusicGen on SageMaker or transformers) live in adapters/model.
"""
