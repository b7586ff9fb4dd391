"""``musicvid``: the command line. Thin: parse, call musicvid_core, print.

Results go to stdout (``--json``: exactly one JSON object); progress and errors go to stderr.
Exit codes: 0 done, 1 the job failed (reason printed), 2 bad input or usage, 70 internal error.
"""

from __future__ import annotations

import atexit
import gc
import json
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

# Everything else is imported by the command that needs it (issue 18): `musicvid --help` loads no
# pydantic model, no settings and no pipeline, and `run` only what a run needs.
if TYPE_CHECKING:
    from musicvid_core.domain.options import JobOptions
    from musicvid_core.scoring import ScoreResult
    from musicvid_core.services import Services

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Put fitting music under a video: analyse, plan, compose, mix.")
jobs_app = typer.Typer(help="List your jobs, or show one.", invoke_without_command=True)
app.add_typer(jobs_app, name="jobs")
err = Console(stderr=True, highlight=False, soft_wrap=True)

STAGE_LABELS = {"Start": "start", "Analyze": "analyse video + plan", "GenerateAudio": "compose music",
                "Mix": "mix + master", "Summarize": "summary", "HandleFailure": "roll back"}


def _services(planner: str | None = None, generator: str | None = None) -> Services:
    """Services from the environment, with ``--planner``/``--generator`` over the settings
    (BadInput, exit 2, for a name no registry knows)."""
    from musicvid_core.bootstrap import build_services, configure_logging
    from musicvid_core.domain.errors import BadInput
    from musicvid_core.services import GENERATORS, PLANNERS
    from musicvid_core.settings import Settings

    overrides = {}
    for kind, name, registry in (("planner", planner, PLANNERS), ("generator", generator, GENERATORS)):
        if name:
            if name not in registry:
                raise BadInput(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}")
            overrides[kind] = name
    settings = Settings(**overrides)
    configure_logging(settings, "ERROR")
    services = build_services(settings)
    # Jobs a killed musicvid process left SCHEDULED or PROCESSING are settled by the next one.
    from musicvid_core.workflow.recovery import reconcile

    for job in reconcile(services):
        err.print(f"job {job.job_id} {job.status.value}: {job.error.message if job.error else ''}",
                  style="yellow", markup=False)
    return services


PLANNER_HELP = "planner: rules (default, offline), bedrock, bedrock-agent (default: MUSICVID_PLANNER)"
GENERATOR_HELP = "music generator: procedural (default, offline), sagemaker, musicgen-local (default: MUSICVID_GENERATOR)"


