"""Measured facts about an input video (what the analysis produces and the planner consumes)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AudioStreamInfo(BaseModel):
    index: int  # audio stream ordinal (0 = first audio stream, as in ffmpeg's 0:a:0)
    codec: str
    sample_rate: int
    channels: int
    layout: str = ""  # e.g. "stereo", "5.1(side)"
    default: bool = False  # the container's default flag
    silent: bool | None = None  # measured only when there is a choice of main track (None: not measured)


class StreamInfo(BaseModel):
    """One stream of the input, as ``ffmpeg -i`` lists it (every kind, in the file's order)."""

    index: int  # the input's stream index (ffmpeg's 0:N)
    kind: str  # video, audio, subtitle, data, attachment
    codec: str  # ffmpeg's codec name ("h264", "subrip", "none" for a tmcd track)
    tag: str = ""  # the codec tag where ffmpeg prints one ("avc1", "tmcd", "gpmd")
    language: str = ""
    default: bool = False
    attached_pic: bool = False  # cover art stored as a video stream


class MediaInfo(BaseModel):
    """What the probe found. Times in seconds, sizes in pixels."""

    path: str = ""
    container: str = ""
    duration: float  # seconds of the video stream (falls back to the container's)
    width: int
    height: int
    fps: float
    video_codec: str
    rotation: int = 0  # degrees, from the display matrix
    audio: list[AudioStreamInfo] = Field(default_factory=list)
    # The player's timeline (issue 17): ``start`` is where the first *presented* frame sits, seconds
    # after the container's start (a video that starts after its sound); frames an edit list hides
    # (decoded, never shown: the lead-in of a lossless trim) are counted in ``hidden_frames`` and are
    # part of neither ``duration`` nor ``fps``.
    start: float = 0.0
    hidden_frames: int = 0
    main_audio: int | None = None  # audio ordinal of the track the music replaces (None: first, if any)
    streams: list[StreamInfo] = Field(default_factory=list)  # every stream, in the file's order
    chapters: int = 0

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    @property
    def main_track(self) -> int:
        """Audio ordinal (ffmpeg's ``0:a:N``) of the track the mix replaces and the analysis hears."""
        return self.main_audio if self.main_audio is not None else 0


class Cut(BaseModel):
    time: float  # seconds
    strength: float = Field(ge=0, le=1)  # 1 = hard cut with a big content change


class Curve(BaseModel):
    """A feature sampled over time: ``times`` in seconds, ``values`` in the feature's units."""

    times: list[float] = Field(default_factory=list)
    values: list[float] = Field(default_factory=list)


class Region(BaseModel):
    start: float
    end: float


class VideoFeatures(BaseModel):
    media: MediaInfo
    cuts: list[Cut] = Field(default_factory=list)
    motion: Curve = Field(default_factory=Curve)  # 0..1, normalised frame-difference energy
    brightness: Curve = Field(default_factory=Curve)  # 0..1 mean luma
    loudness: Curve = Field(default_factory=Curve)  # original audio, short-term LUFS (-70 = silence)
    speech: list[Region] = Field(default_factory=list)  # speech activity in the original audio
    music: list[Region] = Field(default_factory=list)  # music in the original audio (not speech)
    audio_integrated_lufs: float | None = None  # None when there is no audio track
