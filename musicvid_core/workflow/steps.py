"""Step handlers: ``event dict -> dict``, one per Task of musicvid_core/workflow/workflow.asl.json.

The local runner calls them in-process; chalice_app deploys the very same functions as
``@app.lambda_function``s. They pass ids and object URIs, never media bytes (Step Functions
payloads are capped at 256 KB), and write the job's status and stage at every transition.
Every object key comes from the job's :class:`~musicvid_core.domain.layout.ArtifactLayout` (one
prefix per attempt, so rollback is one prefix delete; the input under ``uploads/`` is never touched).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from musicvid_core import heap
from musicvid_core.domain.errors import BadInput, InvalidTransition, MusicVidError, NotFound
from musicvid_core.domain.features import MediaInfo, VideoFeatures
from musicvid_core.domain.job import Job, JobError, Stage, Status
from musicvid_core.domain.plan import Plan
from musicvid_core.media import scratch_prefix, timeout_for, write_float_wav
from musicvid_core.services import Services
from musicvid_core.stages.plan.decide import decide_plan
from musicvid_core.workflow.async_music import advance, submit_all
from musicvid_core.workflow.music_source import edit_figures, fit_recording, render_segment, wants_recording
from musicvid_core.workflow.tracing import traced

log = logging.getLogger(__name__)


# --- helpers ---------------------------------------------------------------------------------
def _job_for(event: dict, services: Services) -> Job:
    """The job named by the event, refusing a stale execution (an older attempt's run must never
    write over a regeneration that replaced it)."""
    if not isinstance(event, dict) or "job_id" not in event:
        raise BadInput("step event needs a job_id")
    job = services.jobs.get(str(event["job_id"]))
    attempt = event.get("attempt")
    if attempt is not None and int(attempt) != job.attempt:
        raise InvalidTransition(f"stale execution: attempt {attempt} but job is at attempt {job.attempt}")
    return job


def _enter(services: Services, job: Job, stage: Stage) -> Job:
    if job.stage == stage:
        return job
    return services.jobs.update(job.job_id, {"stage": stage})


@contextlib.contextmanager
def _workdir(services: Services) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix=scratch_prefix("step-")))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _local(services: Services, key: str, tmp: Path) -> Path:
    """A readable local path for ``key``: in place for the folder store, else downloaded."""
    path = services.objects.local_path(key)
    if path is not None and path.is_file():
        return path
    return services.objects.get_file(key, tmp / Path(key).name)


def _input_key(services: Services, job: Job) -> str:
    return services.objects.key_from_uri(job.s3_url)


def _input_size(services: Services, job: Job) -> int | None:
    """The input's bytes (None: missing, which the download reports). BadInput past
    ``max_input_bytes``: the deployed functions' /tmp is sized for that much (infra/build_template.py)."""
    size = services.objects.size(_input_key(services, job))
    limit = services.settings.max_input_bytes
    if size is not None and size > limit:
        raise BadInput(f"the video is {size} bytes; the limit is {limit}")
    return size


def _too_big_for_planner(services: Services, job: Job, size: int | None) -> bool:
    limit = getattr(services.planner, "max_video_bytes", None)  # planners that watch the video
    return bool(limit is not None and size and size > limit(job.s3_url))


def output_key(job: Job, ext: str | None = None) -> str:
    """The key of the job's scored video (or its preview, with the job option ``preview``): ``ext``,
    else the format this attempt's mix wrote (metrics["container"]), else by the input's name."""
    if ext is None and job.metrics and isinstance(job.metrics.get("container"), dict):
        ext = "." + str(job.metrics["container"]["format"])
    return job.layout.output(job.s3_url, preview=job.options.preview, ext=ext)


def output_streams(services: Services, job: Job, media: MediaInfo):
    """The output's format and what each stream of the input becomes (stages/mix/container.py):
    the job option ``container``, else the input's own format where it can carry the result.
    BadInput when the asked-for format cannot carry the video's streams."""
    from musicvid_core.stages.mix.container import choose

    requested = f".{job.options.container}" if job.options.container else None
    return choose(media, requested=requested, input_name=_input_key(services, job), preview=job.options.preview)


# What the scored video is served as, per format (stages/mix/container.py).
MEDIA_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska",
               ".webm": "video/webm"}