class _Progress:
    """Prints one line per pipeline stage (and per rendered segment) on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.entered: dict[str, float] = {}
        self.segments_done = 0
        self.lock = threading.Lock()

    def __call__(self, event: dict) -> None:
        if self.quiet:
            return
        kind, state = event.get("type"), event.get("state")
        with self.lock:
            if kind == "JobSubmitted":
                err.print(f"job {event['job_id']}")
            elif kind == "StateEntered" and state in STAGE_LABELS:
                self.entered[state] = time.monotonic()
                err.print(f"[dim]{time.monotonic() - self.t0:6.1f}s[/] {STAGE_LABELS[state]} …")
            elif kind == "StateEntered" and state == "SegmentDone":  # not each poll of an async one
                self.segments_done += 1
                err.print(f"[dim]{time.monotonic() - self.t0:6.1f}s[/]   segment {self.segments_done} rendered")
            elif kind == "TaskRetry":
                err.print(f"[yellow]retrying {state}[/] after {event.get('error')}")


def _emit(result: ScoreResult, as_json: bool) -> None:
    from musicvid_core.domain.job import Status

    job = result.job
    if as_json:
        print(result.to_json())
    elif result.ok:
        if job.summary:
            err.print(job.summary)
        print(result.output)
    if job.status == Status.FAILED:
        e = job.error
        reason = f"{e.type} at {e.stage}: {e.message}" if e else "unknown reason"
        err.print(f"[red]error:[/] job {job.job_id} failed: {escape(reason)}")
        raise typer.Exit(1)


LOUDNESS_HELP = "loudness preset: web (-14 LUFS), apple (-16), broadcast (-23); all -1 dBTP. Default web"
HIT_HELP = "an accent at this moment, seconds from the video start (repeatable): a downbeat with a crash or stab"
METRICS_HELP = ("measure the music (cut-beat hit rate, tempo, key, clicks) into the job's metrics; on with "
                "--json. The first measurement in a fresh install compiles librosa's beat tracker (~20 s)")
SOURCE_MUSIC_HELP = ("music already in the video's sound: keep it, duck it (ours leads by >= 10 LU) or "
                     "replace it (muted there). Default duck")
OUT_HELP = ("where to write the result; its extension picks the format: .mp4 .m4v .mov .mkv .webm "
            "(default: VIDEO_musicvid.EXT beside the input, in the input's format where it can carry the result, "
            "else .mkv). Never the input itself; an existing file is replaced only when the run succeeds")
MUSIC_HELP = ("your own music track (mp3 wav flac m4a/aac ogg/opus, at least ~8 s), edited to the picture: cuts "
              "on beats, strong cuts on bar lines, its ending on the last frame (docs/tracks.md)")
LIBRARY_HELP = ("a track from the music library (the [library] extra's and MUSICVID_LIBRARY's), chosen for the "
                "prompt and the picture (--seed breaks near-ties) and edited to it")
AUDIO_TRACK_HELP = ("the audio track (0-based) the music replaces and whose speech it ducks under; the others are "
                    "kept as they are. Default: the default-flagged track unless it is silent, else the first "
                    "that is not silent")


def _options(loudness: str | None, target_lufs: float | None, true_peak: float | None,
             **other) -> JobOptions:
    """Job options from the flags, validated before anything is uploaded (BadInput: exit 2):
    the preset resolved, explicit values over it, unset flags left out."""
    from musicvid_core.domain.options import JobOptions

    return JobOptions.parse({"loudness": loudness, "target_lufs": target_lufs, "true_peak_dbtp": true_peak,
                             **other})


@app.command()
def run(video: Path = typer.Argument(..., help="input video file"),
        prompt: str | None = typer.Option(None, "--prompt", "-p", help="what the music should be like "
                                          "(needed unless --music or --library)"),
        out: Path | None = typer.Option(None, "--out", "-o", help=OUT_HELP),
        seed: int = typer.Option(0, help="random seed: same seed, same music"),
        music: Path | None = typer.Option(None, "--music", help=MUSIC_HELP),
        library: bool = typer.Option(False, "--library", help=LIBRARY_HELP),
        library_track: str | None = typer.Option(None, "--library-track", help="with --library: this library "
                                                 "track (its file name without extension)"),
        loudness: str | None = typer.Option(None, help=LOUDNESS_HELP),
        target_lufs: float | None = typer.Option(None, help="integrated loudness target, LUFS (overrides the preset)"),
        true_peak: float | None = typer.Option(None, help="true-peak ceiling, dBTP (overrides the preset)"),
        stems: Path | None = typer.Option(None, help="also write the music, original and master stems "
                                                     "(WAV, as long as the video) and plan.json here"),
        source_music: str | None = typer.Option(None, help=SOURCE_MUSIC_HELP),
        preview: bool = typer.Option(False, "--preview", help="fast small proxy (360p, quick encodes) for "
                                                              "iteration; default out VIDEO_preview.EXT"),
        planner: str | None = typer.Option(None, "--planner", help=PLANNER_HELP),
        generator: str | None = typer.Option(None, "--generator", help=GENERATOR_HELP),
        hit: list[float] | None = typer.Option(None, "--hit", help=HIT_HELP),
        metrics: bool = typer.Option(False, "--metrics", help=METRICS_HELP),
        audio_track: int | None = typer.Option(None, "--audio-track", help=AUDIO_TRACK_HELP),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout "
                                                           "(with the music metrics)"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress on stderr")) -> None:
    """Score VIDEO end to end and write the result (default: VIDEO_musicvid.EXT beside it)."""
    # The Python API's score() is this command: `run --json` prints its result's as_dict().
    from musicvid_core.domain.errors import BadInput
    from musicvid_core.scoring import score

    if library_track is not None and music is not None:
        raise BadInput("--library-track picks a library track: give it without --music")
    result = score(video, prompt, out=out, seed=seed, loudness=loudness, target_lufs=target_lufs,
                   true_peak=true_peak, stems=stems, source_music=source_music, preview=preview, hits=hit,
                   music_metrics=as_json or metrics, audio_track=audio_track,
                   music=music, library=library_track or library,
                   services=_services(planner, generator), on_event=_Progress(quiet), check=False)
    _emit(result, as_json)


@app.command()
def analyze(video: Path = typer.Argument(..., help="input video file"),
            prompt: str = typer.Option(..., "--prompt", "-p", help="what the music should be like"),
            seed: int = typer.Option(0, help="random seed")) -> None:
    """Analyse VIDEO and print the music plan as JSON (nothing is rendered or stored)."""
    from musicvid_core.domain.errors import BadInput
    from musicvid_core.domain.job import clean_prompt
    from musicvid_core.media import local_input, timeout_for
    from musicvid_core.stages.analyse.features import analyze_video
    from musicvid_core.stages.analyse.probe import probe

    services = _services()
    if not video.is_file():
        raise BadInput(f"no such file: {video}")
    video = local_input(video)  # "a:b.mp4" is a file, not protocol "a"
    timeout = services.settings.ffmpeg_timeout_s
    media = probe(video, timeout=timeout)
    features = analyze_video(video, media, timeout=timeout_for(timeout, media.duration))
    plan = services.planner.plan(features, clean_prompt(prompt), seed)
    print(plan.model_dump_json(indent=1))


@app.command()
def regenerate(job_id: str = typer.Argument(..., help="the job to re-score"),
               prompt: str | None = typer.Option(None, "--prompt", "-p", help="the new prompt (default: "
                                                 "keep the job's; with --segment: for that segment only)"),
               segment: int | None = typer.Option(None, "--segment", help="re-roll only this segment "
                                                  "(0-based, as in the plan); the others stay bit-identical"),
               hit: list[float] | None = typer.Option(None, "--hit", help=HIT_HELP + " (replaces the job's; with "
                                                      "--segment only those inside it are used)"),
               metrics: bool = typer.Option(False, "--metrics", help=METRICS_HELP),
               seed: int | None = typer.Option(None, help="new seed (default: keep the job's)"),
               out: Path | None = typer.Option(None, "--out", "-o", help="copy the result here; its extension "
                                               "picks the format (.mp4 .m4v .mov .mkv .webm)"),
               loudness: str | None = typer.Option(None, help=LOUDNESS_HELP + " (default: keep the job's)"),
               target_lufs: float | None = typer.Option(None, help="integrated loudness target, LUFS"),
               true_peak: float | None = typer.Option(None, help="true-peak ceiling, dBTP"),
               source_music: str | None = typer.Option(None, help=SOURCE_MUSIC_HELP + " (default: keep the job's)"),
               preview: bool | None = typer.Option(None, "--preview/--full", help="a fast small proxy (the "
                                                   "picture is encoded once per job, then copied) or the full "
                                                   "render (default: as the job's last run)"),
               planner: str | None = typer.Option(None, "--planner", help=PLANNER_HELP),
               generator: str | None = typer.Option(None, "--generator", help=GENERATOR_HELP),
               as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
               quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Re-score a job with a new prompt (appended to its history), or re-roll one --segment (the
    others stay bit-identical). The previous output is kept until the new one succeeds."""
    from musicvid_core.scoring import finish
    from musicvid_core.stages.mix.container import format_for
    from musicvid_core.workflow import submit as service

    services = _services(planner, generator)
    container = format_for(out).ext.lstrip(".") if out is not None else None
    job = service.submit_regenerate(services, job_id, prompt, services.settings.user, seed=seed,
                                    options=_options(loudness, target_lufs, true_peak,
                                                     source_music=source_music, preview=preview,
                                                     music_metrics=as_json or metrics, container=container),
                                    segment=segment, hits=hit or None)
    job = service.run(services, job, _Progress(quiet))
    _emit(finish(services, job, out=out), as_json)


