"""Checks made before a local run starts (``musicvid run``, ``musicvid_core.score``): every one a
one-line BadInput, so a run that cannot finish never starts (issue 17).

- ``--out`` may not be the input itself, nor a file inside the object store (the run would write
  over what it reads, or over another job's output); its folder must be writable, and so must the
  input's folder when the output goes beside the input (the default).
- A format ``--out`` names must carry the video's streams (stages/mix/container.py): the input is
  probed first, so the error comes before the upload, not as a failed job.
- The input's copy into the store runs while these checks do (:func:`check_and_upload`), and is
  deleted when one refuses: a refused run leaves nothing behind.
- Free disk: the store gets a copy of the input and the output (about the input's size plus the
  scored track), the music's segment clips (float WAVs) and the mix's float WAVs
  (stages/mix/sizes.work_bytes); the analysis writes a
  16 kHz WAV to the temporary folder; ``--out`` on another file system gets a copy of the output
  (on the same one it is a hard link). Each file system must have that much free.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from musicvid_core.domain.errors import BadInput, MediaToolError, UnsupportedMedia
from musicvid_core.domain.layout import ArtifactLayout
from musicvid_core.domain.options import JobOptions
from musicvid_core.media import local_input, run_ffmpeg
from musicvid_core.services import Services

ANALYSIS_WAV_BYTES_PER_S = 16000 * 2  # the analysis's 16 kHz mono s16 WAV (stages/analyse/audio.py)
CLIP_BYTES_PER_S = 48000 * 2 * 4  # segment clips: float stereo WAVs at most at 48 kHz (the generators' rates)
DISK_MARGIN = 1.1  # estimates are estimates: ask for 10 % more
# The input's copy runs beside the probe up to this size (~0.1-0.3 s of copying from the page cache:
# what a refusal then waits before the copy is deleted); a larger copy, seconds long, gains nothing
# from hiding a 50 ms probe, so it follows the checks.
COPY_BESIDE_CHECKS_BYTES = 256 * 2**20


def check_run(services: Services, video: Path, out: Path | None, *, options: JobOptions) -> dict:
    """Refuse a run that cannot finish (see the module docstring) and return what it needs on disk,
    in bytes: ``input_copy``, ``output``, ``music_clips``, ``work_wavs``, ``analysis``, ``out_copy`` and
    ``total``.
    Raises BadInput (UnsupportedMedia when a format or audio track is asked for and the probe finds
    no usable video: the job would fail the same way)."""
    return _check_media(services, _check_paths(services, video, out), out, options, {})


def _check_paths(services: Services, video: Path, out: Path | None) -> Path:
    """The refusals that need no probe (BadInput); returns the input as ffmpeg must be given it."""
    if not video.is_file():
        raise BadInput(f"no such file: {video}" if not video.exists() else f"not a file: {video}")
    video = local_input(video)
    _check_out(services, video, out)
    return video


def _check_media(services: Services, video: Path, out: Path | None, options: JobOptions,
                 free_before: dict[int, int]) -> dict:
    """check_run's probe and what follows it. ``free_before``: free bytes per file system
    (``st_dev``) measured before this run's own copy began (it would count twice); the others are
    measured now."""
    timeout = services.settings.ffmpeg_timeout_s
    duration = None
    if options.container is not None or options.audio_track is not None:
        from musicvid_core.stages.analyse.probe import probe
        from musicvid_core.stages.mix.container import choose, format_for

        # The packet scan (a pass over the file, ~0.1 s of a run's start) only finds the frames an
        # edit list hides, which matter to a format that cannot hide them (issue 18).
        hidden_matter = options.container is not None and not options.preview \
            and not format_for(f".{options.container}").hides_frames
        media = probe(video, timeout=timeout, audio_track=options.audio_track, scan=hidden_matter)
        if options.container is not None:
            choose(media, requested=f".{options.container}", input_name=video.name, preview=options.preview)
        duration = media.duration
    else:
        duration = _header_duration(video, timeout)
    return _check_disk(services, video, out, duration, options, free_before)


def check_and_upload(services: Services, video: Path, out: Path | None, *, options: JobOptions,
                     user: str) -> tuple[str, dict]:
    """:func:`check_run`, with the input copied into the store (workflow.submit.upload_file) while
    it probes: returns the stored input's URI and what check_run returns. The copy (a sendfile in
    the kernel, the GIL released; nothing at all where the store can reflink) overlaps the probe
    (an ffmpeg child) and the imports the checks need (issue 18). It starts once the refusals that
    need no probe have passed, only where the store can take it back (a ``delete``: the local
    store), the input fits on the store's disk with the margin, and it is at most
    COPY_BESIDE_CHECKS_BYTES (a refusal waits for the copy to end); else it follows the checks, as
    it did. When a check refuses, the copy is deleted before the refusal is raised. Raises what
    check_run raises, else what upload_file raises."""
    from musicvid_core.workflow.submit import upload_file

    local = _check_paths(services, video, out)
    free = _free_for_copy(services, video)
    copy = _copy_beside(services, upload_file, video, user) if free is not None else None
    try:
        need = _check_media(services, local, out, options, free or {})
    except BaseException:
        if copy is not None:
            _discard(services, copy)
        raise
    return (copy.result() if copy is not None else upload_file(services, video, user)), need


def _free_for_copy(services: Services, video: Path) -> dict[int, int] | None:
    """The store's free bytes by its file system's ``st_dev`` (empty for a store on no local disk)
    when the input's copy may start before the checks, else None."""
    if getattr(services.objects, "delete", None) is None:
        return None
    try:
        size = video.stat().st_size
    except OSError:  # gone since: upload_file says so
        return None
    if size > COPY_BESIDE_CHECKS_BYTES:
        return None
    store = _store_root(services)
    if store is None:
        return {}
    store = _existing(store)
    free = shutil.disk_usage(store).free
    return {store.stat().st_dev: free} if size * DISK_MARGIN <= free else None


