"""The public Python API: score a video (a file, or a moviepy clip you edited) in one call.

    from musicvid_core import score

    result = score("talk.mp4", "warm acoustic, slow build")
    result.output           # Path of the scored video
    result.plan             # the music plan (domain Plan: segments, styles, tempi, keys, cuts)
    result.metrics          # loudness (LUFS, dBTP, LU), speech-to-music, music fit ...
    result.as_dict()        # exactly the object ``musicvid run --json`` prints
    result.clip()           # the scored video as a moviepy VideoFileClip

``musicvid run`` is a thin shell over :func:`score`, so the two cannot drift. Every failure is a
:class:`~musicvid_core.domain.errors.MusicVidError` with a one-line message. An entry point like
the CLI: it may import bootstrap; nothing in the package imports it (``import musicvid_core``
reaches it lazily, so that import stays light).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicvid_core.bootstrap import build_services
from musicvid_core.domain import errors
from musicvid_core.domain.errors import BadInput, ConfigurationError, MediaToolError, MusicVidError, NotFound
from musicvid_core.domain.job import Job, Status, clean_prompt
from musicvid_core.domain.options import JobOptions
from musicvid_core.domain.plan import Plan
from musicvid_core.services import Services
from musicvid_core.settings import Settings
from musicvid_core.stages.mix.presets import job_options
from musicvid_core.workflow import submit as service

# A moviepy clip is written once to a work file, whose video stream the scored output then copies
# unchanged: encode it near-transparently (x264 CRF 17) so the edit loses nothing visible. The sound
# goes in as 320 kb/s AAC (transparent, and re-encoded by the mix anyway) rather than PCM, because
# the output takes the input's container and an .mp4 with AAC plays inline in every browser.
CLIP_CRF = 17
CLIP_AUDIO_BITRATE = "320k"
# libx264's 4:2:0 needs even sides: an odd-sized edit gets one black row/column, never a failure.
_EVEN_SIDES = "pad=ceil(iw/2)*2:ceil(ih/2)*2"


@dataclass
class ScoreResult:
    """A scored job: the job, where its output is, the plan it followed and the stems kept."""

    job: Job
    output: Path | None  # the scored video (None when the job failed)
    stems: dict[str, Path] = field(default_factory=dict)  # music/original/master WAVs (and plan.json)
    plan_data: dict | None = field(default=None, repr=False)  # the stored plan JSON, as printed
    disk: dict | None = None  # what the run needed on disk (workflow/preflight.py), bytes

    @property
    def ok(self) -> bool:
        return self.job.status == Status.COMPLETED

    @property
    def metrics(self) -> dict:
        """What was measured on the output: loudness (LUFS, dBTP, LU), ducking, music fit ..."""
        return self.job.metrics

    @property
    def plan(self) -> Plan | None:
        """The music plan the job followed (None before the analysis made one)."""
        return Plan.parse(self.plan_data) if self.plan_data else None

    @property
    def container(self) -> str | None:
        """The output's format (mp4, m4v, mov, mkv, webm; see stages/mix/container.py), None without one."""
        found = (self.job.metrics or {}).get("container") if self.output else None
        return found.get("format") if isinstance(found, dict) else None

    def as_dict(self) -> dict:
        """The object ``musicvid run --json`` prints: job, output, its container, plan, metrics."""
        return {"job": self.job.public(), "output": str(self.output) if self.output else None,
                "container": self.container, "disk": self.disk, "plan": self.plan_data,
                "metrics": self.job.metrics}

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.as_dict(), indent=indent)

    def clip(self):
        """The scored video as a moviepy ``VideoFileClip`` (close it when done). NotFound when the
        job has no output; ConfigurationError when moviepy is not installed."""
        if self.output is None or not self.output.is_file():
            raise NotFound("the job has no output to open")
        return _moviepy().VideoFileClip(str(self.output))

    def raise_for_failure(self) -> ScoreResult:
        """This result when the job completed; else the error its failure names (see :func:`failure`)."""
        if not self.ok:
            raise failure(self.job)
        return self


# What a run with a recording (music= / library=) asks for when no prompt is given: a neutral one.
RECORDING_PROMPT = "music that fits the picture"


def recording_option(services: Services, music: str | Path | None, library: bool | str | None) -> dict | None:
    """The ``music`` job option for ``music`` (a local music file: checked, NOT yet uploaded: see
    :func:`upload_recording`) or ``library`` (True, or a library track's name to force). None for
    neither. BadInput for both at once, a missing, non-audio, silent or too short file (under
    ~8 s), or an unknown library track."""
    # Imported in the branch that needs them: the audio stack costs a plain run ~0.1 s before its
    # first stage (issue 18).
    if music is not None and library:
        raise BadInput("give either your own music track or the library, not both")
    if music is not None:
        from musicvid_core.stages.compose.track.audio import load_track

        path = Path(music).expanduser()
        if not path.is_file():
            raise BadInput(f"music file not found: {path}")
        load_track(path, 8000, channels=1)  # decodable, long enough and not silent: before any work
        return {"kind": "track", "track": str(path)}
    if library:
        name = library if isinstance(library, str) else None
        if name is not None:
            from musicvid_core.workflow.music_source import library_tracks

            library_tracks(services, name)  # an unknown name: BadInput now, not a failed job
        return {"kind": "library", "track": name}
    return None


