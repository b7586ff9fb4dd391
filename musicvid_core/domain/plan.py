"""The music plan: timed segments covering the video exactly, each with a text description and
structured fields a generator can follow."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from musicvid_core.domain.errors import PlanValidationError
from musicvid_core.domain.features import Region

_KEY_RE = re.compile(r"[A-G](#|b)? (major|minor)")  # fullmatch: no trailing newline
TIME_EPS = 1e-6
# Music under dialogue sits at least this far below it (Torcoli et al., JAES 2019: >= 10 LU between
# commentary and music). The planner's first guess and the mixer's measured duck both honour it.
SPEECH_CLEARANCE_LU = 10.0


class Segment(BaseModel):
    index: int = Field(ge=0)
    start: float = Field(ge=0)  # seconds
    end: float  # seconds
    prompt: str  # MusicGen-style text description of this segment's music
    style: str
    mood: str
    bpm: float = Field(ge=30, le=240)
    key: str  # e.g. "A minor"
    energy: float = Field(ge=0, le=1)
    instruments: list[str] = Field(default_factory=list)
    # Per-bar energy in 0..1 (follows motion); empty = flat at ``energy``.
    energy_curve: list[float] = Field(default_factory=list)
    # Seconds (from video start) where the segment should accent: scene cuts inside it.
    accents: list[float] = Field(default_factory=list)
    gain_db: float = Field(default=0.0, ge=-60, le=12)  # music level trim for this segment
    # The cut-locked beat grid (music/timing.py): every beat's time in seconds from the video start,
    # the first at ``start``, every 4th a bar line; local tempo may drift a little from ``bpm`` so that
    # cuts land on beats. Empty = an even grid at ``bpm`` from ``start``.
    beats: list[float] = Field(default_factory=list)
    # Seconds (from video start) where the user asked for an accent (``--hit``): a downbeat with a
    # crash or a stab. Also listed in ``accents``.
    hits: list[float] = Field(default_factory=list)
    variation: int = Field(default=0, ge=0)  # bumped by a per-segment re-roll: new random choices

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def mean_energy(self) -> float:
        """The mean of the per-bar energy curve (the segment's energy when it has none)."""
        return sum(self.energy_curve) / len(self.energy_curve) if self.energy_curve else self.energy

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not _KEY_RE.fullmatch(v):
            raise ValueError(f"key must look like 'A minor' or 'F# major', got {v!r}")
        return v

    @model_validator(mode="after")
    def _order(self) -> Segment:
        if self.end - self.start <= TIME_EPS:
            raise ValueError(f"segment {self.index} has no duration ({self.start}..{self.end})")
        if any(not 0 <= e <= 1 for e in self.energy_curve):
            raise ValueError("energy_curve values must be within 0..1")
        if self.beats:
            if any(b <= a for a, b in zip(self.beats, self.beats[1:])):
                raise ValueError(f"segment {self.index}: beats must be strictly increasing")
            if abs(self.beats[0] - self.start) > 1e-3 or self.beats[-1] >= self.end:
                raise ValueError(f"segment {self.index}: beats must start at the segment start and "
                                 "stay before its end")
        return self


class MusicChoice(BaseModel):
    """A plan's real recording (issue 15): which track plays, and why. ``kind`` "track" (the user's
    own: ``track`` its object key) or "library" (``track`` the library track's name); ``sha256`` of
    the file's bytes; ``bpm`` and ``key`` as the analysis found them (None: free time, no steady
    beat); ``score`` 0..1 of a library choice (None for the user's own track)."""

    kind: Literal["track", "library"]
    track: str
    title: str = ""
    sha256: str = ""
    why: str = ""  # one line
    bpm: float | None = None
    key: str = ""
    free_time: bool = False
    score: float | None = None

    def shown_title(self) -> str:
        """What users see it called: its title, but "Your track" for the user's own recording that
        has none other than its stored name (server-made: a uuid says nothing)."""
        stored = self.track.rsplit("/", 1)[-1]
        if self.kind == "track" and self.title in ("", stored, stored.rsplit(".", 1)[0]):
            return "Your track"
        return self.title or stored.rsplit(".", 1)[0]


class Plan(BaseModel):
    duration: float = Field(gt=0)  # seconds: the video stream's duration
    prompt: str
    seed: int = 0
    segments: list[Segment]
    # What the planner understood of the prompt (style, tempo, key, ... and words it ignored).
    understood: dict = Field(default_factory=dict)
    cuts: list[float] = Field(default_factory=list)  # measured scene cuts, seconds
    hits: list[float] = Field(default_factory=list)  # requested accents (``--hit``), seconds
    # Mix controls (deepened by the mixing issue): seconds and dB.
    fade_in_s: float = Field(default=0.5, ge=0)
    fade_out_s: float = Field(default=2.0, ge=0)
    crossfade_s: float = Field(default=0.35, ge=0)  # release overlap at segment boundaries
    music_gain_db: float = Field(default=0.0, ge=-60, le=12)
    original_gain_db: float = Field(default=0.0, ge=-60, le=12)
    # Speech in the original sound (seconds), copied from the analysis: the music ducks under it.
    speech: list[Region] = Field(default_factory=list)
    # Ducking: the least the music is lowered under speech (dB; the mixer deepens it when measurement
    # shows the music would sit less than 10 LU under the speech), and how long the music takes to go
    # down before speech starts (attack) and to come back after it ends (release), in seconds.
    duck_db: float = Field(default=12.0, ge=0, le=40)
    duck_attack_s: float = Field(default=0.15, ge=0.01, le=2)
    duck_release_s: float = Field(default=0.5, ge=0.01, le=3)
    # Music already in the original sound (seconds, from the analysis) and what the mix does with it
    # there: "duck" lowers it so ours leads by >= 10 LU, "replace" mutes it, "keep" leaves it.
    source_music: list[Region] = Field(default_factory=list)
    source_music_policy: Literal["keep", "duck", "replace"] = "duck"
    planner: str = "rules"
    # A real recording edited to the picture (stages/compose/track/fit.py): the music is then ONE
    # continuous edit, each segment's clip an exact slice of it, joined without fades or tails.
    music: MusicChoice | None = None

    @model_validator(mode="after")
    def _tiles(self) -> Plan:
        segs = self.segments
        if not segs:
            raise ValueError("a plan needs at least one segment")
        if abs(segs[0].start) > TIME_EPS:
            raise ValueError("the first segment must start at 0")
        for i, (a, b) in enumerate(zip(segs, segs[1:])):
            if abs(a.end - b.start) > TIME_EPS:
                raise ValueError(f"segments {i} and {i + 1} leave a gap or overlap")
        if abs(segs[-1].end - self.duration) > TIME_EPS:
            raise ValueError("the last segment must end at the video's duration")
        if [s.index for s in segs] != list(range(len(segs))):
            raise ValueError("segment indexes must be 0..n-1 in order")
        return self

    def tail_s(self, index: int) -> float:
        """Seconds of release a segment's clip carries past its end (0 for the last one, and for
        every clip of a real recording's edit: its clips are contiguous slices of one signal)."""
        if self.music is not None:
            return 0.0
        return 0.0 if index == len(self.segments) - 1 else self.crossfade_s

    def clip_samples(self, index: int, sample_rate: int) -> int:
        """Exact length in samples of segment ``index``'s rendered clip (segment + release tail)."""
        seg = self.segments[index]
        start = round(seg.start * sample_rate)
        end = round(seg.end * sample_rate)
        return end - start + round(self.tail_s(index) * sample_rate)

    @classmethod
    def parse(cls, data: dict | str) -> Plan:
        """Validate a plan from a dict or JSON text; raises PlanValidationError with the reason."""
        from pydantic import ValidationError

        try:
            if isinstance(data, str):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise PlanValidationError(f"invalid plan: {where}: {first.get('msg')}") from None