def _copy_beside(services: Services, upload: Callable[..., str], video: Path, user: str) -> Future:
    """``upload(services, video, user)`` started in a thread: its URI, or the error it raised, from the
    future's result()."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="musicvid-input-copy")
    try:
        return pool.submit(upload, services, video, user)
    finally:
        pool.shutdown(wait=False)  # the one task runs on; nothing else is queued


def _discard(services: Services, copy: Future) -> None:
    """Wait for the copy and delete what it stored (nothing when it failed: the refusal is the error)."""
    if copy.exception() is None:
        services.objects.delete(services.objects.key_from_uri(copy.result()))


def _check_out(services: Services, video: Path, out: Path | None) -> None:
    if out is None:
        if not _writable(video.parent):
            raise BadInput(f"cannot write the result beside the input: {video.parent} is not writable; "
                           "choose where it goes with --out")
        return
    target = out.resolve()
    if target == video.resolve() or (out.exists() and os.path.samefile(out, video)):
        raise BadInput(f"--out {out} is the input itself: choose another file (the input is never changed)")
    store = _store_root(services)
    if store is not None and (target == store or store in target.parents):
        raise BadInput(f"--out {out} is inside the job store ({store}): choose a file outside it")
    if out.is_dir():
        raise BadInput(f"--out {out} is a folder: name the file to write")
    if not _writable(out.parent):
        raise BadInput(f"cannot write {out}: its folder is not writable")


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (or, when it does not exist yet, in the nearest
    folder above it that does, where it would be made)."""
    folder = folder.resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def _store_root(services: Services) -> Path | None:
    """The local store's folder (None for S3, where nothing of the run lands on this disk)."""
    probe_key = ArtifactLayout.upload_prefix(services.settings.user) + "x"
    path = services.objects.local_path(probe_key)
    if path is None:
        return None
    return Path(str(path)[: -len(probe_key)]).resolve()


def _header_duration(video: Path, timeout: float) -> float | None:
    """The container's duration (s) from ``ffmpeg -i``'s header, None when it says none (the job
    reports what is wrong with such a file)."""
    from musicvid_core.stages.analyse.probe import header_duration

    try:
        return header_duration(run_ffmpeg(["-i", str(video)], timeout=timeout, what="probe", check=False).stderr)
    except (UnsupportedMedia, MediaToolError):
        return None


def _check_disk(services: Services, video: Path, out: Path | None, duration: float | None,
                options: JobOptions, free_before: dict[int, int]) -> dict:
    from musicvid_core.stages.mix.sizes import work_bytes

    size = video.stat().st_size
    work = work_bytes(duration or 0.0, sample_rate=services.settings.sample_rate, stems=options.stems)
    output = size + work["scored_track"]
    need = {"input_copy": size, "output": output, "music_clips": round((duration or 0.0) * CLIP_BYTES_PER_S),
            "work_wavs": work["work_wavs"],
            "analysis": round((duration or 0.0) * ANALYSIS_WAV_BYTES_PER_S), "out_copy": 0}
    store = _store_root(services)
    if store is None:
        need["total"] = sum(need.values())
        return need
    places: dict[int, tuple[Path, dict[str, int]]] = {}

    def add(folder: Path, part: str, amount: int) -> None:
        folder = _existing(folder)
        entry = places.setdefault(folder.stat().st_dev, (folder, {}))
        entry[1][part] = entry[1].get(part, 0) + amount

    for part in ("input_copy", "output", "music_clips", "work_wavs"):
        add(store, part, need[part])
    add(Path(tempfile.gettempdir()), "analysis", need["analysis"])
    dest = out if out is not None else video.parent / video.name
    if _existing(dest.parent).stat().st_dev != _existing(store).stat().st_dev:
        need["out_copy"] = output  # across file systems the result is copied, not linked
        add(dest.parent, "out_copy", output)
    need["total"] = sum(need.values())
    for dev, (folder, parts) in places.items():
        wanted = round(sum(parts.values()) * DISK_MARGIN)
        free = free_before[dev] if dev in free_before else shutil.disk_usage(folder).free
        if wanted > free:
            detail = ", ".join(f"{name.replace('_', ' ')} {_gb(b)}" for name, b in parts.items() if b)
            raise BadInput(f"not enough free disk space in {folder}: this run needs about {_gb(wanted)} there "
                           f"({detail}, plus 10 %) and {_gb(free)} is free")
    return need


def _existing(folder: Path) -> Path:
    folder = folder.resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