@jobs_app.callback()
def jobs(ctx: typer.Context,
         limit: int = typer.Option(20, help="how many, newest first"),
         as_json: bool = typer.Option(False, "--json", help="print a JSON list")) -> None:
    """List your jobs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    services = _services()
    found, _ = services.jobs.list_for_user(services.settings.user, limit=limit)
    if as_json:
        print(json.dumps([j.public() for j in found], indent=1))
        return
    if not found:
        err.print("no jobs yet: try `musicvid run VIDEO --prompt TEXT`")
    for j in found:
        print(f"{j.job_id}  {j.status.value:<10} {j.stage.value:<8} {j.created_at:%Y-%m-%d %H:%M}  "
              f"{j.prompt[:50]}")


@jobs_app.command("show")
def jobs_show(job_id: str = typer.Argument(...),
              as_json: bool = typer.Option(False, "--json", help="print the job as JSON")) -> None:
    """Show one job: status, stage, prompt history, error or output."""
    from musicvid_core.domain.job import Status
    from musicvid_core.workflow import submit as service

    services = _services()
    job = service.get_job(services, job_id, services.settings.user)
    if as_json:
        print(json.dumps(job.public(), indent=1))
        return
    print(f"job       {job.job_id}\nstatus    {job.status.value} ({job.stage.value})\n"
          f"operation {job.operation_type.value}, attempt {job.attempt}\ncreated   {job.created_at}")
    for i, p in enumerate(job.prompts, 1):
        print(f"prompt {i}  {p}")
    if job.error:
        print(f"error     {job.error.type} at {job.error.stage}: {job.error.message}")
    if job.status == Status.COMPLETED:
        print(f"output    {service.output_path(services, job)}")
    if job.summary:
        print(job.summary)


@app.command()
def demo(prompt: str = typer.Option("warm acoustic, slow build, big finish", "--prompt", "-p"),
         out_dir: Path = typer.Option(Path("data/out"), help="where the sample and result go")) -> None:
    """Make a sample video offline and score it (what `make demo` runs)."""
    from musicvid_core.lab.samples import make_video

    out_dir.mkdir(parents=True, exist_ok=True)
    err.print("making a 20 s sample video with 5 scenes (ffmpeg lavfi) …")
    sample = make_video(out_dir / "demo_input.mp4", (4, 3.5, 5, 4, 3.5), size=(640, 360), fps=30,
                        audio="speech")
    run(video=sample.path, prompt=prompt, out=out_dir / "demo_musicvid.mp4", seed=0, loudness=None,
        target_lufs=None, true_peak=None, stems=None, source_music=None, preview=False, planner=None,
        generator=None, hit=None, metrics=False, audio_track=None, as_json=False, quiet=False,
        music=None, library=False, library_track=None)


@app.command()
def serve(port: int = typer.Option(8000, help="TCP port (0: any free port)"),
          host: str = typer.Option("127.0.0.1", help="interface to listen on (loopback by default)"),
          public_url: str | None = typer.Option(None, help="URL clients use to reach this server "
                                                           "(upload/download links); default http://HOST:PORT")) -> None:
    """Serve the API (POST /uploads, POST /jobs, GET /jobs, GET /jobs/ID) on the embedded default.
    Tokens come from `musicvid token`; jobs run in the background (MUSICVID_WORKERS at once)."""
    from musicvid_core.api.server import make_server
    from musicvid_core.bootstrap import configure_logging
    from musicvid_core.domain.errors import BadInput
    from musicvid_core.settings import Settings

    try:
        settings = Settings()
        configure_logging(settings, "INFO")  # a server's log: every step of every job
        server, local = make_server(settings, host=host, port=port, public_url=public_url)
    except OSError as exc:
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    err.print(f"musicvid API on http://{host}:{server.port} ({local.launcher.workers} workers); "
              "Ctrl-C stops")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        local.launcher.shutdown(wait=False)


@app.command()
def token(user: str = typer.Option(..., "--user", "-u", help="the user id (the token's sub)"),
          ttl: int = typer.Option(3600, help="seconds until it expires", min=1, max=7 * 86400)) -> None:
    """Print a dev JWT for `musicvid serve`, signed by the local key kept under MUSICVID_HOME."""
    from musicvid_core.api.auth import mint_token
    from musicvid_core.settings import Settings

    settings = Settings()
    kwargs = {k: v for k, v in (("issuer", settings.auth_issuer), ("audience", settings.auth_audience)) if v}
    print(mint_token(settings.home, user, ttl_s=ttl, **kwargs))


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout")) -> None:
    """What this machine has and what musicvid will use (ffmpeg, SoundFont renderer and SoundFont,
    espeak-ng, torch/GPU, AWS, store), each missing piece with the command that fixes it. Exit 0
    when the embedded default can run, 1 otherwise."""
    from musicvid_core import doctor as checkup

    checks = checkup.run_checks()
    if as_json:
        print(json.dumps(checkup.report(checks), indent=1))
    else:
        Console(soft_wrap=False).print(checkup.table(checks))
    if not checkup.healthy(checks):
        raise typer.Exit(1)


def _pairs(args: list[str]) -> dict[str, str]:
    """``-p NAME VALUE`` (or ``--param``) pairs from the extra arguments (typer has no repeatable
    two-value option); BadInput for anything else."""
    from musicvid_core.domain.errors import BadInput

    out, i = {}, 0
    while i < len(args):
        if args[i] not in ("-p", "--param"):
            raise BadInput(f"unexpected argument {args[i]!r}: parameters are given as -p NAME VALUE")
        if i + 2 >= len(args):
            raise BadInput(f"{args[i]} needs a NAME and a VALUE")
        out[args[i + 1]] = args[i + 2]
        i += 3
    return out


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def experiment(ctx: typer.Context,
               notebook: str = typer.Argument(..., help="a notebook path, or its name in notebooks/ "
                                                         "(01_quickstart, quickstart, 01, ...); then -p NAME VALUE "
                                                         "per parameter (lists as JSON/YAML: -p seeds '[0, 1]')"),
               name: str | None = typer.Option(None, help="run name (default: the notebook's)"),
               runs_dir: Path | None = typer.Option(None, help="where run folders go (default data/runs)"),
               list_params: bool = typer.Option(False, "--list-params", help="show the notebook's parameters")) -> None:
    """Run a notebook with papermill into data/runs/<timestamp>-<name>/ and print that folder.

    The folder gets the executed notebook, its outputs and figures, and its results table."""
    from musicvid_core.lab import runs
    if list_params:
        for pname, p in runs.notebook_parameters(notebook).items():
            print(f"{pname}: {p['type']} = {p['default']}  # {p['help']}")
        return
    run = runs.run_notebook(notebook, _pairs(list(ctx.args)), name=name, root=runs_dir)
    err.print(f"{run.notebook.name}: {run.rows} result row(s) in {run.seconds:.0f} s -> {run.results}")
    print(run.dir)


@app.command()
def batch(source: Path = typer.Argument(..., help="a folder of videos, or a .csv/.json manifest (columns video, "
                                                  "prompt, and optionally seed, label, loudness, target_lufs, "
                                                  "true_peak_dbtp, source_music)"),
          prompt: str = typer.Option("", "--prompt", "-p", help="prompt for inputs without one"),
          seed: int = typer.Option(0, help="seed for inputs without one"),
          out: Path | None = typer.Option(None, "--out", "-o", help="output folder (default data/runs/<timestamp>-batch)"),
          fmt: str = typer.Option("csv", "--format", help="results table: csv or parquet (CSV is always written)"),
          music_metrics: bool = typer.Option(True, help="measure cut-beat hit rate, tempo and key on each "
                                                        "result (beat tracking: ~40% of the time on short clips)"),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display")) -> None:
    """Score every video of a folder or manifest; print the results table's path.

    A failing input is recorded in its row with the reason and does not stop the batch; the exit
    code is 1 when any input failed."""
    from musicvid_core.lab import batch as batch_mod
    from musicvid_core.lab import runs
    items = batch_mod.load_manifest(source, prompt=prompt, seed=seed)
    out_dir = out if out is not None else runs.new_run_dir("batch")
    result = batch_mod.run_batch(_services(), items, out_dir, fmt=fmt, progress=not quiet,
                                 measure_music=music_metrics)
    err.print(f"{result.completed} completed, {result.failed} failed in {result.seconds:.0f} s; "
              f"summary figure {result.figure}")
    print(result.table)
    if result.failed:
        raise typer.Exit(1)


def _debug() -> bool:
    from musicvid_core.settings import Settings

    try:
        return Settings().debug
    except ValueError:  # an unreadable setting is reported by the command that needs it
        return False


def main(argv: list[str] | None = None) -> None:
    """Entry point: every failure is one line on stderr and a non-zero exit, never a traceback."""
    # At exit the interpreter's collections walk every object a run made (numpy, scipy, cv2, the
    # job's records): 0.2 s of a 60 s run's 9 (issue 18). Frozen at exit they are left to the OS;
    # atexit callbacks, weakref finalizers (temporary folders) and flushes run as before.
    atexit.register(gc.freeze)
    try:
        # Without standalone mode an Exit raised by a command comes back as the return value.
        code = app(args=argv, prog_name="musicvid", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        # The error tree and MUSICVID_DEBUG (Settings) are read only when something failed: both cost
        # pydantic imports that `--help` does not need.
        from musicvid_core.domain.errors import BadInput, MusicVidError

        debug = _debug()
        if isinstance(exc, MusicVidError):
            if debug:
                raise
            err.print(f"[red]error:[/] {exc}")
            sys.exit(2 if isinstance(exc, BadInput) else 1)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # typer/click usage error
            if type(exc).__name__ == "NoArgsIsHelpError":
                app(args=["--help"], prog_name="musicvid", standalone_mode=False)
                sys.exit(0)
            err.print(f"[red]error:[/] {' '.join(exc.format_message().split())} (see musicvid --help)")
            sys.exit(2)
        if debug:
            raise
        err.print(f"[red]internal error:[/] {type(exc).__name__}: {' '.join(str(exc).split())[:300]} "
                  "(set MUSICVID_DEBUG=1 for the traceback)")
        sys.exit(70)


if __name__ == "__main__":
    main()
