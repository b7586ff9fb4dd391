"""A moviepy edit for the notebooks: what a user builds by hand before scoring it.

Notebook cells only call musicvid_core, so notebook 01 asks this module for "the user's own edit"
(docs/python-api.md shows the same few moviepy lines written out). moviepy comes with the
``[notebooks]`` extra and is imported on use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from musicvid_core.domain.errors import BadInput, ConfigurationError


def cut(video: str | Path, spans: Sequence[Sequence[float]]):
    """A moviepy clip of ``video``'s ``spans`` (``[start, end]`` pairs, seconds, in the order
    given) joined with hard cuts, sound kept: a CompositeVideoClip to score with
    ``musicvid_core.score``. BadInput for a missing file or a span outside the video;
    ConfigurationError when moviepy is not installed."""
    try:
        from moviepy import VideoFileClip, concatenate_videoclips
    except ImportError:
        raise ConfigurationError("the edit needs moviepy: pip install 'musicvid[notebooks]'") from None
    path = Path(video).expanduser()
    if not path.is_file():
        raise BadInput(f"no such video: {path}")
    if not spans:
        raise BadInput("the edit needs at least one [start, end] span")
    source = VideoFileClip(str(path))
    try:
        return concatenate_videoclips([source.subclipped(*_span(span, source.duration)) for span in spans])
    except BadInput:
        source.close()  # its ffmpeg reader processes
        raise


def _span(span, duration: float) -> tuple[float, float]:
    try:
        start, end = (float(t) for t in span)
    except (TypeError, ValueError):
        raise BadInput(f"a span is [start, end] in seconds, got {span!r}") from None
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end <= duration):
        raise BadInput(f"span {list(span)!r} is outside the video or empty (0..{duration:g} s)")
    return start, end
