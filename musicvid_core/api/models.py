"""Request and response shapes of the API (pydantic): validation and the OpenAPI schemas, once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from musicvid_core.domain.job import MAX_PROMPT_CHARS
from musicvid_core.domain.options import LOUDNESS_PRESETS, MAX_TITLE_CHARS, TARGET_RANGE_LUFS, TRUE_PEAK_RANGE_DBTP, clean_title

# The audio types an upload may declare (a music track: mp3, wav, flac, mp4/aac/m4a, ogg, opus, WebM
# audio), each with the extension its stored key gets: the key says what the upload is.
AUDIO_EXT_BY_TYPE = {"audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav",
                     "audio/wave": ".wav", "audio/vnd.wave": ".wav", "audio/flac": ".flac", "audio/x-flac": ".flac",
                     "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/m4a": ".m4a", "audio/aac": ".aac",
                     "audio/x-aac": ".aac", "audio/ogg": ".ogg", "audio/opus": ".opus", "audio/webm": ".weba"}
AUDIO_EXTS = frozenset(AUDIO_EXT_BY_TYPE.values())
CONTENT_TYPE = (r"^(video/[A-Za-z0-9][A-Za-z0-9.+-]{0,62}|audio/("
                + "|".join(t.split("/")[1].replace(".", r"\.") for t in AUDIO_EXT_BY_TYPE) + "))$")
LIBRARY_TRACK = r"^[A-Za-z0-9][A-Za-z0-9 ._()+,'&-]{0,199}$"  # a library track's name (its file name's stem)
TOKEN = r"^[A-Za-z0-9_-]{1,64}$"
UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# A page token as the job stores make them (ports.JobStore._encode_token): base64url body "." its HMAC;
# empty is the first page, as when it is left out.
PAGE_TOKEN = r"^([A-Za-z0-9_-]{1,1960}\.[A-Za-z0-9_-]{43})?$"
LOUDNESS = Literal[tuple(LOUDNESS_PRESETS)]  # the schema names exactly the presets JobOptions knows


def _integral(value):
    """``61.0`` is an integer to JSON Schema (and so to every generated client): take it as 61.
    Booleans and fractions stay refused (strict validation)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _no_default(schema: dict) -> None:
    schema.pop("default", None)  # absent, not null: null is refused


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # JSON as sent: no true -> 1, no "5" -> 5


class UploadRequest(_In):
    content_type: str = Field(pattern=CONTENT_TYPE, description="the file's MIME type: a video (video/*), or "
                              "a music track (audio/: mpeg, wav, flac, mp4, aac, m4a, ogg, opus, webm)")
    size: int | None = Field(default=None, ge=1, description="the file's size in bytes (checked against the limit)")

    _whole = field_validator("size", mode="before")(_integral)


