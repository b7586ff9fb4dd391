"""Experiments: the package-side work the notebooks call (so every notebook cell stays one or two
calls): services, sample videos, scoring a video (one job -> one results row), prompt grids and mix
sweeps.

A notebook imports this one module (``from musicvid_core.lab import experiments as ex``): it also
re-exports the run-folder and table helpers the notebooks use (:func:`start` from
:mod:`musicvid_core.lab.runs`; :func:`table`, :func:`write_table`, :func:`read_table` from
:mod:`musicvid_core.lab.tables`). Rows follow :data:`~musicvid_core.lab.tables.COLUMNS`; the music-fit
columns stay empty if ``musicvid_core.metrics.music`` is absent.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicvid_core.bootstrap import build_services
from musicvid_core.domain.errors import BadInput, ExperimentError, MusicVidError
from musicvid_core.domain.job import Job, Status
from musicvid_core.lab.runs import NAME_RE, project_root, start
from musicvid_core.lab.tables import COLUMNS, MUSIC_COLUMNS, read_table, table, write_table
from musicvid_core.services import Services
from musicvid_core.settings import Settings

# The notebooks' names for the helpers that live in runs.py and tables.py (one import per notebook).
__all__ = ["SAMPLES", "MixSweep", "Scored", "ensure_completed", "failure_row", "features_of", "heard_beats",
           "job_row", "mix_sweep", "music_columns", "music_from_report", "plan_columns", "prompt_grid",
           "read_table", "sample_video", "score", "services", "start", "table", "video_or_sample",
           "write_table"]


def services() -> Services:
    """Services from the environment (``MUSICVID_*``; jobs land in MUSICVID_HOME like the CLI's)."""
    return build_services(Settings())


# ---------------------------------------------------------------------------------------------
# sample media (generated offline when absent)
# ---------------------------------------------------------------------------------------------
# name -> make_video keywords: short clips (6-8 s), small frames, so the notebooks' defaults run in
# well under a minute. Cut times are known (the cumulative scene durations).
SAMPLES: dict[str, dict] = {
    "cuts_speech.mp4": dict(scene_durations=(2.5, 2.0, 3.5), size=(480, 270), fps=25, audio="speech"),
    "cuts_tone.mp4": dict(scene_durations=(2.0, 2.0, 2.0), size=(320, 180), fps=25, audio="tone"),
    "no_audio.mp4": dict(scene_durations=(3.0, 3.0), size=(320, 180), fps=24, audio="none"),
    "music_in_source.mp4": dict(scene_durations=(3.0, 3.0), size=(320, 180), fps=25, audio="music"),
}


def sample_video(name: str = "cuts_speech.mp4", folder: str | Path | None = None) -> Path:
    """Path of a sample video from :data:`SAMPLES`, made with ffmpeg lavfi (and espeak-ng where
    installed) into ``data/samples/notebooks/`` the first time. BadInput for an unknown name."""
    from musicvid_core.lab.samples import make_video

    if name not in SAMPLES:
        raise BadInput(f"unknown sample {name!r}; choose one of: {', '.join(SAMPLES)}")
    folder = Path(folder) if folder else project_root() / "data" / "samples" / "notebooks"
    path = folder / name
    if not path.is_file():
        tmp = path.with_name(f".{os.getpid()}-{name}")  # another process may be making it too
        make_video(tmp, **SAMPLES[name])
        os.replace(tmp, path)
    return path


def video_or_sample(video: str, sample: str = "cuts_speech.mp4") -> Path:
    """``video`` as a path when given, else the sample video ``sample``. BadInput if missing."""
    if not video:
        return sample_video(sample)
    path = Path(video).expanduser()
    if not path.is_file():
        raise BadInput(f"no such video: {path}")
    return path


# ---------------------------------------------------------------------------------------------
# results rows and tables
# ---------------------------------------------------------------------------------------------
def _weighted_mode(pairs: Iterable[tuple[Any, float]]) -> Any:
    totals: dict[Any, float] = {}
    for value, weight in pairs:
        totals[value] = totals.get(value, 0.0) + weight
    return max(totals, key=totals.get) if totals else None


def plan_columns(plan) -> dict:
    """Style and key (the ones covering most of the video), tempo (bpm, duration-weighted mean),
    segment count and scene cut count of a Plan."""
    segs = plan.segments
    return {"duration_s": round(plan.duration, 3), "segments": len(segs),
            "style": _weighted_mode((s.style, s.duration) for s in segs),
            "bpm": round(sum(s.bpm * s.duration for s in segs) / plan.duration, 1),
            "key": _weighted_mode((s.key, s.duration) for s in segs),
            "cuts": len(plan.cuts)}


def music_columns(audio: str | Path | None, plan) -> dict:
    """The music-fit columns measured on the rendered music (``audio``: the music stem WAV, sample
    0 = the video's first frame) against the plan's cuts, tempi and keys, by
    ``musicvid_core.metrics.music`` (librosa beat tracking, Krumhansl key profiles). Every column is
    None when that module is absent or the audio cannot be measured (``music_error`` says why)."""
    out: dict[str, Any] = dict.fromkeys(MUSIC_COLUMNS)
    if audio is None or plan is None:
        return out
    try:
        from musicvid_core.metrics import music as music_metrics  # the music issue's measurements, when present
    except ImportError:
        return out
    import soundfile as sf

    try:
        samples, rate = sf.read(str(audio), dtype="float32", always_2d=True)
        report = music_metrics.music_report(samples, rate, plan)
    except (MusicVidError, ValueError, RuntimeError) as exc:
        return {**out, "music_error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
    return {**out, **music_from_report(report, plan)}


def music_from_report(report: Mapping[str, Any], plan) -> dict:
    """The table's music columns from a ``metrics.music.music_report`` dict: hit rate (0..1),
    median cut-to-beat distance (ms), measured tempo (bpm, duration-weighted over segments), the
    measured key of the longest segment, the share of segments within 2 % of their tempo, and the
    share whose mode matches the plan's."""
    median = report.get("cut_beat_median_distance_s")
    segs = {s.index: s for s in plan.segments}
    measured = [(s.get("bpm_estimated"), segs[s["index"]].duration) for s in report.get("segments", [])
                if s.get("index") in segs]
    weighted = [(b, d) for b, d in measured if b is not None]
    keys = [(s.get("key_estimated"), segs[s["index"]].duration) for s in report.get("segments", [])
            if s.get("index") in segs and s.get("key_estimated")]
    return {"hit_rate": report.get("cut_beat_hit_rate"),
            "median_cut_beat_ms": None if median is None else round(1000.0 * float(median), 1),
            "tempo_measured_bpm": round(sum(b * d for b, d in weighted) / sum(d for _, d in weighted), 1)
            if weighted else None,
            "key_measured": max(keys, key=lambda kd: kd[1])[0] if keys else None,
            "tempo_within_2pct": report.get("tempo_within_2pct"),
            "mode_agreement": report.get("mode_agreement")}


def heard_beats(music: str | Path, plan=None) -> list[float]:
    """Beat times (seconds) librosa's tracker hears in a music stem (for the timeline figure);
    empty when ``musicvid_core.metrics.music`` is not installed."""
    try:
        from musicvid_core.metrics import music as music_metrics
    except ImportError:
        return []
    import soundfile as sf

    samples, rate = sf.read(str(music), dtype="float32", always_2d=True)
    spans = music_metrics.plan_tempo_spans(plan) if plan is not None else None
    return [float(t) for t in music_metrics.detect_beats(samples, rate, tempo_spans=spans)]


def job_row(svc: Services, job: Job, *, label: str = "", video: str | Path = "", elapsed_s: float | None = None,
            stems_dir: str | Path | None = None, output: str | Path | None = None, measure_music: bool = True,
            **extra) -> dict:
    """One results row for a finished job: what was asked, what happened (status and, for a
    failure, its type, stage and one-line reason), what the plan chose and what was measured on the
    output (loudness in LUFS/dBTP/LU, the speech-to-music difference in LU, the music fit, measured
    on ``stems_dir/music.wav`` unless ``measure_music`` is false)."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(label=label, video=str(video), prompt=job.prompt, seed=job.seed, status=job.status.value,
               job_id=job.job_id, elapsed_s=None if elapsed_s is None else round(elapsed_s, 2),
               target_lufs=svc.settings.target_lufs if job.options.target_lufs is None else job.options.target_lufs)
    if job.error:
        row.update(error_type=job.error.type, error=job.error.message, stage=job.error.stage)
    plan = None
    if job.plan_url and job.status == Status.COMPLETED:
        from musicvid_core.domain.plan import Plan

        plan = Plan.parse(svc.objects.get_bytes(svc.objects.key_from_uri(job.plan_url)).decode())
        row.update(plan_columns(plan))
    m = job.metrics or {}
    row.update({k: m.get(k) for k in ("integrated_lufs", "true_peak_dbtp", "lra_lu", "duck_db") if k in m})
    if isinstance(m.get("speech_music"), dict):
        row["speech_music_lu"] = m["speech_music"].get("speech_music_lu")
    if isinstance(m.get("music"), dict) and plan is not None:  # the pipeline's own music metrics, if kept
        row.update({k: v for k, v in music_from_report(m["music"], plan).items() if v is not None})
    if output is not None:
        row["output"] = str(output)
    music = Path(stems_dir) / "music.wav" if stems_dir else None
    if measure_music and plan is not None and row["hit_rate"] is None and music is not None and music.is_file():
        row.update({k: v for k, v in music_columns(music, plan).items() if v is not None})
    row.update(extra)
    return row


def failure_row(*, label: str = "", video: str | Path = "", prompt: str = "", seed: int | None = None,
                error: BaseException, stage: str = "submit", elapsed_s: float | None = None, **extra) -> dict:
    """A results row for an input that never became a finished job (missing file, bad option…)."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    message = str(error) if isinstance(error, MusicVidError) else f"{' '.join(str(error).split())[:300]}"
    row.update(label=label, video=str(video), prompt=prompt, seed=seed, status="FAILED",
               error_type=type(error).__name__, error=message, stage=stage,
               elapsed_s=None if elapsed_s is None else round(elapsed_s, 2), **extra)
    return row


# ---------------------------------------------------------------------------------------------
# scoring (what 01 and 02 call)
# ---------------------------------------------------------------------------------------------
@dataclass
class Scored:
    job: Job
    row: dict
    output: Path | None  # the scored video, copied into the run folder
    stems: Path | None  # its stems folder (music/original/master WAVs + plan.json)

    @property
    def plan(self):
        from musicvid_core.domain.plan import Plan

        return Plan.parse((self.stems / "plan.json").read_text()) if self.stems else None


def score(svc: Services, video: str | Path, prompt: str, *, seed: int = 0, out_dir: str | Path,
          label: str = "", options: Mapping[str, Any] | None = None, keep_stems: bool = True,
          measure_music: bool = True) -> Scored:
    """Score ``video`` with ``prompt`` through the same job pipeline as ``musicvid run`` (stems
    kept for measuring), copy the output (and with ``keep_stems`` the stems and plan) into
    ``out_dir/<label>/`` and return the job, its results row and the paths. A failed job is returned
    with its reason in the row (status FAILED), not raised; BadInput (missing file, bad option) is
    raised before anything runs."""
    import tempfile

    from musicvid_core.workflow import submit as service
    t0 = time.monotonic()
    label = label or NAME_RE.sub("_", f"{Path(video).stem}-{prompt[:24]}-s{seed}").strip("_")
    user = svc.settings.user
    uri = service.upload_file(svc, video, user)
    job = service.submit_new(svc, uri, prompt, user, seed=seed, options={"stems": True, **(options or {})})
    job = service.run(svc, job)
    job_s = time.monotonic() - t0
    dest = Path(out_dir) / label
    output = stems = None
    with tempfile.TemporaryDirectory(prefix="mv-stems-") as scratch:
        if job.status == Status.COMPLETED:
            dest.mkdir(parents=True, exist_ok=True)
            src = service.output_path(svc, job)
            output = Path(shutil.copyfile(src, dest / f"output{src.suffix}"))
            stems = dest / "stems" if keep_stems else Path(scratch)
            service.export_stems(svc, job, stems)
        t_measure = time.monotonic()
        row = job_row(svc, job, label=label, video=video, elapsed_s=job_s, stems_dir=stems, output=output,
                      measure_music=measure_music)
        row["measure_s"] = round(time.monotonic() - t_measure, 2)  # music metrics (beat tracking, key)
    return Scored(job=job, row=row, output=output, stems=stems if keep_stems else None)


def ensure_completed(scored: Scored) -> Scored:
    """``scored`` when its job completed; ExperimentError with the job's reason when it failed."""
    if scored.job.status != Status.COMPLETED:
        e = scored.job.error
        reason = f"{e.type} at {e.stage}: {e.message}" if e else "unknown reason"
        raise ExperimentError(f"the job failed: {reason}", job_id=scored.job.job_id)
    return scored


def features_of(svc: Services, job: Job):
    """The measured video features a job's analysis stored (VideoFeatures)."""
    from musicvid_core.workflow.steps import load_features

    return load_features(svc, job)


def prompt_grid(svc: Services, videos: Sequence[str | Path], prompts: Sequence[str], seeds: Sequence[int], *,
                out_dir: str | Path, options: Mapping[str, Any] | None = None) -> list[Scored]:
    """Every video × prompt × seed scored (see :func:`score`); labels ``v<i>-p<j>-s<seed>``."""
    if not videos or not prompts or not seeds:
        raise BadInput("the grid needs at least one video, one prompt and one seed")
    results = []
    for i, video in enumerate(videos):
        for j, prompt in enumerate(prompts):
            for seed in seeds:
                results.append(score(svc, video, prompt, seed=int(seed), out_dir=out_dir,
                                     label=f"v{i}-p{j}-s{seed}", options=options))
    return results


# ---------------------------------------------------------------------------------------------
# mixing sweeps (what 03 calls): analyse, plan and compose once, mix many times
# ---------------------------------------------------------------------------------------------
MIX_PARAMETERS = ("duck_db", "fade_in_s", "fade_out_s", "crossfade_s", "loudness")


@dataclass
class MixSweep:
    features: Any  # VideoFeatures
    plan: Any  # Plan (the base plan every variant changes)
    rows: list[dict]
    variants: dict[str, Path]  # label -> variant folder (output + stems)


def mix_sweep(svc: Services, video: str | Path, prompt: str, *, seed: int = 0, out_dir: str | Path,
              grid: Mapping[str, Sequence[Any]]) -> MixSweep:
    """Mix one video's music under every combination of ``grid`` values (keys from
    :data:`MIX_PARAMETERS`: duck depth in dB, fade in/out and segment crossfade in seconds, loudness
    preset name). The music is planned and rendered once (the plan's values are what the grid
    overrides), then mixed per variant with the production mixer, stems kept; every output is
    measured (loudness, speech-to-music difference). BadInput for an unknown parameter or value."""
    import itertools

    from musicvid_core.domain.job import clean_prompt
    from musicvid_core.stages.analyse.features import analyze
    from musicvid_core.stages.mix.compose import compose, output_suffix
    from musicvid_core.stages.mix.presets import job_options

    unknown = sorted(set(grid) - set(MIX_PARAMETERS))
    if unknown:
        raise BadInput(f"unknown mix parameter(s) {', '.join(unknown)}; choose from {', '.join(MIX_PARAMETERS)}")
    keys = [k for k in MIX_PARAMETERS if k in grid and list(grid[k])]
    for k in keys:  # every value checked before the (slow) analysis and render
        for v in grid[k]:
            if k == "loudness":
                job_options({"loudness": v})
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= float(v) <= 60:
                raise BadInput(f"mix parameter {k} takes numbers from 0 to 60, got {v!r}")
    video = Path(video)
    if not video.is_file():
        raise BadInput(f"no such video: {video}")
    timeout = svc.settings.ffmpeg_timeout_s
    features = analyze(video, timeout=timeout)
    plan = svc.planner.plan(features, clean_prompt(prompt), seed)
    out_dir = Path(out_dir)
    clip_dir = out_dir / "clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    from musicvid_core.media import write_float_wav

    # Clips carry a release tail of plan.crossfade_s; a sweep over crossfades renders per length.
    clips_for: dict[float, list[Path]] = {}

    def clips(p) -> list[Path]:
        if p.crossfade_s not in clips_for:
            paths = []
            for i in range(len(p.segments)):
                path = clip_dir / f"xf{p.crossfade_s:g}-{i:03d}.wav"
                write_float_wav(path, svc.generator.generate(p, i, seed), svc.generator.sample_rate)
                paths.append(path)
            clips_for[p.crossfade_s] = paths
        return clips_for[p.crossfade_s]

    rows, variants = [], {}
    for values in itertools.product(*[list(grid[k]) for k in keys]):
        setting = dict(zip(keys, values))
        # labels name only what varies (every variant shares the rest)
        label = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in setting.items() if len(set(grid[k])) > 1) or "plan defaults"
        opts = job_options({"loudness": setting.get("loudness")})
        try:
            update = {k: float(v) for k, v in setting.items() if k != "loudness"}
            variant = type(plan).parse(plan.model_copy(update=update).model_dump())  # validate the values
        except (MusicVidError, TypeError, ValueError) as exc:
            raise BadInput(f"mix variant {label}: {exc}") from None
        folder = out_dir / NAME_RE.sub("_", label).strip("_")
        t0 = time.monotonic()
        out = folder / f"output{output_suffix(video)}"
        metrics = compose(video, features.media, variant, clips(variant), out,
                          target_lufs=opts.get("target_lufs", svc.settings.target_lufs),
                          true_peak_dbtp=opts.get("true_peak_dbtp", svc.settings.true_peak_dbtp),
                          sample_rate=svc.settings.sample_rate, audio_bitrate=svc.settings.audio_bitrate,
                          timeout=timeout, stems_dir=folder / "stems")
        row = dict.fromkeys(COLUMNS)
        row.update(label=label, video=str(video), prompt=plan.prompt, seed=seed, status="COMPLETED",
                   output=str(out), elapsed_s=round(time.monotonic() - t0, 2),
                   target_lufs=metrics.get("target_lufs"), **plan_columns(variant))
        row.update({k: metrics.get(k) for k in ("integrated_lufs", "true_peak_dbtp", "lra_lu", "duck_db")})
        sm = metrics.get("speech_music") or {}
        row.update(speech_music_lu=sm.get("speech_music_lu"), recovery_lu=sm.get("recovery_lu"))
        row.update({f"param_{k}": v for k, v in setting.items()})
        rows.append(row)
        variants[label] = folder
    (out_dir / "plan.json").write_text(plan.model_dump_json(indent=1))
    return MixSweep(features=features, plan=plan, rows=rows, variants=variants)
