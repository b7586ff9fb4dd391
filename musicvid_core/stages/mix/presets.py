"""Loudness presets: where the finished soundtrack is headed decides its loudness target.

Integrated loudness (LUFS) and true-peak ceiling (dBTP) per delivery:

- ``web`` (-14 / -1): YouTube, Spotify, most social platforms normalise to about -14 LUFS;
- ``apple`` (-16 / -1): Apple Music / Podcasts' reference level;
- ``broadcast`` (-23 / -1): EBU R128 (R128 allows -1 dBTP for the true peak).

Pure data and validation (no media imports): the API and the CLI resolve job options with it.
"""

from __future__ import annotations

from typing import Any

from musicvid_core.domain.errors import BadInput

LOUDNESS_PRESETS: dict[str, tuple[float, float]] = {
    "web": (-14.0, -1.0),
    "apple": (-16.0, -1.0),
    "broadcast": (-23.0, -1.0),
}
DEFAULT_PRESET = "web"  # what Settings.target_lufs / true_peak_dbtp default to
TARGET_RANGE_LUFS = (-40.0, -5.0)
TRUE_PEAK_RANGE_DBTP = (-9.0, 0.0)
SOURCE_MUSIC_POLICIES = ("keep", "duck", "replace")  # Plan.source_music_policy


def job_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Validated job options (render settings a job carries): a ``loudness`` preset name resolved into ``target_lufs`` and
    ``true_peak_dbtp``; explicit values in ``options`` override the preset's. Other options pass
    through (``source_music`` must be one of SOURCE_MUSIC_POLICIES, ``preview`` becomes a bool).
    Raises BadInput for an unknown preset or policy or a value out of range."""
    out = {k: v for k, v in (options or {}).items() if v is not None}
    preset = out.pop("loudness", None)
    if preset is not None:
        if preset not in LOUDNESS_PRESETS:
            raise BadInput(f"unknown loudness preset {preset!r}; choose one of: {', '.join(LOUDNESS_PRESETS)}")
        target, peak = LOUDNESS_PRESETS[preset]
        out = {"target_lufs": target, "true_peak_dbtp": peak, **out}
    for key, (lo, hi), unit in (("target_lufs", TARGET_RANGE_LUFS, "LUFS"),
                                ("true_peak_dbtp", TRUE_PEAK_RANGE_DBTP, "dBTP")):
        if key in out:
            try:
                out[key] = float(out[key])
            except (TypeError, ValueError):
                raise BadInput(f"{key} must be a number") from None
            if not lo <= out[key] <= hi:
                raise BadInput(f"{key} must be between {lo:g} and {hi:g} {unit}")
    if "source_music" in out and out["source_music"] not in SOURCE_MUSIC_POLICIES:
        raise BadInput(f"unknown source music policy {out['source_music']!r}; "
                       f"choose one of: {', '.join(SOURCE_MUSIC_POLICIES)}")
    if "preview" in out:
        out["preview"] = bool(out["preview"])
    return out
