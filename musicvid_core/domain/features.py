"""Measured facts about an input video (what the analysis produces and the planner consumes)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AudioStreamInfo(BaseModel):
    index: int  # audio stream ordinal (0 = first audio stream, as in ffmpeg's 0:a:0)
    codec: str
    sample_rate: int
    channels: int
    layout: str = ""  # e.g. "stereo", "5.1(side)"


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

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)


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
