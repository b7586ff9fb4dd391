"""Use cases shared by the CLI, the notebooks and the API: submit, regenerate, look up jobs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from musicvid_core.domain.errors import BadInput, NotFound
from musicvid_core.domain.job import Job, OperationType, Reroll, Stage, Status, clean_prompt, parse_job_id
from musicvid_core.domain.layout import ArtifactLayout
from musicvid_core.domain.options import MAX_HITS, JobOptions, clean_hits  # noqa: F401  (re-exported)
from musicvid_core.services import Services

VIDEO_EXTS = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".3gp",
              ".flv", ".wmv", ".ogv"}


def _put_upload(services: Services, path: Path, user_id: str, ext: str, media_type: str, *,
                missing: str, noun: str) -> str:
    """Copy the local file ``path`` into the store under a server-made ``uploads/{user}/`` key with
    ``ext``; returns the key. BadInput (``missing`` + the path; ``noun`` in the other messages) for a
    missing, non-regular, oversized or unreadable file."""
    if not path.exists():
        raise BadInput(f"{missing}: {path}")
    if not path.is_file():
        raise BadInput(f"not a file: {path}")
    size = path.stat().st_size
    if size > services.settings.max_input_bytes:
        raise BadInput(f"{noun} is {size} bytes; the limit is {services.settings.max_input_bytes}")
    key = ArtifactLayout.new_upload(user_id, ext)
    try:
        services.objects.put_file(key, path, media_type)
    except PermissionError:
        raise BadInput(f"cannot read {path}") from None
    return key


def upload_file(services: Services, path: str | Path, user_id: str) -> str:
    """Copy a local video into the object store under ``uploads/{user}/`` with a server-made name
    (never the raw filename). Returns its object URI. BadInput for a missing or unreadable file."""
    path = Path(path)
    ext = path.suffix.lower() if path.suffix.lower() in VIDEO_EXTS else ".bin"
    key = _put_upload(services, path, user_id, ext, "video/*", missing="no such file", noun="file")
    return services.objects.uri(key)


def upload_music(services: Services, path: str | Path, user_id: str) -> str:
    """Copy a local music file (mp3 wav flac m4a/aac ogg/opus ...) into the object store under
    ``uploads/{user}/``, as :func:`upload_file` does a video. Returns its object key (what
    ``JobOptions.music.track`` names). BadInput for a missing or unreadable file; whether it is
    usable audio is checked where it is decoded (an entry point before submitting, the Analyzer)."""
    from musicvid_core.stages.compose.track.audio import AUDIO_EXTENSIONS

    path = Path(path)
    ext = path.suffix.lower() if path.suffix.lower() in AUDIO_EXTENSIONS else ".bin"
    return _put_upload(services, path, user_id, ext, "audio/*", missing="music file not found",
                       noun="music file")


def track_option(services: Services, path: str | Path, user_id: str) -> dict:
    """The ``music`` job option of a local music file: uploaded (:func:`upload_music`), its key as
    ``track`` and its file name as the display ``title`` (domain/options.title_of: the key is
    server-made, the name is what the user knows it by). BadInput as :func:`upload_music`."""
    from musicvid_core.domain.options import title_of

    title = title_of(Path(path).name)
    return {"kind": "track", "track": upload_music(services, path, user_id), **({"title": title} if title else {})}


def _check_music(services: Services, options: JobOptions, user_id: str) -> JobOptions:
    """The options with a ``track`` recording named by its key (a URI of this store accepted),
    which must be one of the user's own uploads and exist (BadInput otherwise)."""
    music = options.music
    if music is None or music.kind != "track":
        return options
    key = services.objects.key_from_uri(music.track) if "://" in music.track else music.track
    if not key.startswith(ArtifactLayout.upload_prefix(user_id)):
        raise BadInput("the music track must be one of your own uploads")
    if not services.objects.exists(key):
        raise BadInput("the uploaded music track does not exist")
    return options.model_copy(update={"music": music.model_copy(update={"track": key})})


