"""Pictures worth looking at: the figures and players the notebooks show.

Every function returns a matplotlib ``Figure`` (or an IPython display object) and never shows or
saves anything itself; :func:`save` writes a figure to PNG. matplotlib (the ``[notebooks]`` extra)
is imported on first use, with the non-interactive Agg backend unless a backend is already chosen
(Jupyter's inline backend is kept), so the package imports without it.

Times are seconds from the video's first frame, loudness in LUFS, levels in dBFS.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from musicvid_core.domain.errors import BadInput, ConfigurationError
from musicvid_core.domain.features import VideoFeatures
from musicvid_core.domain.plan import Plan
from musicvid_core.lab.readers import audio_of, loudness_series, read_audio, thumbnails

# One colour per style name, stable across figures (matplotlib's tab10, cycled by first appearance
# would change with the order; hashing the name keeps "electronic" the same colour everywhere).
_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
            "#9c755f", "#bab0ac")
SPEECH_COLOUR = "#e15759"
CUT_COLOUR = "#222222"
BEAT_COLOUR = "#7f7f7f"
_DASHES = ("-", "--", "-.", ":")
EMBED_LIMIT_BYTES = 8 * 1024 * 1024  # players embed media up to this size, else link to the file


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise ConfigurationError("figures need matplotlib: install the [notebooks] extra") from None
    modules = __import__("sys").modules
    if "matplotlib.pyplot" not in modules and "ipykernel" not in modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")  # headless unless Jupyter (or the user) already picked a backend
    import matplotlib.pyplot as plt

    return plt


def style_colour(style: str) -> str:
    """A fixed colour for a style name (same in every figure)."""
    return _PALETTE[sum(style.encode()) % len(_PALETTE)]


def show(fig, save_to: str | Path | None = None) -> None:
    """Display ``fig`` once in a notebook (or do nothing outside one), write it to ``save_to``
    (PNG) when given, and close it so it is neither shown twice nor kept in memory. Returns None,
    so a cell ending with it shows the figure only."""
    if save_to is not None:
        save(fig, save_to)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(fig)
    _plt().close(fig)


def save(fig, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (PNG unless the suffix says otherwise) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


# ---------------------------------------------------------------------------------------------
# the timeline
# ---------------------------------------------------------------------------------------------
def beat_times(plan: Plan) -> tuple[list[float], list[float]]:
    """(beats, bar starts) in seconds of the whole video, from each segment's tempo: the grid the
    composer writes its notes on (stages.compose.grid.beat_grid, bar 0 at the segment start)."""
    from musicvid_core.stages.compose.grid import beat_grid

    beats: list[float] = []
    bars: list[float] = []
    for seg in plan.segments:
        grid = beat_grid(seg.bpm, seg.duration)
        beats += [seg.start + b for b in grid.beats]
        bars += [seg.start + b for b in grid.bars]
    return beats, bars


def timeline(video: str | Path | None, features: VideoFeatures, plan: Plan | None = None, *,
             n_thumbnails: int = 8, detected_beats: Sequence[float] | None = None,
             title: str | None = None, width: float = 13.0):
    """The timeline figure: thumbnails along time; scene cuts; the motion curve and the original
    sound's short-term loudness; speech regions; the plan's segments labelled with style, tempo and
    key; the beat grid (bar lines stronger), and ``detected_beats`` (seconds, e.g. tracked in the
    rendered music) when given. ``video`` None leaves out the thumbnails."""
    plt = _plt()
    duration = features.media.duration
    rows = [("thumbs", 1.1)] if video is not None and n_thumbnails > 0 else []
    rows += [("curves", 1.6), ("regions", 0.5)]
    if plan is not None:
        rows += [("segments", 0.9), ("beats", 0.45)]
    fig, axes = plt.subplots(len(rows), 1, figsize=(width, sum(h for _, h in rows) * 1.15 + 0.6),
                             sharex=True, gridspec_kw={"height_ratios": [h for _, h in rows]})
    axes = dict(zip([name for name, _ in rows], [axes] if len(rows) == 1 else list(axes)))
    cuts = [c.time for c in features.cuts]

    if "thumbs" in axes:
        ax = axes["thumbs"]
        step = duration / n_thumbnails
        centres = [step * (i + 0.5) for i in range(n_thumbnails)]
        for t, img in zip(centres, thumbnails(video, centres)):
            # each thumbnail fills its time slot; its height follows the axis
            ax.imshow(img, extent=(t - step / 2 * 0.96, t + step / 2 * 0.96, 0, 1), aspect="auto")
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.set_ylabel("picture", rotation=0, ha="right", va="center")

    ax = axes["curves"]
    if features.motion.times:
        ax.fill_between(features.motion.times, features.motion.values, color="#59a14f", alpha=0.35, lw=0)
        ax.plot(features.motion.times, features.motion.values, color="#2f6b2a", lw=1.2, label="motion (0..1)")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("motion", rotation=0, ha="right", va="center")
    if features.loudness.times and features.audio_integrated_lufs is not None:
        ax2 = ax.twinx()
        ax2.plot(features.loudness.times, features.loudness.values, color="#4e79a7", lw=1.2,
                 label="original sound, short-term LUFS")
        ax2.set_ylim(-70, 0)
        ax2.set_ylabel("LUFS", color="#4e79a7")
        ax2.tick_params(axis="y", colors="#4e79a7")
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    else:
        handles = ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.8)

    ax = axes["regions"]
    for r in features.speech:
        ax.axvspan(r.start, r.end, ymin=0.1, ymax=0.9, color=SPEECH_COLOUR, alpha=0.55, lw=0)
    for r in features.music:
        ax.axvspan(r.start, r.end, ymin=0.1, ymax=0.9, color="#b07aa1", alpha=0.45, lw=0)
    ax.set_yticks([])
    ax.set_ylabel("speech" + (" / music" if features.music else ""), rotation=0, ha="right", va="center")
    if not features.speech and not features.music:
        ax.text(duration / 2, 0.5, "no speech detected", ha="center", va="center", fontsize=8, color="#777")

    if plan is not None:
        ax = axes["segments"]
        for seg in plan.segments:
            ax.axvspan(seg.start, seg.end, ymin=0.05, ymax=0.95, color=style_colour(seg.style), alpha=0.55,
                       lw=1, ec="white")
            label = f"{seg.style}\n{seg.bpm:.0f} bpm · {seg.key}"
            ax.text((seg.start + seg.end) / 2, 0.5, label, ha="center", va="center", fontsize=8,
                    color="#111111", fontweight="bold", clip_on=True)
        ax.set_yticks([])
        ax.set_ylabel("music plan", rotation=0, ha="right", va="center")

        ax = axes["beats"]
        beats, bars = beat_times(plan)
        ax.vlines(beats, 0.25, 0.75, color=BEAT_COLOUR, lw=0.6)
        ax.vlines(bars, 0.0, 1.0, color="#333333", lw=1.3)
        if detected_beats is not None:
            ax.plot(list(detected_beats), [0.5] * len(detected_beats), "v", color="#f28e2b", ms=4,
                    label="beats heard")
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.set_ylabel("beats / bars", rotation=0, ha="right", va="center")

    for name, ax in axes.items():
        for c in cuts:
            ax.axvline(c, color=CUT_COLOUR, lw=1.2, ls="--" if name != "thumbs" else "-", alpha=0.8)
        ax.set_xlim(0, duration)
    last = axes[rows[-1][0]]
    last.set_xlabel("time (s)   — dashed lines: scene cuts")
    fig.suptitle(title or (f"{Path(str(video)).name}" if video is not None else "timeline"), fontsize=11)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# loudness and waveforms
# ---------------------------------------------------------------------------------------------
def loudness_curves(sources: Mapping[str, str | Path], *, target_lufs: float | None = None,
                    speech: Sequence[Any] = (), title: str = "loudness over time"):
    """Momentary (thin) and short-term (thick) loudness of each labelled audio/video file, one
    colour per label, on one axis; ``target_lufs`` draws the integrated target, ``speech`` (regions
    with start/end, or pairs) shades the dialogue."""
    plt = _plt()
    if not sources:
        raise BadInput("loudness_curves needs at least one file")
    fig, ax = plt.subplots(figsize=(12, 4))
    for r in speech:
        start, end = (r.start, r.end) if hasattr(r, "start") else r
        ax.axvspan(start, end, color=SPEECH_COLOUR, alpha=0.12, lw=0)
    end = 0.0
    for i, (label, path) in enumerate(sources.items()):
        s = loudness_series(path)
        colour = _PALETTE[i % len(_PALETTE)]
        nan = float("nan")
        dash = _DASHES[i % len(_DASHES)]
        ax.plot(s["time"], [nan if v is None else v for v in s["momentary"]], color=colour, lw=0.7, alpha=0.55)
        # later curves are drawn dashed and thinner so identical curves stay visible on top of each other
        ax.plot(s["time"], [nan if v is None else v for v in s["short_term"]], color=colour, ls=dash,
                lw=max(1.2, 2.6 - 0.4 * i), label=f"{label}")
        end = max([end, *s["time"]])
    ax.set_xlim(0, end or 1)
    if target_lufs is not None:
        ax.axhline(target_lufs, color="#333", ls=":", lw=1, label=f"target {target_lufs:g} LUFS")
    ax.set_ylim(-60, 0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("LUFS")
    ax.set_title(title + " — thin: momentary (0.4 s), thick: short-term (3 s)"
                 + (", shaded: speech" if speech else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", ncol=2)
    fig.tight_layout()
    return fig


def waveforms(sources: Mapping[str, str | Path], *, speech: Sequence[Any] = (), rate: int = 4000,
              title: str = "waveforms"):
    """One waveform row per labelled file (first audio stream, mono), peak envelope on a shared
    time axis, with ``speech`` regions shaded."""
    import numpy as np

    plt = _plt()
    if not sources:
        raise BadInput("waveforms needs at least one file")
    fig, axes = plt.subplots(len(sources), 1, figsize=(12, 1.3 * len(sources) + 0.6), sharex=True,
                             squeeze=False)
    end = 0.0
    for i, (ax, (label, path)) in enumerate(zip(axes[:, 0], sources.items())):
        y, sr = read_audio(path, rate=rate)
        hop = max(1, sr // 100)  # 10 ms envelope: plots fast, keeps every peak visible
        n = len(y) // hop
        env = np.abs(y[: n * hop]).reshape(n, hop).max(axis=1) if n else np.zeros(0)
        t = np.arange(n) * hop / sr
        for r in speech:
            lo, hi = (r.start, r.end) if hasattr(r, "start") else r
            ax.axvspan(lo, hi, color=SPEECH_COLOUR, alpha=0.12, lw=0)
        ax.fill_between(t, -env, env, color=_PALETTE[i % len(_PALETTE)], lw=0)
        ax.set_ylim(-1, 1)
        ax.set_yticks([-1, 0, 1])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        ax.grid(alpha=0.2)
        end = max(end, len(y) / sr)
    axes[-1, 0].set_xlim(0, end or 1)  # shared x: sets every row
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title + (" (shaded: speech)" if speech else ""), fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# comparisons and summaries
# ---------------------------------------------------------------------------------------------
def _records(table) -> list[dict]:
    if hasattr(table, "to_dict"):
        return table.to_dict("records")
    return [dict(r) for r in table]


def _number(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def compare(table, x: str, columns: Sequence[str], *, title: str = "comparison", hue: str | None = None,
            reference: Mapping[str, float] | None = None):
    """Bar charts side by side, one per numeric column of ``table`` (a DataFrame or a list of row
    dicts), bars labelled by ``x`` (and grouped by ``hue``, e.g. the seed). Missing values (a failed
    run, a metric not measured) are left out and said so in the panel. ``reference`` draws a dashed
    goal line in a column's panel (e.g. ``{"speech_music_lu": 10}``)."""
    plt = _plt()
    rows = _records(table)
    if not rows:
        raise BadInput("nothing to compare: the table is empty")
    columns = [c for c in columns if any(c in r for r in rows)]
    if not columns:
        raise BadInput("none of the columns to compare is in the table")
    labels = list(dict.fromkeys(str(r.get(x)) for r in rows))
    hues = list(dict.fromkeys(str(r.get(hue)) for r in rows)) if hue else [None]
    lines = max(_wrap(s).count("\n") + 1 for s in labels)
    fig, axes = plt.subplots(1, len(columns), figsize=(max(3.6 * len(columns), 8), 3.0 + 0.18 * lines),
                             squeeze=False)
    width = 0.8 / len(hues)
    for ax, col in zip(axes[0], columns):
        values = [v for v in (_number(r.get(col)) for r in rows) if v is not None]
        # levels in LUFS / dBTP are all negative: bars hanging from 0 would mislead, so draw dots
        dots = bool(values) and max(values) < 0
        missing = 0
        for j, h in enumerate(hues):
            xs, ys = [], []
            for i, label in enumerate(labels):
                match = [r for r in rows if str(r.get(x)) == label and (h is None or str(r.get(hue)) == h)]
                vals = [v for v in (_number(r.get(col)) for r in match) if v is not None]
                missing += len(match) - len(vals)
                if vals:
                    xs.append(i + (j - (len(hues) - 1) / 2) * width)
                    ys.append(sum(vals) / len(vals))
            colour = _PALETTE[j % len(_PALETTE)]
            if dots:
                ax.plot(xs, ys, "o", color=colour, ms=7, label=f"{hue} {h}" if h is not None else None)
                for xv, yv in zip(xs, ys):
                    ax.annotate(f"{yv:.3g}", (xv, yv), textcoords="offset points", xytext=(0, 6), ha="center",
                                fontsize=7)
            else:
                bars = ax.bar(xs, ys, width=width * 0.95, color=colour, label=f"{hue} {h}" if h is not None else None)
                ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=1)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels([_wrap(s) for s in labels], fontsize=7, rotation=0)
        if reference and col in reference:
            ax.axhline(reference[col], color="#b22", ls="--", lw=1)
            ax.annotate(f"goal {reference[col]:g}", (1, reference[col]), xycoords=("axes fraction", "data"),
                        ha="right", va="bottom", fontsize=7, color="#b22",
                        bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
        ax.set_title(col + (f"  ({missing} not measured)" if missing else ""), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        lo, hi = ax.get_ylim()
        if dots:
            mid, half = (min(values) + max(values)) / 2, max(1.5, (max(values) - min(values)) / 2 * 1.3)
            ax.set_ylim(mid - half, mid + half)  # a 0.1 dB difference is not drawn as a big one
            ax.set_xlim(-0.6, len(labels) - 0.4)
        else:
            ax.set_ylim(min(lo, 0), hi + (hi - min(lo, 0)) * 0.12)  # room for the value labels
    if hue and len(hues) > 1:
        axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 18) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    return "\n".join(lines[:3]) + ("…" if len(lines) > 3 else "")


def batch_summary(table, *, title: str = "batch summary"):
    """The batch figure: one bar per input (its wall time, coloured by outcome: completed or failed
    with the error type), and the integrated loudness of every completed output against its target."""
    plt = _plt()
    rows = _records(table)
    if not rows:
        raise BadInput("the batch table is empty")
    names = [_short(str(r.get("video", "?"))) for r in rows]
    ok = [r.get("status") == "COMPLETED" for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.32 * len(rows) + 2.2),
                                   gridspec_kw={"width_ratios": [1.3, 1]})
    secs = [_number(r.get("elapsed_s")) or 0.0 for r in rows]
    ypos = list(range(len(rows)))[::-1]
    ax1.barh(ypos, secs, color=["#59a14f" if good else "#e15759" for good in ok])
    for y, r, good, s in zip(ypos, rows, ok, secs):
        note = "ok" if good else f"{r.get('error_type') or 'failed'}"
        ax1.text(s, y, f" {note}", va="center", fontsize=7, color="#333" if good else "#b22")
    ax1.set_yticks(ypos)
    ax1.set_yticklabels(names, fontsize=8)
    ax1.set_xlabel("wall time (s)")
    done = sum(ok)
    ax1.set_title(f"{done} of {len(rows)} completed, {len(rows) - done} failed", fontsize=10)
    ax1.set_xlim(0, max(secs + [1.0]) * 1.35)
    lufs = [(_number(r.get("integrated_lufs")), _number(r.get("target_lufs"))) for r in rows]
    vals = [(y, v, t) for y, (v, t) in zip(ypos, lufs) if v is not None]
    if vals:
        ax2.scatter([v for _, v, _ in vals], [y for y, _, _ in vals], color="#4e79a7", zorder=3,
                    label="integrated loudness")
        targets = sorted({t for _, _, t in vals if t is not None})
        for t in targets:
            ax2.axvline(t, color="#333", ls=":", lw=1, label=f"target {t:g} LUFS")
        # at least +-3 LU around the values and targets: a 0.1 LU spread must not look like a miss
        span = [v for _, v, _ in vals] + targets
        mid, half = (min(span) + max(span)) / 2, max(3.0, (max(span) - min(span)) / 2 + 1.0)
        ax2.set_xlim(mid - half, mid + half)
        for y, good in zip(ypos, ok):
            if not good:
                ax2.text(mid, y, "failed: no output", ha="center", va="center", fontsize=7, color="#b22")
        ax2.legend(fontsize=7, loc="lower left")
    else:
        ax2.text(0.5, 0.5, "no completed output to measure", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_yticks(ypos)
    ax2.set_yticklabels([])
    ax2.set_ylim(ax1.get_ylim())
    ax2.set_xlabel("LUFS")
    ax2.set_title("loudness of each output", fontsize=10)
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _short(path: str, width: int = 28) -> str:
    name = Path(path).name or path
    return name if len(name) <= width else "…" + name[-(width - 1):]


# ---------------------------------------------------------------------------------------------
# players (IPython display objects)
# ---------------------------------------------------------------------------------------------
_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/mp4", ".webm": "video/webm",
         ".mkv": "video/webm", ".wav": "audio/wav", ".m4a": "audio/mp4", ".mp3": "audio/mpeg",
         ".ogg": "audio/ogg", ".flac": "audio/flac"}


