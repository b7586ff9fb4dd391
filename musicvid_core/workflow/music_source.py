"""Real recordings in the pipeline (issue 15, phase 2): the track I/O around the track editor.

The step handlers call these when a job's ``music`` option is ``library`` or ``track``:

- the Analyzer, after decide_plan: :func:`fit_recording` finds the track (the user's upload in the
  object store, or a library track chosen for the prompt and the picture), analyses it once (cached
  by the SHA-256 of its bytes in Settings.track_cache_dir, the library's index there too), fits the
  plan to an edit of it (stages/compose/track/fit.py) and stores the edit as the attempt's edit.json;
- the AudioGenerator: :func:`render_segment` renders one segment's slice of that edit;
- the AVOperator: :func:`edit_figures` for metrics["music_edit"].

Layering: stages/plan may not import stages/compose, so the fit happens here, between the two.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from musicvid_core.domain.errors import BadInput, NotFound
from musicvid_core.domain.features import VideoFeatures
from musicvid_core.domain.job import Job
from musicvid_core.domain.plan import MusicChoice, Plan
from musicvid_core.services import Services

if TYPE_CHECKING:  # numpy only where audio is handled: the API's Lambda does not carry it
    import numpy as np

log = logging.getLogger(__name__)

RECORDING_KINDS = ("library", "track")
RESEED = 7919  # a segment re-roll of attempt N re-edits with seed + N x RESEED (another choice each time)
RETRIES = 4  # a whole regeneration tries this many more seeds for an edit unlike the previous attempt's
MAX_LISTED = 12  # track names listed in an unknown-track error


def wants_recording(job: Job) -> bool:
    """Whether the job's music is a real recording (the ``music`` option's kind library or track)."""
    music = job.options.music
    return music is not None and music.kind in RECORDING_KINDS


def _cache(services: Services) -> Path:
    path = Path(services.settings.track_cache_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def track_key(services: Services, value: str) -> str:
    """The object key a ``music.track`` names: a key as given, or the key of this store's URI."""
    return services.objects.key_from_uri(value) if "://" in value else value


def _fetch(services: Services, key: str, tmp: Path) -> Path:
    """A readable local path for the object ``key``: in place for the folder store, else downloaded.
    BadInput when the object does not exist."""
    path = services.objects.local_path(key)
    if path is not None and path.is_file():
        return path
    try:
        return services.objects.get_file(key, tmp / ("track" + Path(key).suffix))
    except NotFound:
        raise BadInput(f"the music track {Path(key).name} does not exist (upload it first)") from None


def library_tracks(services: Services, name: str | None = None):
    """The library's tracks (bundled + Settings.library), only ``name``'s (case-insensitive stem)
    when given; BadInput for an unknown name."""
    from musicvid_core.stages.compose.track.library import list_tracks

    folders = [services.settings.library] if services.settings.library else []
    tracks = list_tracks(folders)
    if name is None:
        return tracks
    found = [t for t in tracks if t.path.stem.lower() == name.lower()]
    if not found:
        names = sorted(t.path.stem for t in tracks)
        more = f", ... ({len(names)} in all)" if len(names) > MAX_LISTED else ""
        raise BadInput(f"no library track named {name!r}; the library has: {', '.join(names[:MAX_LISTED])}{more}")
    return found[:1]


def track_file(services: Services, music: MusicChoice, tmp: Path) -> Path:
    """The local file of the plan's recording: the user's upload, or the library track of that name
    (BadInput when it is gone, or when its bytes are no longer those the plan was made from)."""
    from musicvid_core.stages.compose.track.audio import file_sha256

    if music.kind == "track":
        path = _fetch(services, track_key(services, music.track), tmp)
    else:
        path = library_tracks(services, music.track)[0].path
    if music.sha256 and file_sha256(path) != music.sha256:
        raise BadInput(f"the music track {music.title or music.track} changed since the plan was made: "
                       "regenerate the job whole")
    return path


def _choose(services: Services, job: Job, plan: Plan, features: VideoFeatures, tmp: Path):
    """(MusicChoice, TrackAnalysis) of the job's music option for a new edit."""
    from musicvid_core.stages.compose.track.analysis import analyse_file
    from musicvid_core.stages.compose.track.choose import choose_track
    from musicvid_core.stages.compose.track.fit import picture_cuts
    from musicvid_core.stages.compose.track.library import build_index

    music = job.options.music
    if music.kind == "track":
        key = track_key(services, music.track)
        path = _fetch(services, key, tmp)
        analysis = analyse_file(path, cache_dir=_cache(services))
        # the user's file name where the entry point passed it (display text only); else the
        # server-made name of the upload, which the job view calls "Your track"
        title = music.title or Path(key).name
        return MusicChoice(kind="track", track=key, title=title, why="your own track"), analysis
    index = build_index(library_tracks(services, music.track), _cache(services))
    cuts, _ = picture_cuts(features, plan.duration)
    choice = choose_track(index, prompt=job.prompt, duration=plan.duration, cuts=cuts,
                          energy=features.motion.values, seed=job.seed)
    why = f"asked for by name ({choice.why})" if music.track else choice.why
    picked = MusicChoice(kind="library", track=choice.track.name, title=choice.track.name, why=why,
                         score=choice.score)
    return picked, choice.track.analysis