def submit_new(services: Services, s3_url: str, prompt: str, user_id: str, *, seed: int = 0,
               options: Mapping[str, Any] | JobOptions | None = None, job_id: str | None = None,
               max_active: int | None = None) -> Job:
    """Create a SCHEDULED job for an uploaded object of this user (not yet started).

    ``options`` (a :class:`JobOptions`, or a mapping :meth:`JobOptions.parse` validates):
    ``loudness`` (a preset: web, apple, broadcast), ``target_lufs`` and ``true_peak_dbtp`` (override
    the preset's), ``stems`` (True: keep the mixer's stems with the job, see :func:`export_stems`),
    ``source_music`` (keep, duck or replace the music already in the video's sound; default
    Settings.source_music, "duck"), ``preview`` (True: a small, fast proxy written as
    output_preview.EXT), ``music_metrics``, ``hits`` (seconds), ``music`` (``{"kind": "track", "track":
    KEY}`` for the user's own upload (:func:`upload_music`), ``{"kind": "library"}`` with an optional
    track name; BadInput for a track that is not one of the user's uploads). ``job_id``: a given id (a UUID)
    instead of a fresh one; ConcurrentUpdate if it exists. BadInput for an unknown option, preset
    or policy, or a value of the wrong type or out of range. ``max_active``: the per-user cap on
    SCHEDULED + PROCESSING jobs (the API passes Settings.max_active_jobs); TooManyJobs beyond it."""
    key = services.objects.key_from_uri(s3_url)
    if not key.startswith(ArtifactLayout.upload_prefix(user_id)):
        raise BadInput("the video must be one of your own uploads")
    if not services.objects.exists(key):
        raise BadInput("the uploaded video does not exist")
    ids = {"job_id": parse_job_id(job_id)} if job_id else {}  # the API's idempotent submits
    job = Job(user_id=user_id, s3_url=s3_url, prompts=[clean_prompt(prompt)], seed=int(seed),
              options=_check_music(services, JobOptions.parse(options), user_id), **ids)
    with _held(services, job.job_id):
        return services.jobs.create(job, max_active=max_active)


def submit_regenerate(services: Services, job_id: str, prompt: str | None, user_id: str, *,
                      seed: int | None = None, options: Mapping[str, Any] | JobOptions | None = None,
                      segment: int | None = None, hits: list[float] | None = None,
                      client_token: str | None = None, max_active: int | None = None) -> Job:
    """Append ``prompt`` to a finished job's history and schedule a new attempt (REGENERATE).
    The previous output stays available until the new attempt completes. ``options`` (as for
    :func:`submit_new`) replace the job's options of the same name; the others are kept.

    ``segment``: re-roll only that plan segment (new random choices, and ``prompt``, when given,
    for that segment only; the prompt history is left alone); every other segment's audio is
    copied bit-identically from the attempt that made the current plan. ``hits``: seconds from the
    video start where the music should accent (a downbeat with a crash or stab); they replace the
    job's earlier hits (with ``segment``: only those inside it are used; a recording's re-edit puts
    a bar line on each, or fails the attempt with BadInput where its bars cannot reach one within
    the stretch limit, see stages/compose/track/fit.py). ``prompt`` None keeps the
    current prompt. ``client_token``: the API's idempotency key, kept with the job (a later
    regeneration without one keeps it). BadInput for a segment outside the plan, or one whose
    source audio is gone, and for options as :func:`submit_new`; TooManyJobs as there."""
    job_id = parse_job_id(job_id)
    current = services.jobs.get(job_id, user_id)  # NotFound for someone else's job
    text = clean_prompt(prompt) if prompt is not None else None
    changed = _check_music(services, JobOptions.parse(options), user_id)
    if hits is not None:
        changed = changed.merged(JobOptions.parse({"hits": hits}))
    reroll = _reroll_source(services, current, segment, text) if segment is not None else None

    def change(job: Job) -> dict:
        prompts = job.prompts if text is None or reroll is not None else [*job.prompts, text]
        out = {"prompts": prompts, "operation_type": OperationType.REGENERATE,
               "attempt": job.attempt + 1, "stage": Stage.QUEUED, "error": None,
               "options": job.options.merged(changed), "reroll": reroll}
        if client_token is not None:
            out["client_token"] = client_token
        if seed is not None:
            out["seed"] = int(seed)
        return out

    with _held(services, job_id):
        return services.jobs.update(job_id, change, status=Status.SCHEDULED, max_active=max_active)


