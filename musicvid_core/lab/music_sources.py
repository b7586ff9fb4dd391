"""Music sources side by side (notebooks/06_music_sources.ipynb): the same video scored with the
procedural composer, your own track and a library track, through the job pipeline (issue 15).

``track``: your recording is uploaded like the video (``submit.upload_music``) and edited to the
picture; ``library``: the library chooses a track for the prompt and the picture (or plays the one
named); ``procedural``: the configured generator composes, as without a ``music`` option.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from musicvid_core.domain.errors import BadInput
from musicvid_core.services import Services

SOURCES = ("procedural", "track", "library")
# The edit's figures copied into a results row (metrics["music_edit"]; docs/tracks.md, Phase 2).
EDIT_COLUMNS = ("track", "why", "planned_cut_beat_hit_rate", "cut_beat_hit_rate", "strong_downbeat_hit_rate",
                "seam_z_median", "seam_z_max", "max_stretch", "longest_repeat_s", "ending", "length_error_samples")


def sample_track(folder: str | Path, *, bpm: float = 120.0, bars: int = 8, seed: int = 5) -> Path:
    """A generated track (musicvid_core.lab.tracks: drums, bass, chords; known beats and bars) as a
    WAV in ``folder``, written the first time: a stand-in for "your own track"."""
    from musicvid_core.lab.tracks import make_track
    from musicvid_core.media import write_float_wav

    path = Path(folder) / f"sample_track_{bpm:g}bpm_{bars}bars_s{seed}.wav"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        song = make_track(bpm=bpm, bars=bars, seed=seed)
        write_float_wav(path, song.audio, song.sample_rate)
    return path


def music_option(svc: Services, source: str, *, track: str | Path | None = None,
                 library_track: str | None = None) -> dict | None:
    """The ``music`` job option of ``source`` (one of SOURCES): None for procedural; ``track``
    uploaded for "track" (BadInput when it is missing, not audio, silent or too short);
    ``library_track`` ("" or None: chosen) for "library". BadInput for an unknown source."""
    from musicvid_core.stages.compose.track.audio import load_track
    from musicvid_core.workflow.submit import track_option

    if source not in SOURCES:
        raise BadInput(f"unknown music source {source!r}; choose one of: {', '.join(SOURCES)}")
    if source == "procedural":
        return None
    if source == "library":
        return {"kind": "library", "track": library_track or None}
    if not track:
        raise BadInput("the track source needs a music file")
    load_track(track, 8000, channels=1)
    return track_option(svc, track, svc.settings.user)


def score_sources(svc: Services, video: str | Path, prompt: str, *, sources: Sequence[str] = SOURCES,
                  track: str | Path | None = None, library_track: str | None = None, seed: int = 0,
                  out_dir: str | Path) -> dict:
    """Score ``video`` once per source (experiments.score: stems kept, outputs under
    ``out_dir/<source>/``): source -> experiments.Scored, its row carrying ``source`` and the
    EDIT_COLUMNS of a recording's edit."""
    from musicvid_core.lab import experiments

    out = {}
    for source in sources:
        option = music_option(svc, source, track=track, library_track=library_track)
        options = {"music": option, "music_metrics": True} if option else {}
        scored = experiments.score(svc, video, prompt, seed=seed, out_dir=out_dir, label=source, options=options)
        scored.row.update(source=source, **edit_columns(scored.job.metrics))
        out[source] = scored
    return out


def edit_columns(metrics: Mapping | None) -> dict:
    """The EDIT_COLUMNS of a job's metrics["music_edit"] (all None for composed music)."""
    found = (metrics or {}).get("music_edit") or {}
    return {f"edit_{k}": found.get(k) for k in EDIT_COLUMNS}