def upload_recording(services: Services, option: dict | None, user: str) -> dict | None:
    """``option`` with a local track file uploaded into the store (its key in ``track``, the
    file's name as its display ``title``: the stored key is a server-made uuid)."""
    if option is None or option["kind"] != "track":
        return option
    return service.track_option(services, option["track"], user)


def score(video: Any, prompt: str | None = None, *, out: str | Path | None = None, seed: int = 0,
          loudness: str | None = None, target_lufs: float | None = None, true_peak: float | None = None,
          stems: str | Path | None = None, source_music: str | None = None, preview: bool = False,
          hits: Iterable[float] | None = None, music_metrics: bool = True, audio_track: int | None = None,
          music: str | Path | None = None, library: bool | str = False,
          settings: Settings | None = None, services: Services | None = None,
          on_event: Callable[[dict], None] | None = None, check: bool = True) -> ScoreResult:
    """Score ``video`` with ``prompt`` end to end on this machine (the job pipeline of ``musicvid run``).

    ``video``: a video file, or a moviepy clip (a CompositeVideoClip, a concatenation ...), written
    once at high quality (x264 CRF 17 at the clip's fps, AAC 320 kb/s) to a work file, then scored
    like any file. ``out``: where the scored video goes, written in the format its extension names
    (.mp4 .m4v .mov .mkv .webm; an existing file is replaced only when the run succeeds); default
    ``VIDEO_musicvid.EXT`` beside a file (``_preview`` with ``preview``), EXT the input's own format
    where it can carry the result, else .mkv; the stored output under MUSICVID_HOME for a clip.
    ``audio_track``: the audio track (0-based) the music replaces; default the default-flagged one
    that is not silent, else the first that is not. Every other stream is kept.
    ``loudness``: preset web (-14 LUFS), apple (-16) or broadcast (-23); ``target_lufs`` (LUFS) and
    ``true_peak`` (dBTP) override it. ``stems``: a folder that gets the music, original and master
    WAVs (float, as long as the video; sample 0 = its first frame) and plan.json.
    ``source_music``: keep, duck or replace music already in the video's sound. ``hits``: seconds
    from the video start where the music should accent. ``music_metrics``: also measure the music
    (cut-beat hit rate, tempo, key; the first run in a fresh install compiles librosa's beat tracker,
    ~20 s). ``services`` (else built from ``settings``, else from MUSICVID_* variables).
    ``on_event``: called with each workflow event (a ``JobSubmitted`` one first).
    ``music``: your own recording (mp3 wav flac m4a/aac ogg/opus ..., at least ~8 s), edited to the
    picture instead of composed (docs/tracks.md); ``library``: True for a track the library chooses
    for the prompt and the picture, or a library track's name. With either, ``prompt`` may be None
    (RECORDING_PROMPT); without, it is needed.

    Raises BadInput (missing file, empty prompt, bad option, an ``out`` that is the input or in the
    store, a format ``out`` names that cannot carry the video's streams, a folder that cannot be
    written, too little free disk) before anything runs; with ``check``, a job that fails raises the
    error its failure names (UnsupportedMedia for a file that is not a usable video, MixError ...);
    without, the failed job comes back (``result.ok`` False)."""
    from musicvid_core.workflow.preflight import check_and_upload

    if prompt is None and music is None and not library:
        raise BadInput("a prompt is needed (or your own music track, or the library)")
    text = clean_prompt(RECORDING_PROMPT if prompt is None else prompt)
    container = _container_of(out)
    options = job_options({"loudness": loudness, "target_lufs": target_lufs, "true_peak_dbtp": true_peak,
                           "source_music": source_music, "preview": preview or None,
                           "stems": True if stems is not None else None,
                           "hits": (service.clean_hits(hits) or None) if hits is not None else None,
                           "music_metrics": True if music_metrics else None,
                           "container": container, "audio_track": audio_track})
    services = services or build_services(settings or Settings())
    user = services.settings.user
    recording = recording_option(services, music, library)
    clip = _moviepy_clip(video)
    disk = None
    if clip is not None:
        with tempfile.TemporaryDirectory(prefix="musicvid-clip-") as work:
            uri = service.upload_file(services, write_clip(clip, Path(work) / "edit.mp4",
                                                           audio_fps=services.settings.sample_rate), user)
    elif isinstance(video, (str, Path)):
        video = Path(video).expanduser()
        uri, disk = check_and_upload(services, video, None if out is None else Path(out).expanduser(),
                                     options=JobOptions.parse(options), user=user)
    else:
        raise BadInput(f"video must be a file path or a moviepy clip, not {type(video).__name__}")
    if recording is not None:
        options = {**options, "music": upload_recording(services, recording, user)}
    job = service.submit_new(services, uri, text, user, seed=seed, options=options)
    if on_event is not None:
        on_event({"type": "JobSubmitted", "job_id": job.job_id})
    job = service.run(services, job, on_event)
    if out is None and clip is None and job.status == Status.COMPLETED:
        ext = service.output_path(services, job).suffix
        out = video.with_name(f"{video.stem}_{'preview' if preview else 'musicvid'}{ext}")
    result = finish(services, job, out=out, stems=stems)
    result.disk = disk
    return result.raise_for_failure() if check else result