@contextlib.contextmanager
def _held(services: Services, job_id: str):
    """On one machine, this process leases the job *before* it is (re)scheduled, so there is no
    moment when a SCHEDULED job has no owner: if this process dies before running it, the next
    musicvid process fails it at once (workflow/recovery.py). Released again if scheduling fails.
    ConcurrentUpdate while another live process runs the job."""
    leases = services.leases
    if leases is None:  # Step Functions owns executions
        yield
        return
    prior = leases.get(job_id)
    lease = leases.acquire(job_id)
    try:
        yield
    except BaseException:
        if prior is None or prior.owner != lease.owner:  # keep a lease this process already held
            leases.release(job_id, lease.owner)
        raise


def _reroll_source(services: Services, job: Job, segment: Any, text: str | None) -> Reroll:
    """Where a one-segment re-roll takes the other segments from: the attempt that made the job's
    current plan, whose plan, features and every segment's audio must still exist."""
    if isinstance(segment, bool) or not isinstance(segment, int):
        raise BadInput(f"segment must be a whole number, got {segment!r}")
    if not job.plan_url:
        raise BadInput("the job has no plan yet: run it (or regenerate it whole) first")
    source = ArtifactLayout.holding(services.objects.key_from_uri(job.plan_url))
    if source is None or source.job_id != job.job_id:
        raise BadInput("the job's plan is gone: regenerate it whole")
    try:
        count = len(services.objects.get_json(source.plan)["segments"])
    except (NotFound, KeyError, TypeError):
        raise BadInput("the job's plan is gone: regenerate it whole") from None
    if not 0 <= segment < count:
        raise BadInput(f"segment {segment} is outside the plan (0..{count - 1})")
    needed = [source.features, *(source.segment(i) for i in range(count))]
    if not all(services.objects.exists(k) for k in needed):
        raise BadInput("the previous attempt's audio is gone: regenerate the job whole")
    return Reroll(segment=segment, prompt=text, attempt=source.attempt)


def run(services: Services, job: Job, on_event: Callable[[dict], None] | None = None) -> Job:
    """Execute the job's workflow on this machine (embedded launcher) and return the final job."""
    from musicvid_core.workflow.runner import run_job

    return run_job(services, job.job_id, on_event)


def get_job(services: Services, job_id: str, user_id: str | None) -> Job:
    return services.jobs.get(parse_job_id(job_id), user_id)


def export_stems(services: Services, job: Job, dest: str | Path) -> list[Path]:
    """Copy the stems the job's mixer kept (music, original, master: float WAVs exactly as long as
    the video stream, sample 0 = the video's first frame) and its plan (plan.json) into ``dest``.
    NotFound when the job kept no stems (it was not submitted with ``stems``)."""
    stems = (job.metrics or {}).get("stems")
    if not stems:
        raise NotFound("the job kept no stems (submit it with the stems option)")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = [services.objects.get_file(services.objects.key_from_uri(uri), dest / f"{name}.wav")
               for name, uri in stems.items()]
    plan = dest / "plan.json"
    plan.write_bytes(services.objects.get_bytes(services.objects.key_from_uri(job.plan_url)))
    return [*written, plan]


def output_path(services: Services, job: Job) -> Path:
    """Local path of the job's latest output (embedded store)."""
    if not job.final_url:
        raise NotFound("the job has no output yet")
    path = services.objects.local_path(services.objects.key_from_uri(job.final_url))
    if path is None or not path.is_file():
        raise NotFound("the job's output is not available locally")
    return path