class MusicRequest(_In):
    """Where the music comes from. ``track`` (your own recording) needs ``s3_url`` and may have a
    ``title``; ``library`` may name a track; ``procedural`` takes none of them."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"properties": {"source": {"const": "procedural"}}, "not": {"anyOf": [{"required": ["s3_url"]},
                                                                             {"required": ["track"]},
                                                                             {"required": ["title"]}]}},
        {"properties": {"source": {"const": "library"}}, "not": {"anyOf": [{"required": ["s3_url"]},
                                                                          {"required": ["title"]}]}},
        {"properties": {"source": {"const": "track"}}, "required": ["s3_url"], "not": {"required": ["track"]}}]})

    source: Literal["procedural", "library", "track"] = Field(
        description="procedural: the composer; library: a track from the bundled library, chosen for the prompt "
                    "and the picture (or the one named by track), edited to the cuts; track: your own recording "
                    "(s3_url), edited to the cuts")
    s3_url: str = Field(default=None, min_length=1, max_length=1024, json_schema_extra=_no_default,
                        description="source track: the object URI POST /uploads returned for your audio file")
    track: str = Field(default=None, pattern=LIBRARY_TRACK, json_schema_extra=_no_default,
                       description="source library: the name of the track to use (else the best fit is chosen)")
    title: str = Field(default=None, min_length=1, max_length=MAX_TITLE_CHARS, json_schema_extra=_no_default,
                       description="source track: what to call your recording in the plan and the job view "
                                   "(e.g. the file's name; else \"Your track\"). Display text only: line breaks "
                                   "and other control characters are dropped")

    _title = field_validator("title")(lambda v: v if v is None else clean_title(v))

    @model_validator(mode="after")
    def _fits_source(self) -> MusicRequest:
        if self.source == "track" and (self.s3_url is None or self.track is not None):
            raise ValueError("source track needs s3_url (your audio upload) and takes no track name")
        if self.source == "library" and (self.s3_url is not None or self.title is not None):
            raise ValueError("source library takes a track name, not s3_url or title")
        if self.source == "procedural" and (self.s3_url is not None or self.track is not None or
                                            self.title is not None):
            raise ValueError("source procedural takes neither s3_url nor track nor title")
        return self


class SubmitRequest(_In):
    # Exactly one of s3_url (NEW, with a prompt) and job_id (REGENERATE, the prompt optional); none of
    # the three is nullable (null is not "absent").
    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["s3_url", "prompt"]},
                                                           {"required": ["job_id"]}]})

    s3_url: str = Field(default=None, min_length=1, max_length=1024, json_schema_extra=_no_default,
                        description="NEW: the object URI returned by POST /uploads")
    job_id: str = Field(default=None, pattern=UUID_RE, json_schema_extra=_no_default,
                        description="REGENERATE: one of your jobs")
    prompt: str = Field(default=None, min_length=1, max_length=MAX_PROMPT_CHARS, pattern=r"\S",
                        json_schema_extra=_no_default,
                        description="what the music should be like. REGENERATE: appended to the job's prompts "
                                    "(left out: the current prompt again); with segment: that segment's only")
    client_token: str | None = Field(default=None, pattern=TOKEN,
                                     description="idempotency key: the same token returns the same job")
    segment: int | None = Field(default=None, ge=0, le=10_000,
                                description="REGENERATE: re-roll only this segment (0-based); the others stay bit-identical")
    hits: list[Annotated[float, Field(ge=0)]] | None = Field(default=None, max_length=64,
                                     description="seconds where the music should hit (a downbeat with a crash)")
    # The render options the CLI has (JobOptions). On REGENERATE, an option left out (or null) keeps the job's.
    preview: bool | None = Field(default=None, description="true: a fast small proxy (360p, quick encodes) "
                                 "instead of the full render; the job view's preview says which one final_url is")
    stems: bool | None = Field(default=None, description="true: keep the mixer's stems (music, original, master "
                               "WAVs as long as the video); the job view links them in stem_urls")
    loudness: LOUDNESS | None = Field(default=None, description="loudness preset: web (-14 LUFS), apple (-16), "
                                      "broadcast (-23); all -1 dBTP. Default web")
    target_lufs: float | None = Field(default=None, ge=TARGET_RANGE_LUFS[0], le=TARGET_RANGE_LUFS[1],
                                      description="integrated loudness target, LUFS (over the preset's)")
    true_peak_dbtp: float | None = Field(default=None, ge=TRUE_PEAK_RANGE_DBTP[0], le=TRUE_PEAK_RANGE_DBTP[1],
                                         description="true-peak ceiling, dBTP (over the preset's)")
    source_music: Literal["keep", "duck", "replace"] | None = Field(
        default=None, description="music already in the video's sound: keep it, duck it (ours leads by >= 10 LU) "
                                  "or replace it (muted there). Default duck")

    music: MusicRequest | None = Field(default=None, description="where the music comes from (default procedural). "
                                       "REGENERATE: left out, the job's music stays; given, it replaces it")

    _whole = field_validator("segment", mode="before")(_integral)

    def options(self) -> dict:
        """The render options this request sets, as :meth:`JobOptions.parse` takes them (hits apart;
        a track's ``s3_url`` as given: the use case checks it is the caller's and exists)."""
        out = {k: v for k in ("preview", "stems", "loudness", "target_lufs", "true_peak_dbtp", "source_music")
               if (v := getattr(self, k)) is not None}
        if self.music is not None:
            out["music"] = {"kind": self.music.source, "track": self.music.s3_url or self.music.track,
                            **({"title": self.music.title} if self.music.title is not None else {})}
        return out


class UploadForm(BaseModel):
    url: str
    fields: dict[str, str]


class UploadResponse(BaseModel):
    s3_url: str = Field(description="the object URI to submit once the file is uploaded")
    upload: UploadForm = Field(description="POST the file as multipart/form-data to url with these fields")
    expires_in: int = Field(description="seconds the upload form stays valid")
    max_bytes: int


class SubmitResponse(BaseModel):
    job_id: str
    status: Literal["SCHEDULED", "PROCESSING", "COMPLETED", "FAILED"]


class JobErrorView(BaseModel):
    type: str
    message: str
    stage: str


class RegionView(BaseModel):
    start: float = Field(description="seconds from the video start")
    end: float = Field(description="seconds from the video start")


class SegmentView(BaseModel):
    index: int = Field(description="0-based: what POST /jobs takes as segment to re-roll it")
    start: float = Field(description="seconds from the video start")
    end: float = Field(description="seconds from the video start")
    style: str
    mood: str
    bpm: float = Field(description="tempo, beats per minute")
    key: str = Field(description='e.g. "A minor"')
    energy: float = Field(description="0..1")
    hits: list[float] = Field(description="requested accents inside this segment, seconds from the video start")


class MusicView(BaseModel):
    """The recording a plan plays (a library track or your own), and why."""

    kind: Literal["library", "track"] = Field(description="library: a bundled track; track: your own recording")
    title: str
    why: str = Field(description="one line: why this track (library), or how it was fitted")
    bpm: float | None = Field(description="the track's tempo as analysed, beats per minute; null: free time")
    key: str = Field(description='as analysed, e.g. "A minor"; empty when unknown')
    free_time: bool = Field(description="no steady beat: phrase-level seams")


class PlanView(BaseModel):
    """The public parts of a job's music plan (timings in seconds from the video start)."""

    duration: float = Field(description="the video stream's duration, seconds")
    segments: list[SegmentView]
    cuts: list[float] = Field(description="measured scene cuts")
    speech: list[RegionView] = Field(description="speech in the original sound (the music ducks under it)")
    source_music: list[RegionView] = Field(description="music already in the original sound")
    hits: list[float] = Field(description="requested accents")
    music: MusicView | None = Field(default=None, description="the recording the music is cut from; null: "
                                    "composed (procedural)")


class JobView(BaseModel):
    job_id: str
    status: Literal["SCHEDULED", "PROCESSING", "COMPLETED", "FAILED"]
    stage: str
    operation_type: Literal["NEW", "REGENERATE"]
    prompts: list[str]
    created_at: datetime
    updated_at: datetime
    error: JobErrorView | None
    summary: str | None
    final_url: str | None = Field(description="a presigned download URL of the result when COMPLETED")
    preview: bool = Field(default=False, description="final_url is the quick preview (360p), not the full render")
    stem_urls: dict[str, str] = Field(default_factory=dict, description="presigned download URLs of the result's "
                                      "stems (music, original, master WAVs) when it kept them; else empty")
    input_url: str | None = Field(default=None, description="GET /jobs/{job_id} only: a presigned download URL "
                                  "of your uploaded video (the original sound, for an A/B comparison)")
    plan: PlanView | None = Field(default=None, description="GET /jobs/{job_id} only: the music plan as soon "
                                  "as the analysis has made it (during a regeneration, the previous one's)")


class JobList(BaseModel):
    jobs: list[JobView]
    next: str | None = Field(description="opaque token for the next page, bound to the caller; null at the end")


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code (the error tree's code)")
    message: str
