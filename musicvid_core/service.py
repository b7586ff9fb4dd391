"""Use cases shared by the CLI, the notebooks and the API: submit, regenerate, look up jobs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Services
from .domain.errors import BadInput, NotFound
from .domain.job import Job, OperationType, Stage, Status, clean_prompt, parse_job_id
from .mixing.presets import job_options

VIDEO_EXTS = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".3gp",
              ".flv", ".wmv", ".ogv"}


def upload_file(services: Services, path: str | Path, user_id: str) -> str:
    """Copy a local video into the object store under ``uploads/{user}/`` with a server-made name
    (never the raw filename). Returns its object URI. BadInput for a missing or unreadable file."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"no such file: {path}")
    if not path.is_file():
        raise BadInput(f"not a file: {path}")
    size = path.stat().st_size
    if size > services.settings.max_input_bytes:
        raise BadInput(f"file is {size} bytes; the limit is {services.settings.max_input_bytes}")
    ext = path.suffix.lower() if path.suffix.lower() in VIDEO_EXTS else ".bin"
    key = f"uploads/{user_id}/{uuid.uuid4().hex}{ext}"
    try:
        return services.objects.put_file(key, path, "video/*")
    except PermissionError:
        raise BadInput(f"cannot read {path}") from None


def submit_new(services: Services, s3_url: str, prompt: str, user_id: str, *, seed: int = 0,
               options: dict[str, Any] | None = None) -> Job:
    """Create a SCHEDULED job for an uploaded object of this user (not yet started).

    ``options``: ``loudness`` (a preset of mixing.presets: web, apple, broadcast), ``target_lufs``
    and ``true_peak_dbtp`` (override the preset's), ``stems`` (True: keep the mixer's stems with the
    job, see :func:`export_stems`), ``source_music`` (keep, duck or replace the music already in the
    video's sound; default Settings.source_music, "duck"), ``preview`` (True: a small, fast proxy
    written as output_preview.EXT). BadInput for an unknown preset or policy or a value out of range."""
    key = services.objects.key_from_uri(s3_url)
    if not key.startswith(f"uploads/{user_id}/"):
        raise BadInput("the video must be one of your own uploads")
    if not services.objects.exists(key):
        raise BadInput("the uploaded video does not exist")
    job = Job(user_id=user_id, s3_url=s3_url, prompts=[clean_prompt(prompt)], seed=int(seed),
              settings=job_options(options))
    return services.jobs.create(job)


def submit_regenerate(services: Services, job_id: str, prompt: str, user_id: str, *,
                      seed: int | None = None, options: dict[str, Any] | None = None) -> Job:
    """Append ``prompt`` to a finished job's history and schedule a new attempt (REGENERATE).
    The previous output stays available until the new attempt completes. ``options`` (as for
    :func:`submit_new`) replace the job's options of the same name; the others are kept."""
    job_id = parse_job_id(job_id)
    services.jobs.get(job_id, user_id)  # NotFound for someone else's job
    text = clean_prompt(prompt)
    changed = job_options(options)

    def change(job: Job) -> dict:
        out = {"prompts": [*job.prompts, text], "operation_type": OperationType.REGENERATE,
               "attempt": job.attempt + 1, "stage": Stage.QUEUED, "error": None,
               "settings": {**job.settings, **changed}}
        if seed is not None:
            out["seed"] = int(seed)
        return out

    return services.jobs.update(job_id, change, status=Status.SCHEDULED)


def run(services: Services, job: Job, on_event: Callable[[dict], None] | None = None) -> Job:
    """Execute the job's workflow on this machine (embedded launcher) and return the final job."""
    from .workflow.runner import run_job

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