def _cached_features(services: Services, job: Job) -> VideoFeatures | None:
    """The input's features from the job's cache (measured by an earlier attempt), else None."""
    try:
        data = services.objects.get_bytes(job.layout.features_cache)
    except NotFound:
        return None
    try:
        return VideoFeatures.model_validate_json(data)
    except ValueError:  # unreadable (an older layout): measure again
        log.warning("job %s: cached features unreadable, analysing again", job.job_id)
        return None


def music_metrics(plan: Plan, clips: list[Path]) -> dict:
    """musicvid_core.metrics.music's report on the music bus assembled from the segment clips
    (before mixing: no ducking or fades), against the plan's measured cuts, with
    musicvid_core.metrics.sound's figures under ``sound`` (bars from the plan's beat grid). Read
    from the clip files window by window (metrics/windows.py): memory does not grow with the video's
    length. BadInput when the clips' sample rates differ."""
    from musicvid_core.metrics.sound import plan_beats
    from musicvid_core.metrics.windows import ClipBus, music_report, sound_report

    bus = ClipBus(plan, clips)
    report = music_report(bus, plan)
    if bus.frames >= bus.sr:  # a sound report needs a second of music
        report["sound"] = sound_report(bus, beats_s=plan_beats(plan))
    return report


def load_plan(services: Services, job: Job) -> Plan:
    return Plan.parse(services.objects.get_bytes(job.layout.plan).decode())


def load_features(services: Services, job: Job) -> VideoFeatures:
    return VideoFeatures.model_validate_json(services.objects.get_bytes(job.layout.features))


# --- steps -----------------------------------------------------------------------------------
@traced("Coordinator")
def coordinator(event: dict, services: Services) -> dict:
    """``action: start`` moves SCHEDULED -> PROCESSING; ``action: summary`` writes the summary and
    completes the job (PROCESSING -> COMPLETED), then drops older attempts' outputs."""
    job = _job_for(event, services)
    action = event.get("action")
    if action == "start":
        if job.status == Status.PROCESSING:  # a retried start whose first call did succeed
            return {"status": job.status.value}
        job = services.jobs.transition(job.job_id, Status.PROCESSING, stage=Stage.START, error=None)
        return {"status": job.status.value}
    if action == "summary":
        job = _enter(services, job, Stage.SUMMARY)
        plan = load_plan(services, job)
        summary = services.summarizer.summarize(job, plan, job.metrics)
        final = services.objects.uri(output_key(job))
        job = services.jobs.transition(job.job_id, Status.COMPLETED, stage=Stage.DONE,
                                       summary=summary, final_url=final)
        # The earlier output was kept until this one succeeded; now it is superseded.
        for older in range(1, job.attempt):
            services.objects.delete_prefix(job.layout.at(older).prefix)
        return {"status": job.status.value, "final_url": final}
    raise BadInput(f"unknown coordinator action: {action!r}")