def finish(services: Services, job: Job, *, out: str | Path | None = None,
           stems: str | Path | None = None) -> ScoreResult:
    """The result of a finished job (a run or a regeneration): its output copied to ``out`` (else
    the stored one's path), its stems exported into the folder ``stems``, its plan read."""
    output = stem_paths = None
    if job.status == Status.COMPLETED:
        output = service.output_path(services, job)
        if out is not None:
            output = deliver(output, Path(out).expanduser())
        if stems is not None:
            stem_paths = {p.stem: p for p in service.export_stems(services, job, Path(stems).expanduser())}
    plan = None
    if job.plan_url:
        try:
            plan = services.objects.get_json(services.objects.key_from_uri(job.plan_url))
        except MusicVidError:  # rolled back with a failed attempt: the result has no plan
            plan = None
    return ScoreResult(job=job, output=output, stems=stem_paths or {}, plan_data=plan)


def deliver(src: Path, dest: Path) -> Path:
    """Put the stored output ``src`` at ``dest`` atomically: hard-linked (no second copy of the
    video on disk) or, across file systems, copied to a hidden file beside ``dest`` and renamed over
    it, so an existing ``dest`` is replaced only by a complete file. BadInput when ``dest``'s folder
    cannot be written."""
    tmp = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(fd)
        os.unlink(tmp)
        try:
            os.link(src, tmp)
        except OSError:  # another file system (or one without links): a copy
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except PermissionError:
        raise BadInput(f"cannot write {dest}: permission denied") from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
    return dest


def _container_of(out: str | Path | None) -> str | None:
    """The output format ``out``'s extension names (BadInput for one not written here)."""
    if out is None:
        return None
    from musicvid_core.stages.mix.container import format_for

    return format_for(Path(out)).ext.lstrip(".")


def failure(job: Job) -> MusicVidError:
    """The error a failed job's record names (its class in the error tree, MusicVidError for a
    name outside it), with a one-line message: ``job ID failed: TYPE at STAGE: REASON``."""
    e = job.error
    reason = f"{e.type} at {e.stage}: {e.message}" if e else "unknown reason"
    kind = getattr(errors, e.type, None) if e else None
    if not (isinstance(kind, type) and issubclass(kind, MusicVidError)):
        kind = MusicVidError
    return kind(f"job {job.job_id} failed: {reason}", job_id=job.job_id, stage=e.stage if e else None)


def write_clip(clip: Any, dest: str | Path, *, audio_fps: int = 48000) -> Path:
    """Write a moviepy clip to ``dest`` (.mp4) at high quality: H.264 CRF :data:`CLIP_CRF`, 4:2:0
    (odd sides padded by one black row/column), the clip's own fps; its sound, if any, as AAC
    :data:`CLIP_AUDIO_BITRATE` at ``audio_fps`` Hz. BadInput for a clip without a duration or fps;
    MediaToolError when moviepy's ffmpeg fails."""
    duration, fps = getattr(clip, "duration", None), getattr(clip, "fps", None)
    if not duration or duration <= 0:
        raise BadInput("the clip has no duration: give it one (clip.with_duration(seconds))")
    if not fps or fps <= 0:
        raise BadInput("the clip has no frame rate: give it one (clip.with_fps(25))")
    dest = Path(dest)
    try:
        clip.write_videofile(str(dest), fps=fps, codec="libx264", preset="medium",
                             ffmpeg_params=["-crf", str(CLIP_CRF), "-pix_fmt", "yuv420p", "-vf", _EVEN_SIDES],
                             audio=clip.audio is not None, audio_codec="aac", audio_bitrate=CLIP_AUDIO_BITRATE,
                             audio_fps=audio_fps, temp_audiofile_path=str(dest.parent), logger=None)
    except (OSError, ValueError, RuntimeError) as exc:
        raise MediaToolError(f"moviepy could not write the clip: {' '.join(str(exc).split())[:300]}") from None
    return dest


def _moviepy_clip(video: Any):
    """``video`` when it is a moviepy video clip, else None. Looks only at an already imported
    moviepy: whoever holds a clip has imported it, and a file path must not pay for the import."""
    moviepy = sys.modules.get("moviepy")
    clip_type = getattr(moviepy, "VideoClip", None)
    return video if clip_type is not None and isinstance(video, clip_type) else None


def _moviepy():
    try:
        import moviepy
    except ImportError:
        raise ConfigurationError("moviepy is not installed: pip install 'musicvid[notebooks]'") from None
    return moviepy
