"""What a text prompt asks for, as structured fields (pure data; parsing lives in music/prompt.py)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PromptIntent:
    style: str  # a key of music.styles.STYLES (always set: a sensible fallback when nothing matched)
    mood: str  # e.g. "warm", "sad", "tense", "happy", "epic", "calm", "dark", "neutral"
    bpm: float | None = None  # an explicit tempo the prompt asked for ("128 bpm"): honour exactly
    key: str | None = None  # an explicit key ("in D minor" -> "D minor"): honour exactly
    mode: str | None = None  # "major" / "minor" when implied by mood words and no explicit key
    tempo_hint: str | None = None  # "slow" / "medium" / "fast" when words imply a pace
    instruments: list[str] = field(default_factory=list)  # GM instrument names asked for
    energy: float | None = None  # overall energy 0..1 implied by the words
    arc: str | None = None  # energy shape over the video: "build", "fade", "steady", "peak_end"
    understood: dict = field(default_factory=dict)  # what was matched, and "ignored" words