@traced("Analyzer")
def analyzer(event: dict, services: Services) -> dict:
    """Probe the input, measure its features (once per job: cached), and plan the music
    (:func:`~musicvid_core.stages.plan.decide.decide_plan` makes every planning decision). Returns the
    segment indexes the workflow's Map fans out over."""
    from musicvid_core.media import make_proxy
    from musicvid_core.stages.analyse.features import analyze_video
    from musicvid_core.stages.analyse.probe import probe

    job = _enter(services, _job_for(event, services), Stage.ANALYZE)
    features = _cached_features(services, job)
    track = job.options.audio_track
    if features is not None and track is not None and features.media.main_audio != track:
        features = None  # measured on another audio track: the speech and loudness are that track's
    layout = job.layout
    size = _input_size(services, job)
    # A preview mixes onto the proxy; a planner that watches the video is shown it when the input is
    # past what the model takes (Nova: 1 GB by S3 location, ~18 MB inline).
    want_proxy = ((job.options.preview or _too_big_for_planner(services, job, size))
                  and not services.objects.exists(layout.proxy))
    if features is None or want_proxy:
        timeout = services.settings.ffmpeg_timeout_s
        with _workdir(services) as tmp:
            video = _local(services, _input_key(services, job), tmp)
            proxy = tmp / "proxy.mp4" if want_proxy else None
            if features is None:
                media = probe(video, timeout=timeout, label="the video", audio_track=track)
                output_streams(services, job, media)  # a format that cannot carry the video: before any work
                if media.duration > services.settings.max_duration_s:
                    raise BadInput(f"video is {media.duration:.0f} s long; the limit is "
                                   f"{services.settings.max_duration_s:.0f} s")
                # A preview's proxy comes out of the analysis decode itself: no second decode.
                features = analyze_video(video, media, timeout=timeout_for(timeout, media.duration), proxy=proxy)
                services.objects.put_bytes(layout.features_cache, features.model_dump_json().encode(),
                                           "application/json")
            elif proxy is not None:
                make_proxy(video, proxy, timeout=timeout_for(timeout, features.media.duration))
            if proxy is not None:
                services.objects.put_file(layout.proxy, proxy, "video/mp4")
    output_streams(services, job, features.media)  # also for cached features (a regeneration's new format)
    previous = None
    if job.reroll is not None:  # the plan the re-roll starts from
        previous = Plan.parse(services.objects.get_bytes(layout.at(job.reroll.attempt).plan).decode())
    plan = decide_plan(services.planner, job, features, services.objects, previous)
    services.objects.put_bytes(layout.features, features.model_dump_json().encode(), "application/json")
    recording = wants_recording(job) or (job.reroll is not None and plan.music is not None)
    if recording:  # a real recording: the plan fitted to an edit of it (stored as edit.json)
        with _workdir(services) as tmp:
            plan = fit_recording(services, job, plan, features, tmp)
    plan_url = services.objects.put_bytes(layout.plan,
                                          plan.model_dump_json(indent=1).encode(), "application/json")
    services.jobs.update(job.job_id, {"plan_url": plan_url})
    if services.generator_is_async and not recording:  # queue every segment at the endpoint now (docs/backends.md)
        submit_all(services, job, plan)
    return {"segments": [s.index for s in plan.segments], "plan_url": plan_url}


@traced("AudioGenerator")
def audio_generator(event: dict, services: Services) -> dict:
    """Render one segment's clip (a Map iteration) and store it as a WAV: the configured generator's,
    or for a real recording (plan.music) the segment's exact slice of the attempt's edit."""
    job = _enter(services, _job_for(event, services), Stage.GENERATE)
    plan = load_plan(services, job)
    index = event.get("index")
    if not isinstance(index, int) or not 0 <= index < len(plan.segments):
        raise BadInput(f"segment index out of range: {index!r}")
    key = job.layout.segment(index)
    reroll = job.reroll
    if reroll is not None and index != reroll.segment:  # not re-rolled: the previous attempt's exact bytes
        data = services.objects.get_bytes(job.layout.at(reroll.attempt).segment(index))
        return {"index": index, "clip_url": services.objects.put_bytes(key, data, "audio/wav"), "pending": False}
    if plan.music is not None:
        with _workdir(services) as tmp:
            path = tmp / "clip.wav"
            write_float_wav(path, render_segment(services, job, plan, index, tmp), services.settings.sample_rate)
            uri = services.objects.put_file(key, path, "audio/wav")
        return {"index": index, "clip_url": uri, "pending": False}
    gen = services.generator
    if getattr(gen, "is_async", False):  # the ASL Waits and calls again while this is pending
        audio = advance(services, job, plan, index)
        if audio is None:
            return {"job_id": job.job_id, "attempt": job.attempt, "index": index, "pending": True,
                    "wait_s": gen.poll_s}
    else:
        audio = gen.generate(plan, index, job.seed)
    with _workdir(services) as tmp:
        path = tmp / "clip.wav"
        write_float_wav(path, audio, gen.sample_rate)  # same samples, same bytes
        uri = services.objects.put_file(key, path, "audio/wav")
    del audio
    heap.trim()  # the segment's stems and buses leave the process before the next segment's grow
    # "pending" is always present: Step Functions' Choice fails on a missing path (no short-circuit)
    return {"index": index, "clip_url": uri, "pending": False}


