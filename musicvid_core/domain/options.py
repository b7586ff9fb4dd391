"""JobOptions: what a user may ask of one job's render, validated once, when the job is submitted.

Loudness presets: where the finished soundtrack is headed decides its loudness target, integrated
loudness (LUFS) and true-peak ceiling (dBTP) per delivery:

- ``web`` (-14 / -1): YouTube, Spotify, most social platforms normalise to about -14 LUFS;
- ``apple`` (-16 / -1): Apple Music / Podcasts' reference level;
- ``broadcast`` (-23 / -1): EBU R128 (R128 allows -1 dBTP for the true peak).

A preset is resolved into ``target_lufs`` and ``true_peak_dbtp`` by :meth:`JobOptions.parse`; the
job keeps the numbers, not the preset's name.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_serializer, model_validator

from musicvid_core.domain.errors import BadInput

LOUDNESS_PRESETS: dict[str, tuple[float, float]] = {
    "web": (-14.0, -1.0),
    "apple": (-16.0, -1.0),
    "broadcast": (-23.0, -1.0),
}
DEFAULT_PRESET = "web"  # what Settings.target_lufs / true_peak_dbtp default to
TARGET_RANGE_LUFS = (-40.0, -5.0)
TRUE_PEAK_RANGE_DBTP = (-9.0, 0.0)
SOURCE_MUSIC_POLICIES = ("keep", "duck", "replace")  # Plan.source_music_policy
OUTPUT_FORMATS = ("mp4", "m4v", "mov", "mkv", "webm")  # stages/mix/container.py writes each as its real format
MAX_AUDIO_TRACK = 63
MAX_HITS = 1000  # requested accents per job
MAX_TITLE_CHARS = 200  # a recording's display title (the user's file name)


def clean_hits(hits: Any) -> list[float]:
    """Requested accent times (seconds from the video start) as sorted unique floats; BadInput for
    anything that is not a finite number >= 0, or for more than MAX_HITS of them."""
    if isinstance(hits, (int, float, str)) or not hasattr(hits, "__iter__"):
        raise BadInput("hits must be a list of seconds")
    out = set()
    for h in hits:
        try:
            t = float(h)
        except (TypeError, ValueError):
            raise BadInput(f"a hit must be a number of seconds, got {h!r}") from None
        if isinstance(h, bool) or not math.isfinite(t) or t < 0:
            raise BadInput(f"a hit must be a number of seconds >= 0, got {h!r}")
        out.add(round(t, 3))
    if len(out) > MAX_HITS:
        raise BadInput(f"at most {MAX_HITS} hits")
    return sorted(out)


def clean_title(text: Any) -> str:
    """A recording's display title (the user's file name: shown in the plan, the job view, the web
    app; never a path or a key): runs of white space one space, control and format characters
    (Unicode categories C*: line breaks, escapes, bidi overrides) dropped. ValueError for anything
    not text, with nothing visible left, or longer than MAX_TITLE_CHARS."""
    if not isinstance(text, str):
        raise ValueError("music title must be text")
    out = "".join(ch for ch in " ".join(text.split()) if not unicodedata.category(ch).startswith("C")).strip()
    if not out:
        raise ValueError("music title must have visible characters")
    if len(out) > MAX_TITLE_CHARS:
        raise ValueError(f"music title must be at most {MAX_TITLE_CHARS} characters")
    return out


def title_of(name: str) -> str | None:
    """The display title for a file named ``name`` (its name only, no folder): clean_title's,
    shortened with an ellipsis to MAX_TITLE_CHARS; None when nothing visible is left."""
    text = " ".join(str(name).split())
    if len(text) > MAX_TITLE_CHARS:
        text = text[:MAX_TITLE_CHARS - 1] + "\u2026"
    try:
        return clean_title(text)
    except ValueError:
        return None


def _level(key: str, value: Any, bounds: tuple[float, float], unit: str) -> float:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number") from None
    lo, hi = bounds
    if not lo <= number <= hi:  # NaN fails this too
        raise ValueError(f"{key} must be between {lo:g} and {hi:g} {unit}")
    return number


MUSIC_KINDS = ("procedural", "library", "track")


class MusicSource(BaseModel):
    """Where a job's music comes from: ``procedural`` (the deployment's generator), ``library`` (a
    bundled or MUSICVID_LIBRARY track, chosen for the prompt and the picture; ``track`` optionally
    names one to force, by file name without extension) or ``track`` (the user's own recording:
    ``track`` is its object key in the store, under the user's ``uploads/{user}/``; ``title`` what
    to call it: display text only, see :func:`clean_title`; left out, the plan names it by its key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["procedural", "library", "track"] = "procedural"
    track: str | None = None
    title: str | None = None

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, v: Any) -> Any:
        return None if v is None else clean_title(v)

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict:
        out = handler(self)
        if out.get("title") is None:  # untitled: the shape it had before titles
            out.pop("title", None)
        return out

    @field_validator("track", mode="before")
    @classmethod
    def _track_text(cls, v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, str) or not v.strip() or len(v) > 1024 or not v.isprintable():
            raise ValueError("music track must be a non-empty name or object key (at most 1024 characters)")
        return v.strip()

    @model_validator(mode="after")
    def _needs_track(self) -> MusicSource:
        if self.kind == "track" and not self.track:
            raise ValueError("music of kind 'track' needs the track's object key")
        if self.kind == "procedural" and self.track:
            raise ValueError("procedural music takes no track")
        if self.kind != "track" and self.title is not None:
            raise ValueError("a music title names your own track (kind 'track'); a library track has its own")
        return self


