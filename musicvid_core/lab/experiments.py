"""Experiments: papermill runs of the notebooks, the tidy results tables they write, and the
package-side work the notebooks call (so every notebook cell stays one or two calls).

``musicvid experiment NOTEBOOK -p name value …`` (:func:`run_notebook`) executes a notebook into
``data/runs/<timestamp>-<name>/``: the executed notebook, its outputs and ``results.csv`` (plus
``results.parquet`` when asked). papermill, pandas and pyarrow come with the ``[notebooks]`` extra
and are imported on use.

Results tables are tidy: one row per run (video × prompt × seed, or one mix variant), the columns
of :data:`COLUMNS` first. The music-fit columns (``hit_rate``: share of scene cuts within ±70 ms of
a beat heard in the music; ``median_cut_beat_ms``; ``tempo_measured_bpm``; ``key_measured``;
``tempo_within_2pct``; ``mode_agreement``) are measured on the music stem by
``musicvid_core.metrics.music`` (stay empty if that module is absent).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicvid_core.bootstrap import build_services
from musicvid_core.domain.errors import BadInput, ConfigurationError, ExperimentError, MusicVidError
from musicvid_core.domain.job import Job, Status
from musicvid_core.services import Services
from musicvid_core.settings import Settings

# The columns every results table starts with (others follow: sweep parameters, extras).
COLUMNS = ["label", "video", "prompt", "seed", "status", "error_type", "error", "stage", "job_id", "output",
           "duration_s", "segments", "style", "bpm", "key", "cuts",
           "integrated_lufs", "true_peak_dbtp", "lra_lu", "target_lufs", "speech_music_lu", "duck_db",
           "hit_rate", "median_cut_beat_ms", "tempo_measured_bpm", "key_measured", "tempo_within_2pct",
           "mode_agreement", "elapsed_s", "measure_s"]
MUSIC_COLUMNS = ("hit_rate", "median_cut_beat_ms", "tempo_measured_bpm", "key_measured", "tempo_within_2pct",
                 "mode_agreement")
RESULTS_NAME = "results"
DEFAULT_KERNEL = "python3"  # the ipykernel of the interpreter running papermill (this venv)
_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


# ---------------------------------------------------------------------------------------------
# where things live
# ---------------------------------------------------------------------------------------------
def project_root(start: str | Path | None = None) -> Path:
    """The checkout this runs in: the nearest folder (from ``start``, default the current one, up)
    holding both ``pyproject.toml`` and ``notebooks/``; else the checkout this package was installed
    from in editable mode; else the current folder."""
    here = Path(start or Path.cwd()).resolve()
    package_checkout = Path(__file__).resolve().parents[1]
    for folder in (here, *here.parents, package_checkout):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return here


def runs_root() -> Path:
    """Where runs go: ``$MUSICVID_RUNS_DIR``, else ``data/runs`` of the project."""
    configured = Settings().runs_dir
    return Path(configured).expanduser().resolve() if configured else project_root() / "data" / "runs"


def new_run_dir(name: str, root: str | Path | None = None) -> Path:
    """A fresh ``<root>/<YYYYmmdd-HHMMSS>-<name>/`` (a numeric suffix when two start in one second)."""
    root = Path(root) if root else runs_root()
    stem = f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{_NAME_RE.sub('_', name).strip('_') or 'run'}"
    for i in range(1000):
        path = root / (stem if i == 0 else f"{stem}-{i + 1}")
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise ExperimentError(f"cannot make a run folder under {root}")


def start(output_dir: str, name: str) -> Path:
    """The folder a notebook writes to: ``output_dir`` when set (papermill runs pass their run
    folder), else a fresh run folder named ``name`` (a notebook opened in Jupyter)."""
    if output_dir:
        path = Path(output_dir).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve()
    return new_run_dir(name)


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
               target_lufs=job.settings.get("target_lufs", svc.settings.target_lufs))
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
    label = label or _NAME_RE.sub("_", f"{Path(video).stem}-{prompt[:24]}-s{seed}").strip("_")
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
        folder = out_dir / _NAME_RE.sub("_", label).strip("_")
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


# ---------------------------------------------------------------------------------------------
# running notebooks with papermill
# ---------------------------------------------------------------------------------------------
def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def find_notebook(name: str | Path) -> Path:
    """A notebook by path, or by name in ``notebooks/`` (``01_quickstart``, ``quickstart``,
    ``01``). BadInput naming the choices when nothing matches."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    folder = notebooks_dir()
    found = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    stem = path.name.removesuffix(".ipynb")
    for nb in found:
        parts = nb.stem.split("_", 1)
        if stem in (nb.stem, parts[0], parts[-1]):
            return nb
    choices = ", ".join(nb.stem for nb in found) or "none found"
    raise BadInput(f"no notebook {str(name)!r}; choose one of: {choices}")