def _source(path: Path, base: Path | None) -> str:
    """A data: URI for files up to EMBED_LIMIT_BYTES (the saved notebook keeps working anywhere),
    else a path relative to ``base`` (the notebook's folder)."""
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    if path.stat().st_size <= EMBED_LIMIT_BYTES:
        return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()
    return html.escape(os.path.relpath(path, base or Path.cwd()))


def players(sources: Mapping[str, str | Path], *, base: str | Path | None = None, video_width: int = 480):
    """Labelled players side by side (A/B listening): a video player for video files, an audio
    player for audio files. Returns an IPython ``HTML`` object (display it, or leave it last in a cell)."""
    from IPython.display import HTML

    cells = []
    for label, path in sources.items():
        path = Path(path)
        if not path.is_file():
            raise BadInput(f"no such file to play: {path}")
        src = _source(path, Path(base) if base else None)
        if _MIME.get(path.suffix.lower(), "").startswith("video"):
            tag = f'<video controls width="{video_width}" src="{src}"></video>'
        else:
            tag = f'<audio controls src="{src}"></audio>'
        cells.append(f'<div style="display:inline-block;margin:4px 12px 4px 0;vertical-align:top">'
                     f'<div style="font:12px sans-serif;margin-bottom:2px"><b>{html.escape(label)}</b></div>{tag}</div>')
    return HTML("".join(cells))


def ab_players(videos: Mapping[str, str | Path], *, base: str | Path | None = None):
    """A/B audio players for scored videos: each video's sound copied (no re-encode) to an ``.m4a``
    beside it, then :func:`players`. Labels are kept in order."""
    return players({label: audio_of(v, Path(v).with_name(Path(v).stem + "_audio.m4a")) for label, v in videos.items()},
                   base=base)