def fit_recording(services: Services, job: Job, plan: Plan, features: VideoFeatures, tmp: Path) -> Plan:
    """The plan fitted to an edit of the job's recording, the edit stored at the attempt's
    ``edit`` key. A one-segment re-roll keeps the previous attempt's track and re-edits only that
    segment's bars; anything else chooses (library) or reads (track) the recording and edits it
    whole with the job's seed (a whole regeneration that comes out as the previous attempt's edit
    tries up to RETRIES further seeds: "regenerate" means another edit where the track allows one).
    Raises BadInput for a missing, unusable or changed track, an unknown library track, or a
    video too short for the track's bar and ending."""
    from musicvid_core.stages.compose.track.analysis import analyse_file
    from musicvid_core.stages.compose.track.edit import Edit
    from musicvid_core.stages.compose.track.fit import fit_plan

    rate = services.settings.sample_rate
    reroll = job.reroll
    if reroll is not None:
        if plan.music is None:
            raise BadInput("the plan re-rolled was not made from a recording: regenerate the job whole")
        try:
            previous = Edit.model_validate_json(services.objects.get_bytes(job.layout.at(reroll.attempt).edit))
        except NotFound:
            raise BadInput("the previous attempt's edit is gone: regenerate the job whole") from None
        analysis = analyse_file(track_file(services, plan.music, tmp), cache_dir=_cache(services))
        fitted, edit = fit_plan(plan, features, analysis, plan.music, sample_rate=rate,
                                seed=job.seed + job.attempt * RESEED, previous=previous, reroll=reroll.segment)
    else:
        choice, analysis = _choose(services, job, plan, features, tmp)
        fitted, edit = fit_plan(plan, features, analysis, choice, sample_rate=rate, seed=job.seed)
        before = _previous_edit(services, job)
        for k in range(1, RETRIES + 1):  # a regeneration plays another edit where the track allows one
            if before is None or (before.track_sha256, before.bars) != (edit.track_sha256, edit.bars):
                break
            fitted, edit = fit_plan(plan, features, analysis, choice, sample_rate=rate, seed=job.seed + k * RESEED)
    services.objects.put_bytes(job.layout.edit, edit.model_dump_json().encode(), "application/json")
    log.info("job %s: %s, %d bars, %d seams", job.job_id, fitted.music.why, len(edit.bars), len(edit.seams))
    return fitted


def _previous_edit(services: Services, job: Job):
    """The edit of the attempt that made the job's current plan (a whole regeneration's
    predecessor), or None (a first run, a composed plan, or gone)."""
    from musicvid_core.domain.layout import ArtifactLayout
    from musicvid_core.stages.compose.track.edit import Edit

    if job.attempt <= 1 or not job.plan_url:
        return None
    source = ArtifactLayout.holding(services.objects.key_from_uri(job.plan_url))
    if source is None or source.job_id != job.job_id or source.attempt == job.attempt:
        return None
    try:
        return Edit.model_validate_json(services.objects.get_bytes(source.edit))
    except (NotFound, ValueError):
        return None


def load_edit(services: Services, job: Job):
    """The attempt's Edit (stages/compose/track/edit.py)."""
    from musicvid_core.stages.compose.track.edit import Edit

    return Edit.model_validate_json(services.objects.get_bytes(job.layout.edit))


def render_segment(services: Services, job: Job, plan: Plan, index: int, tmp: Path) -> np.ndarray:
    """Segment ``index``'s clip: its exact slice of the attempt's edit, float32 (samples, 2) at the
    edit's rate, rendered from the track decoded at that rate."""
    from musicvid_core.stages.compose.track.audio import load_track
    from musicvid_core.stages.compose.track.fit import segment_samples
    from musicvid_core.stages.compose.track.render import render_span

    edit = load_edit(services, job)
    source = load_track(track_file(services, plan.music, tmp), edit.sample_rate)
    start, end = segment_samples(plan, index, edit.sample_rate)
    return render_span(edit, source, start, end)


def edit_figures(services: Services, job: Job, plan: Plan, clips: list[Path], tmp: Path, *,
                 measure: bool) -> dict:
    """metrics["music_edit"]: the edit's own figures (planned hit rates ±70 ms, seams, largest
    stretch, longest repeat, ``length_error_samples`` of the clips against the edit) and, with
    ``measure``, metrics/edit.py's report on the music the clips make (hit rates of the beats and
    bar lines re-detected on it, seam z-scores, exact length) under ``measured``."""
    import soundfile as sf

    from musicvid_core.stages.compose.track.fit import edl_figures

    edit = load_edit(services, job)
    cuts, strong = edit.cuts, edit.strong  # what the edit aimed at
    out = edl_figures(edit, cuts=cuts, strong=strong)
    out["length_error_samples"] = sum(sf.info(str(p)).frames for p in clips) - edit.n_samples
    out.update(track=plan.music.title, why=plan.music.why)
    if measure:
        import numpy as np

        from musicvid_core.metrics.edit import bar_line_flux, edit_report
        from musicvid_core.stages.compose.track.analysis import analyse_file
        from musicvid_core.stages.compose.track.audio import load_track

        music = np.concatenate([sf.read(str(p), dtype="float32", always_2d=True)[0] for p in clips])
        path = track_file(services, plan.music, tmp)
        analysis = analyse_file(path, cache_dir=_cache(services))
        source = load_track(path, edit.sample_rate)
        reference = bar_line_flux(source, edit.sample_rate, [b.start for b in analysis.bars])
        report = edit_report(music, edit.sample_rate, expected_samples=edit.n_samples, cuts=cuts, strong=strong,
                             seams_s=edit.seams, seam_bars=edit.seam_bars, reference_flux=reference)
        out["measured"] = report
        for name in ("cut_beat_hit_rate", "strong_downbeat_hit_rate", "seam_z_median", "seam_z_max"):
            out[name] = report.get(name)
    return out