def notebook_parameters(notebook: str | Path) -> dict[str, dict]:
    """The notebook's ``parameters`` cell: name -> {type, default, help}. ExperimentError when it
    has none (every musicvid notebook has exactly one)."""
    import papermill

    nb = find_notebook(notebook)
    tagged = [c for c in json.loads(nb.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ExperimentError(f"{nb.name} must have exactly one cell tagged 'parameters' (found {len(tagged)})")
    found = papermill.inspect_notebook(str(nb))
    return {name: {"type": p.get("inferred_type_name"), "default": p.get("default"), "help": p.get("help", "")}
            for name, p in found.items()}


def coerce_parameters(raw: Mapping[str, Any], declared: Mapping[str, dict]) -> dict[str, Any]:
    """Values given as text on the command line, converted to each parameter's declared type
    (int, float, bool, str, list[...]: YAML/JSON text, a lone value becomes a one-item list).
    BadInput for an unknown name or a value of the wrong type."""
    import yaml

    out = {}
    for name, value in raw.items():
        if name not in declared:
            raise BadInput(f"unknown parameter {name!r}; this notebook takes: {', '.join(declared)}")
        kind = (declared[name].get("type") or "str").replace(" ", "")
        if not isinstance(value, str) or kind == "str":
            out[name] = value
            continue
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            raise BadInput(f"parameter {name}: cannot read {value!r} as {kind}") from None
        out[name] = _check_type(name, kind, parsed, value)
    return out


def _check_type(name: str, kind: str, parsed: Any, text: str) -> Any:
    base = kind.split("[", 1)[0]
    if base == "bool":
        if isinstance(parsed, bool):
            return parsed
    elif base == "int":
        if isinstance(parsed, int) and not isinstance(parsed, bool):
            return parsed
    elif base == "float":
        if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            return float(parsed)
    elif base == "list":
        items = parsed if isinstance(parsed, list) else [parsed]
        inner = kind[5:-1] if kind.startswith("list[") else ""
        return [_check_type(name, inner, item, str(item)) if inner else item for item in items]
    elif base == "dict":
        if isinstance(parsed, dict):
            return parsed
    else:
        return parsed
    raise BadInput(f"parameter {name} must be {kind}, got {text!r}")


@dataclass
class NotebookRun:
    dir: Path  # data/runs/<timestamp>-<name>/
    notebook: Path  # the executed notebook in it
    results: Path  # its results table
    rows: int  # rows in the results table
    seconds: float  # wall time of the execution


def run_notebook(notebook: str | Path, parameters: Mapping[str, Any] | None = None, *, name: str | None = None,
                 root: str | Path | None = None, kernel: str = DEFAULT_KERNEL, start_timeout: int = 120,
                 log_output: bool = False) -> NotebookRun:
    """Execute ``notebook`` with papermill into a fresh run folder ``<root>/<timestamp>-<name>/``
    (root: :func:`runs_root`; name: the notebook's) with ``parameters`` (text values are converted to
    the declared types, see :func:`coerce_parameters`) plus ``output_dir`` = the run folder. The
    kernel runs in the project folder, so relative paths mean the same as on the command line.

    Returns where the executed notebook and its results table are. Raises BadInput for an unknown
    notebook or parameter, ExperimentError when a cell fails (with the cell's error; the partly
    executed notebook is kept in the run folder) or when no non-empty results table was written."""
    try:
        import papermill
    except ImportError:
        raise ConfigurationError("notebook runs need papermill: install the [notebooks] extra") from None
    nb = find_notebook(notebook)
    declared = notebook_parameters(nb)
    params = coerce_parameters(dict(parameters or {}), declared)
    if "output_dir" not in declared:
        raise ExperimentError(f"{nb.name} has no output_dir parameter to write its results to")
    run_dir = new_run_dir(name or nb.stem, root)
    params["output_dir"] = str(run_dir)
    (run_dir / "parameters.json").write_text(json.dumps(params, indent=1, default=str))
    executed = run_dir / nb.name
    t0 = time.monotonic()
    try:
        papermill.execute_notebook(str(nb), str(executed), parameters=params, kernel_name=kernel,
                                   cwd=str(project_root()), progress_bar=False, log_output=log_output,
                                   start_timeout=start_timeout)
    except papermill.PapermillExecutionError as exc:
        reason = " ".join(str(exc.evalue).split())[:300]
        raise ExperimentError(f"{nb.name} failed in cell {exc.exec_count}: {exc.ename}: {reason} "
                              f"(executed notebook: {executed})", notebook=str(executed)) from None
    except Exception as exc:  # kernel missing or died: papermill and jupyter_client raise many types
        if isinstance(exc, MusicVidError):
            raise
        raise ExperimentError(f"could not run {nb.name}: {type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:300]}", notebook=str(executed)) from None
    seconds = time.monotonic() - t0
    results = next((p for p in (run_dir / f"{RESULTS_NAME}.parquet", run_dir / f"{RESULTS_NAME}.csv")
                    if p.is_file()), None)
    if results is None:
        raise ExperimentError(f"{nb.name} ran but wrote no results table into {run_dir}", notebook=str(executed))
    rows = len(read_table(results))
    if rows == 0:
        raise ExperimentError(f"{nb.name} wrote an empty results table ({results})", notebook=str(executed))
    return NotebookRun(dir=run_dir, notebook=executed, results=results, rows=rows, seconds=seconds)