class JobOptions(BaseModel):
    """A job's render options. Unset (None) levels and policy fall back to the Settings' defaults
    at render time; the booleans default to off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_lufs: float | None = None  # integrated loudness of the output, LUFS (TARGET_RANGE_LUFS)
    true_peak_dbtp: float | None = None  # true-peak ceiling, dBTP (TRUE_PEAK_RANGE_DBTP)
    source_music: Literal["keep", "duck", "replace"] | None = None  # music already in the video's sound
    preview: bool = False  # a small, fast proxy written as output_preview{ext}
    stems: bool = False  # keep the mixer's stems with the job
    music_metrics: bool = False  # measure the music bus (librosa's analysis is not free)
    hits: list[float] | None = None  # seconds where the music should accent; None: none asked for
    container: Literal["mp4", "m4v", "mov", "mkv", "webm"] | None = None  # output format; None: the input's
    audio_track: int | None = None  # the audio track the music replaces (0-based, 0:a:N); None: chosen
    music: MusicSource | None = None  # where the music comes from; None: the deployment's generator

    @field_validator("container", mode="before")
    @classmethod
    def _container(cls, v: Any) -> Any:
        if v is None:
            return None
        name = str(v).lower().lstrip(".")
        if name not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {v!r}; choose one of: {', '.join(OUTPUT_FORMATS)}")
        return name

    @field_validator("audio_track", mode="before")
    @classmethod
    def _track(cls, v: Any) -> Any:
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_AUDIO_TRACK):
            raise ValueError(f"audio_track must be a whole number from 0 to {MAX_AUDIO_TRACK}")
        return v

    @field_validator("target_lufs", mode="before")
    @classmethod
    def _target(cls, v: Any) -> Any:
        return None if v is None else _level("target_lufs", v, TARGET_RANGE_LUFS, "LUFS")

    @field_validator("true_peak_dbtp", mode="before")
    @classmethod
    def _peak(cls, v: Any) -> Any:
        return None if v is None else _level("true_peak_dbtp", v, TRUE_PEAK_RANGE_DBTP, "dBTP")

    @field_validator("source_music", mode="before")
    @classmethod
    def _policy(cls, v: Any) -> Any:
        if v is not None and v not in SOURCE_MUSIC_POLICIES:
            raise ValueError(f"unknown source music policy {v!r}; choose one of: {', '.join(SOURCE_MUSIC_POLICIES)}")
        return v

    @field_validator("hits", mode="before")
    @classmethod
    def _hits(cls, v: Any) -> Any:
        try:
            return None if v is None else clean_hits(v)
        except BadInput as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def parse(cls, options: Mapping[str, Any] | JobOptions | None) -> JobOptions:
        """Options as a client gives them: ``loudness`` (a preset name of LOUDNESS_PRESETS) resolved
        into ``target_lufs`` and ``true_peak_dbtp``, explicit values over the preset's; None values
        left out (unset). A JobOptions is returned as it is. Raises BadInput (one line) for an unknown
        option, preset or policy, a value of the wrong type, or a level out of range."""
        if isinstance(options, JobOptions):
            return options
        if options is not None and not isinstance(options, Mapping):
            raise BadInput("job options must map option names to values")
        raw = {k: v for k, v in (options or {}).items() if v is not None}
        preset = raw.pop("loudness", None)
        if preset is not None:
            if preset not in LOUDNESS_PRESETS:
                raise BadInput(f"unknown loudness preset {preset!r}; choose one of: {', '.join(LOUDNESS_PRESETS)}")
            target, peak = LOUDNESS_PRESETS[preset]
            raw = {"target_lufs": target, "true_peak_dbtp": peak, **raw}
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise BadInput(_one_line(exc)) from None

    def given(self) -> dict[str, Any]:
        """The options the client set (what a regeneration's options replace), as plain values."""
        return self.model_dump(include=self.model_fields_set)

    def merged(self, changed: JobOptions) -> JobOptions:
        """These options with the ones ``changed`` sets replacing those of the same name."""
        # the set values themselves, not given()'s dump: model_copy does not validate (music stays a MusicSource)
        return self.model_copy(update={k: getattr(changed, k) for k in changed.model_fields_set})


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first.get("loc", ())) or "options"
    if first.get("type") == "extra_forbidden" and key.startswith("music."):
        return f"unknown music field {key[6:]!r}; choose from: kind, track, title"
    if first.get("type") == "extra_forbidden":
        return f"unknown job option {key!r}; choose from: {', '.join(JobOptions.model_fields)}, loudness"
    if first.get("type") == "value_error":
        return str(first["ctx"]["error"])
    if str(first.get("type", "")).startswith("bool"):
        return f"{key} must be true or false"
    return f"{key}: {first.get('msg', 'invalid')}"
