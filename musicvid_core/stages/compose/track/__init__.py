"""The track editor: real recordings (your own track or the bundled library) cut to the picture.

Takes a music file (or the library and a prompt), the video's duration, cut times (strong ones
marked), requested hits and a seed; gives an edit decision list at bar resolution that covers the
duration exactly, and its rendered audio. Phase 1 is self-contained (pure functions over numpy
arrays and small pydantic records that store as JSON); the workflow, CLI and API call it in phase 2.

- ``audio``: decoding any format ffmpeg reads, and the one-line errors for unusable files;
- ``analysis``: beats, bars, sections, key, loudness, the ending -- cached by content hash;
- ``library``: the bundled ``immich-memories-music`` tracks plus a folder of the user's, indexed once;
- ``choose``: ranking library tracks for a prompt and a picture;
- ``grid``: where the output's beats and bar lines go (cuts on beats, strong cuts on bar lines);
- ``arrange``: which source bar fills each output bar (shorten, extend, seams);
- ``edit``: the edit decision list, segments and re-editing one segment;
- ``render``: the EDL to audio (Rubber Band time-stretch, equal-power seams, the ending), or one
  segment's exact slice of it (``render_span``);
- ``fit``: the pipeline's entry (phase 2): a plan fitted to an edit (segments on its bar lines,
  the track's tempo and key, ``Plan.music``), the workflow around it in workflow/music_source.py.

See docs/tracks.md.
"""
