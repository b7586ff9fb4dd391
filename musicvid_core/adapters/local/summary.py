"""Template summarizer: a short readable text of what was made (the offline default)."""

from __future__ import annotations

from musicvid_core.domain.job import Job
from musicvid_core.domain.plan import Plan


def _clock(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    return f"{int(m)}:{s:04.1f}"


class TemplateSummarizer:
    name = "template"

    def __init__(self, settings=None) -> None:
        self.settings = settings

    def summarize(self, job: Job, plan: Plan, metrics: dict) -> str:
        """A few lines: the prompt, the recording the music is cut from (if any), one line per
        segment (time, style, tempo, key, energy), and the measured loudness of the output."""
        n = len(plan.segments)
        lines = [f"{_clock(plan.duration)} of music for \"{job.prompt}\" in {n} segment"
                 f"{'s' if n != 1 else ''}"
                 + (f" (regeneration {job.attempt - 1})" if job.attempt > 1 else "") + "."]
        music = getattr(plan, "music", None)
        if music is not None:
            lines.append(f"Cut from {music.shown_title()}" + (f": {music.why}" if music.why else "") + ".")
        for seg in plan.segments:
            lines.append(f"  {_clock(seg.start)}-{_clock(seg.end)}  {seg.style}, {seg.mood}, "
                         f"{seg.bpm:.0f} bpm, {seg.key}, energy {seg.energy:.2f}"
                         + (f", {len(seg.accents)} cut accent{'s' if len(seg.accents) != 1 else ''}"
                            if seg.accents else ""))
        if metrics.get("integrated_lufs") is not None:
            lines.append(f"Mastered to {metrics['integrated_lufs']:.1f} LUFS integrated, true peak "
                         f"{metrics.get('true_peak_dbtp', float('nan')):.1f} dBTP.")
        return "\n".join(lines)
