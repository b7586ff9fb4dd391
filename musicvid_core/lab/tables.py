"""Results tables: tidy, one row per run (video × prompt × seed, or one mix variant), the columns of
:data:`COLUMNS` first.

Takes rows (dicts) or a DataFrame; gives a pandas DataFrame, ``results.csv`` and optionally
``results.parquet``. The music-fit columns (``hit_rate``: share of scene cuts within ±70 ms of a beat
heard in the music; ``median_cut_beat_ms``; ``tempo_measured_bpm``; ``key_measured``;
``tempo_within_2pct``; ``mode_agreement``) are measured on the music stem by
``musicvid_core.metrics.music``. pandas and pyarrow come with the ``[notebooks]`` extra and are imported
on use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from musicvid_core.domain.errors import BadInput, ConfigurationError

__all__ = ["COLUMNS", "MUSIC_COLUMNS", "RESULTS_NAME", "read_table", "table", "write_table"]

# The columns every results table starts with (others follow: sweep parameters, extras).
COLUMNS = ["label", "video", "prompt", "seed", "status", "error_type", "error", "stage", "job_id", "output",
           "duration_s", "segments", "style", "bpm", "key", "cuts",
           "integrated_lufs", "true_peak_dbtp", "lra_lu", "target_lufs", "speech_music_lu", "duck_db",
           "hit_rate", "median_cut_beat_ms", "tempo_measured_bpm", "key_measured", "tempo_within_2pct",
           "mode_agreement", "elapsed_s", "measure_s"]
MUSIC_COLUMNS = ("hit_rate", "median_cut_beat_ms", "tempo_measured_bpm", "key_measured", "tempo_within_2pct",
                 "mode_agreement")
RESULTS_NAME = "results"


def table(rows: Sequence[Mapping]):
    """A pandas DataFrame of ``rows`` with :data:`COLUMNS` first (columns no row has are dropped)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    first = [c for c in COLUMNS if c in frame.columns]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    for col in ("seed", "segments", "cuts"):  # whole numbers stay whole beside a failed row's blanks
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    return frame.dropna(axis=1, how="all") if len(frame) else frame


def write_table(rows, folder: str | Path, *, fmt: str = "csv", name: str = RESULTS_NAME) -> Path:
    """Write the results table (rows or a DataFrame) to ``folder/results.csv`` (always: readable
    anywhere) and, with ``fmt="parquet"``, also ``results.parquet`` (typed columns; needs pyarrow).
    Returns the path of the ``fmt`` file. BadInput for another format."""
    if fmt not in ("csv", "parquet"):
        raise BadInput(f"results format must be csv or parquet, not {fmt!r}")
    frame = rows if hasattr(rows, "to_csv") else table(rows)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"{name}.csv"
    frame.to_csv(csv, index=False)
    if fmt == "csv":
        return csv
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigurationError("parquet tables need pyarrow: install the [notebooks] extra") from None
    path = folder / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def read_table(path: str | Path):
    """A results table written by :func:`write_table` (CSV or Parquet) as a DataFrame."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"no results table at {path}")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