@traced("AVOperator")
def av_operator(event: dict, services: Services) -> dict:
    """Mix the clips onto the video (video stream copied) and record the measured metrics. With the
    job option ``stems``, the mixer's stems are stored under the job's prefix (metrics["stems"]: name
    -> object URI)."""
    from musicvid_core.stages.mix.compose import PREVIEW_SAMPLE_RATE, compose

    job = _enter(services, _job_for(event, services), Stage.MIX)
    services.release_generators()  # the segments are rendered: the composer's SoundFont is not needed here
    settings = services.settings
    plan = load_plan(services, job)
    media = load_features(services, job).media
    streams = output_streams(services, job, media)
    key = output_key(job, streams.format.ext)
    with _workdir(services) as tmp:
        video = _local(services, _input_key(services, job), tmp)
        clips = [_local(services, job.layout.segment(i), tmp / f"c{i}") for i in range(len(plan.segments))]
        options = job.options
        preview = options.preview
        proxy = job.layout.proxy
        picture = _local(services, proxy, tmp) if preview and services.objects.exists(proxy) else None
        in_place = services.objects.local_path(key)
        out = in_place if in_place is not None else tmp / ("out" + Path(key).suffix)
        out.parent.mkdir(parents=True, exist_ok=True)
        metrics = compose(video, media, plan, clips, out,
                          target_lufs=float(settings.target_lufs if options.target_lufs is None
                                            else options.target_lufs),
                          true_peak_dbtp=float(settings.true_peak_dbtp if options.true_peak_dbtp is None
                                               else options.true_peak_dbtp),
                          sample_rate=PREVIEW_SAMPLE_RATE if preview else settings.sample_rate,
                          audio_bitrate=settings.audio_bitrate,
                          timeout=timeout_for(settings.ffmpeg_timeout_s, media.duration),
                          stems_dir=tmp / "stems" if options.stems else None,
                          preview=preview, picture=picture, streams=streams)
        if in_place is None:
            services.objects.put_file(key, out, MEDIA_TYPES.get(streams.format.ext, "video/mp4"))
        if "stems" in metrics:
            metrics["stems"] = {name: services.objects.put_file(job.layout.stem(name), path, "audio/wav")
                                for name, path in metrics["stems"].items()}
        if options.music_metrics:  # job option: librosa's analysis is not free
            metrics["music"] = music_metrics(plan, clips)
        if plan.music is not None:  # the edit's figures; measured on the music with music_metrics
            metrics["music_edit"] = edit_figures(services, job, plan, clips, tmp, measure=options.music_metrics)
    metrics = json.loads(json.dumps(metrics, default=float))  # plain JSON numbers for the store
    services.jobs.update(job.job_id, {"metrics": metrics})
    return {"output_url": services.objects.uri(key)}


def _error_from(event: dict) -> tuple[str, str]:
    """(type, message) from the Catch output ``{"Error", "Cause"}`` (Cause is Lambda's JSON)."""
    err = event.get("error") or {}
    etype = str(err.get("Error") or "UnknownError")
    cause = err.get("Cause") or ""
    message = cause
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict):
            message = parsed.get("errorMessage") or cause
    except (TypeError, ValueError):
        pass
    message = " ".join(str(message).split())[:500] or etype
    return etype, message


@traced("FailureHandler")
def failure_handler(event: dict, services: Services) -> dict:
    """Mark the job FAILED with the stage it failed in and the reason, and roll back this
    attempt's partial outputs. The input upload and earlier attempts' outputs are kept."""
    job = services.jobs.get(str(event["job_id"]))
    etype, message = _error_from(event)
    stage = job.stage.value
    if event.get("attempt") is not None and int(event["attempt"]) != job.attempt:
        return {"status": job.status.value, "stale": True}  # a newer attempt owns the job now
    removed = services.objects.delete_prefix(job.prefix.rstrip("/"))
    if job.status == Status.FAILED:
        return {"status": job.status.value, "removed": removed}
    mark_failed(services, job.job_id, etype, message, stage)
    return {"status": Status.FAILED.value, "removed": removed}


def mark_failed(services: Services, job_id: str, etype: str, message: str, stage: str) -> Job:
    """FAILED with a reason, from SCHEDULED or PROCESSING (idempotent for an already failed job)."""
    job = services.jobs.get(job_id)
    if job.status == Status.FAILED:
        return job
    if job.status == Status.COMPLETED:  # nothing to fail: the run already finished
        return job
    return services.jobs.transition(job_id, Status.FAILED,
                                    error=JobError(type=etype, message=message, stage=stage))


HANDLERS: dict[str, Any] = {
    "Coordinator": coordinator,
    "Analyzer": analyzer,
    "AudioGenerator": audio_generator,
    "AVOperator": av_operator,
    "FailureHandler": failure_handler,
}

__all__ = ["HANDLERS", "MusicVidError", "analyzer", "audio_generator", "av_operator", "coordinator",
           "failure_handler", "mark_failed", "output_key"]
