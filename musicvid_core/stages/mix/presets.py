"""Loudness presets: where the finished soundtrack is headed decides its loudness target.

Integrated loudness (LUFS) and true-peak ceiling (dBTP) per delivery:

- ``web`` (-14 / -1): YouTube, Spotify, most social platforms normalise to about -14 LUFS;
- ``apple`` (-16 / -1): Apple Music / Podcasts' reference level;
- ``broadcast`` (-23 / -1): EBU R128 (R128 allows -1 dBTP for the true peak).

The presets and the validation of every job option live with :class:`JobOptions` in
musicvid_core/domain/options.py (validated once, at submit); they are re-exported here for the mixer,
the lab and the benches.
"""

from __future__ import annotations

from typing import Any

from musicvid_core.domain.options import (  # noqa: F401  (re-exported)
    DEFAULT_PRESET,
    LOUDNESS_PRESETS,
    SOURCE_MUSIC_POLICIES,
    TARGET_RANGE_LUFS,
    TRUE_PEAK_RANGE_DBTP,
    JobOptions,
)


def job_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The options a client set, validated (:meth:`JobOptions.parse`) as a plain dict: a ``loudness``
    preset name resolved into ``target_lufs`` and ``true_peak_dbtp``, explicit values over the
    preset's, None values left out. Raises BadInput for an unknown option, preset or policy, a value
    of the wrong type or out of range."""
    return JobOptions.parse(options).given()
