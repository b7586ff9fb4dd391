"""The lab: what the notebooks, ``musicvid experiment`` and ``musicvid batch`` call.

- ``experiments``: the notebooks' one import: services, sample videos, ``score`` (one video -> one job
  -> one results row), prompt grids, mix sweeps.
- ``runs``: the project root, run folders (``data/runs/<timestamp>-<name>/``), papermill execution.
- ``tables``: tidy results tables (CSV, Parquet).
- ``batch``: a folder or manifest of videos scored one by one, failures kept as rows.
- ``viz``: figures and players, over ``readers`` (frames, audio samples, loudness series via ffmpeg).
- ``samples``: synthetic videos with known cut times; ``edit``: a moviepy edit for notebook 01.

An entry point like cli.py: it builds services through bootstrap and may import anything below it.
pandas, papermill, matplotlib and moviepy (the ``[notebooks]`` extra) are imported on use.
"""
