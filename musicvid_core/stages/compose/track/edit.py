"""The edit decision list: a track cut to a picture, at bar resolution, exactly ``n_samples`` long.

:func:`make_edit` puts the output's beats and bar lines where the cuts need them (``grid``),
chooses a source bar for every output bar (``arrange``), and lists the *pieces* that ``render``
plays: per output bar one piece per stretch of equal tempo (as recorded, or time-stretched), a
pickup before the first bar line when the track has one, and the ending -- the track's own (its
final bar line and ring-out land on the last sample) or a made one (a bar line near the end whose
chord rings out under a release and a reverb tail). Free-time tracks (no steady beat) are joined
phrase by phrase with long crossfades and never stretched.

Each piece is rendered on its own and joined to the one before it in a window just before its
start (an equal-power crossfade at a seam; a short linear one where the source plays on through a
change of stretch; none where both sides play as recorded), so a sample depends only on the
pieces around it. :func:`reedit_segment` re-chooses the bars of one plan segment (keeping its
first bar, whose pre-roll sits in the segment before) and so leaves every sample outside the
segment bit-identical. Pure functions; the Edit stores as JSON.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from musicvid_core.domain.errors import BadInput
from musicvid_core.stages.compose.track.arrange import arrange, bridge, longest_repeat, max_back_to_back, seam_costs
from musicvid_core.stages.compose.track.grid import Anchor, fit_grid

EDIT_VERSION = 1
SEAM_XF_S = 0.03  # equal-power crossfade before a seam's bar line (the new downbeat's attack stays whole)
STRETCH_XF_S = 0.01  # linear crossfade where the source plays on through a change of stretch
FREE_XF_S = 1.5  # free time: crossfade at a phrase seam
MADE_RING_S = 1.0  # a made ending rings at least this long after its bar line (and up to a bar more)
FREE_RING_S = 3.0  # free time: the made ending's release, at least
MAX_STRETCH = 0.06  # the limit; the grid keeps a margin under it for the recording's own tempo wobble
COPY_TOLERANCE = 0.002  # a piece within this of the recorded tempo is played as recorded


class Piece(BaseModel):
    """Output samples [out_start, out_end) play source samples [src_start, src_end) (both at the
    edit's rate; time-stretched when the lengths differ). ``fade``: samples before ``out_start``
    where it crossfades in over the piece before (its source pre-roll); ``join``: how it follows
    that piece. ``bar``: output bar (-1 the pickup); ``source_bar``: index into the analysis's bars."""

    out_start: int
    out_end: int
    src_start: int
    src_end: int
    bar: int
    source_bar: int
    role: Literal["pickup", "body", "ending"] = "body"
    join: Literal["start", "continue", "seam"] = "continue"
    fade: int = 0

    @property
    def ratio(self) -> float:
        """Output length over source length (1.03 = played 3 % slower)."""
        return (self.out_end - self.out_start) / max(1, self.src_end - self.src_start)


class Edit(BaseModel):
    """An edit of one track for one picture. Times in seconds, positions in samples at
    ``sample_rate``. ``beats``: the output's beat grid (``beats[pickup]`` the first bar line);
    ``bars``: the source bar of each output bar; ``ending``: "real" or "made", at ``ending_at``."""

    version: int = EDIT_VERSION
    track_sha256: str = ""
    track_name: str = ""
    sample_rate: int
    n_samples: int
    seed: int = 0
    meter: int
    pickup: int = 0
    free_time: bool = False
    beats: list[float] = Field(default_factory=list)
    bars: list[int] = Field(default_factory=list)
    pieces: list[Piece] = Field(default_factory=list)
    ending: Literal["real", "made"] = "made"
    ending_at: float = 0.0
    ending_bar: int = 0
    cuts: list[float] = Field(default_factory=list)
    strong: list[float] = Field(default_factory=list)
    hits: list[float] = Field(default_factory=list)
    landed: list[float | None] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def bar_lines(self) -> list[float]:
        """Output bar lines, seconds (the last one the ending's); free time: phrase starts."""
        if self.free_time:
            return [p.out_start / self.sample_rate for p in self.pieces if p.role != "pickup"]
        return self.beats[self.pickup::self.meter]

    @property
    def seams(self) -> list[float]:
        """Output times (seconds) where a piece joins one that is not its source's continuation."""
        return [p.out_start / self.sample_rate for p in self.pieces if p.join == "seam"]

    @property
    def seam_bars(self) -> list[int]:
        """The source bar each seam enters (index into the analysis's bars), in ``seams`` order."""
        return [p.source_bar for p in self.pieces if p.join == "seam"]

    @property
    def max_stretch(self) -> float:
        """Largest |ratio - 1| over the pieces that are time-stretched."""
        return max((abs(p.ratio - 1) for p in self.pieces if p.role != "ending"), default=0.0)

    def stats(self) -> dict:
        """Facts of the edit (not measurements of its audio): seams, stretch, repeats."""
        bar_s = (self.beats[-1] - self.beats[0]) / max(1, len(self.beats) - 1) * self.meter if self.beats else 0.0
        return {"bars": len(self.bars), "seams": len(self.seams),
                "max_stretch": round(self.max_stretch, 4), "max_back_to_back": max_back_to_back(self.bars),
                "longest_repeat_bars": longest_repeat(self.bars),
                "longest_repeat_s": round(longest_repeat(self.bars) * bar_s, 2), "ending": self.ending,
                "free_time": self.free_time}


def make_edit(analysis, n_samples: int, sample_rate: int, *, cuts: list[float] = (), strong: list[float] = (),
              hits: list[float] = (), seed: int = 0) -> Edit:
    """Edit ``analysis``'s track to exactly ``n_samples`` at ``sample_rate`` Hz. ``cuts``: the
    picture's cut times (seconds; each wants a beat), ``strong``: those among them that want a bar
    line, ``hits``: times that must get a bar line. Raises BadInput for a target shorter than a
    bar plus the ending, a non-positive rate, or times outside the target."""
    if sample_rate <= 0 or n_samples <= 0:
        raise BadInput(f"an edit needs a positive length and rate, got {n_samples} samples at {sample_rate} Hz")
    duration = n_samples / sample_rate
    for t in list(cuts) + list(strong) + list(hits):
        if not (math.isfinite(t) and 0 <= t <= duration):
            raise BadInput(f"cut or hit at {t} s is outside the {duration:.2f} s target")
    base = dict(track_sha256=analysis.sha256, track_name=analysis.name, sample_rate=sample_rate, n_samples=n_samples,
                seed=seed, cuts=sorted(cuts), strong=sorted(strong), hits=sorted(hits))
    if analysis.free_time or not analysis.bars:
        return _free_time_edit(analysis, base, seed)
    beat = analysis.beat_s
    meter, pickup = analysis.meter, analysis.pickup_beats
    bar = beat * meter
    ring = analysis.ending.ring_out
    real = analysis.ending.kind == "real" and duration - ring >= pickup * beat + 2 * bar
    first = pickup * beat + bar * (1 - MAX_STRETCH)  # the earliest possible bar line after the first
    if real:
        end = (duration - ring,) * 3
    else:
        hi = duration - max(MADE_RING_S, beat)
        end = (max(first, hi - bar), hi, max(first, hi - bar / 2))
        if hi < first:
            raise BadInput(f"{duration:.1f} s is too short for {analysis.name or 'this track'}: "
                           f"a bar and an ending need {first + max(MADE_RING_S, beat):.1f} s")
    strong_set = {round(t, 6) for t in strong}
    anchors = [Anchor(t, bar=round(t, 6) in strong_set) for t in cuts]
    anchors += [Anchor(t, bar=True) for t in strong if round(t, 6) not in {round(c, 6) for c in cuts}]
    anchors += [Anchor(t, bar=True, hit=True) for t in hits]
    limit = stretch_limit(analysis)
    grid = fit_grid(anchors, beat_s=beat, meter=meter, pickup=pickup, end=end, max_stretch=limit)
    if pickup and any(a.hit and t is None for a, t in zip(grid.anchors, grid.landed)):
        # the pickup fixes where the bar lines can go; without it a hit may be within reach
        plain = fit_grid(anchors, beat_s=beat, meter=meter, pickup=0, end=end, max_stretch=limit)
        if all(t is not None for a, t in zip(plain.anchors, plain.landed) if a.hit):
            grid, pickup = plain, 0
    n_bars = (len(grid.beats) - 1 - pickup) // meter
    seq = arrange(analysis, n_bars, seed=seed)
    edit = Edit(**base, meter=meter, pickup=pickup, beats=list(grid.beats), bars=seq,
                ending="real" if real else "made", ending_at=grid.beats[-1],
                landed=list(grid.landed))
    return _assemble(edit, analysis)


def stretch_limit(analysis) -> float:
    """The most a grid beat may run off the track's nominal beat (a fraction): MAX_STRETCH less a
    margin for the recording's own bars, which run longer or shorter than nominal by their share."""
    lengths = np.array([b.end - b.start for b in analysis.bars[:max(1, analysis.body_bars)]])
    margin = min(0.02, float(np.max(np.abs(lengths / (analysis.meter * analysis.beat_s) - 1))))
    return MAX_STRETCH - 0.002 - margin


def segment_bars(edit: Edit, bounds: list[float]) -> list[tuple[int, int]]:
    """The output bars (first, end) of each plan segment, ``bounds`` = [0, ..., duration] seconds:
    each inner boundary moves to the nearest bar line. The ending belongs to the last segment."""
    lines = np.asarray(edit.bar_lines[:-1] if not edit.free_time else edit.bar_lines)
    idx = [0]
    for t in bounds[1:-1]:
        k = int(np.argmin(np.abs(lines - t))) if lines.size else 0
        idx.append(max(idx[-1], k))
    idx.append(len(edit.bars))
    return list(zip(idx[:-1], idx[1:]))


def reedit_segment(edit: Edit, analysis, bounds: list[float], index: int, *, seed: int,
                   beats: list[float] | None = None) -> Edit:
    """The edit with segment ``index``'s bars chosen again (another ``seed``: other seams, other
    blocks), its first bar and everything outside it kept, so its render is bit-identical outside
    the segment's samples. ``beats``: the output's beat grid to play instead of the edit's (seconds;
    as many beats, the same outside the segment: its bars re-timed, e.g. a bar line moved onto a
    hit). Raises BadInput for a segment that does not exist or a ``beats`` of another length."""
    spans = segment_bars(edit, bounds)
    if not 0 <= index < len(spans):
        raise BadInput(f"segment {index} does not exist: the plan has {len(spans)}")
    a, b = spans[index]
    if edit.free_time or b - a < 2:
        return edit.model_copy(update={"notes": edit.notes + [f"segment {index}: too short to re-edit"]})
    body = max(1, analysis.body_bars)
    after = edit.bars[b] if b < len(edit.bars) else (analysis.ending.bar if edit.ending == "real" else None)
    rng = np.random.default_rng([seed, index])
    new = bridge(seam_costs(analysis), b - a - 1, before=edit.bars[a], after=after, body=body, rng=rng,
                 avoid=edit.bars[a + 1:b])
    seq = edit.bars[:a + 1] + new + edit.bars[b:]
    if beats is not None and len(beats) != len(edit.beats):  # the ending's ring reads the mean beat
        raise BadInput(f"a re-timed segment must keep the edit's {len(edit.beats)} beats, got {len(beats)}")
    grid = list(edit.beats if beats is None else beats)
    return _assemble(edit.model_copy(update={"bars": seq, "beats": grid, "pieces": [], "seed": seed}), analysis)


# ---------------------------------------------------------------------------------------------
def _src_beats(analysis, k: int) -> list[float]:
    """The meter + 1 beat times (seconds) of source bar ``k``, from its bar line to the next, evenly
    spaced: the grid's beats are even too, so every beat of a bar gets the bar's ratio (the
    tracked beats inside a bar wobble by a few ms, which would make each its own piece)."""
    bar = analysis.bars[k]
    step = (bar.end - bar.start) / analysis.meter
    return [bar.start + i * step for i in range(analysis.meter)] + [bar.end]


def _assemble(edit: Edit, analysis) -> Edit:
    """The pieces of ``edit`` (its beats, bars and ending chosen)."""
    sr, m, p = edit.sample_rate, edit.meter, edit.pickup
    at = lambda t: int(round(t * sr))  # noqa: E731
    pieces: list[Piece] = []
    beats = edit.beats
    first = analysis.bars[edit.bars[0]].start if edit.bars else analysis.bars[0].start
    if p:
        src0 = max(0.0, first - p * analysis.beat_s)
        pieces.append(Piece(out_start=0, out_end=at(beats[p]), src_start=at(src0), src_end=at(first), bar=-1,
                            source_bar=edit.bars[0], role="pickup", join="start"))
    for j, k in enumerate(edit.bars):
        out = beats[p + j * m:p + (j + 1) * m + 1]
        src = _src_beats(analysis, k)
        ratios = [(o1 - o0) / max(1e-9, s1 - s0) for o0, o1, s0, s1 in zip(out, out[1:], src, src[1:])]
        a = 0
        for n in range(1, m + 1):
            if n == m or abs(ratios[n] - ratios[a]) > 1e-3:
                pieces.append(Piece(out_start=at(out[a]), out_end=at(out[n]), src_start=at(src[a]), src_end=at(src[n]),
                                    bar=j, source_bar=k))
                a = n
    end_bar = analysis.ending.bar if edit.ending == "real" else _made_ending_bar(analysis, edit.bars)
    start = at(beats[-1])
    length = edit.n_samples - start
    src_start = at(analysis.bars[end_bar].start)
    pieces.append(Piece(out_start=start, out_end=edit.n_samples, src_start=src_start, src_end=src_start + length,
                        bar=len(edit.bars), source_bar=end_bar, role="ending"))
    _joins(pieces, sr, SEAM_XF_S)
    note = ("the track's own ending" if edit.ending == "real"
            else "a made ending: a bar line near the end rings out under a release and a reverb tail")
    return edit.model_copy(update={"pieces": pieces, "ending_bar": end_bar, "notes": [note]})


def _joins(pieces: list[Piece], sr: int, seam_s: float) -> None:
    """Set each piece's join and crossfade from the piece before it."""
    for prev, cur in zip(pieces, pieces[1:]):
        cont = abs(cur.src_start - prev.src_end) <= max(2, int(0.003 * sr))
        stretched = abs(prev.ratio - 1) > COPY_TOLERANCE or abs(cur.ratio - 1) > COPY_TOLERANCE
        cur.join = "continue" if cont else "seam"
        cur.fade = 0 if cont and not stretched else int(round((STRETCH_XF_S if cont else seam_s) * sr))
        cur.fade = min(cur.fade, prev.out_end - prev.out_start)
    if pieces:
        pieces[0].join = "start"


def _made_ending_bar(analysis, seq: list[int]) -> int:
    """The bar whose chord rings out: the one that follows the last bar played, when there is one
    in the body, else the body bar that follows it most smoothly."""
    body = max(1, analysis.body_bars)
    last = seq[-1] if seq else -1
    if last + 1 < body:
        return last + 1
    costs = seam_costs(analysis)
    return int(np.argmin(costs[last, :body])) if last >= 0 else 0


def _free_time_edit(analysis, base: dict, seed: int) -> Edit:
    """Phrases in the track's order, then a seeded walk, until the rest is the release of a made
    ending (FREE_RING_S up to a phrase more); crossfades of FREE_XF_S; nothing stretched."""
    sr, n = base["sample_rate"], base["n_samples"]
    duration = n / sr
    body = max(1, analysis.body_bars)
    lengths = [b.end - b.start for b in analysis.bars[:body]]
    longest = max(lengths)
    rng = np.random.default_rng(seed)
    costs = seam_costs(analysis)
    seq: list[int] = []
    t = 0.0
    while duration - t > FREE_RING_S + longest or not seq:
        if not seq:
            k = 0
        elif seq[-1] + 1 < body:
            k = seq[-1] + 1
        else:
            w = np.exp(-costs[seq[-1], :body] / 0.5)
            w[seq[-1]] *= 0.1 if len(seq) < 2 or seq[-2] != seq[-1] else 0.0
            k = int(rng.choice(body, p=w / w.sum()))
        if t + lengths[k] > duration - FREE_RING_S and seq:
            break
        seq.append(k)
        t += lengths[k]
    at = lambda x: int(round(x * sr))  # noqa: E731
    pieces, pos = [], 0
    for j, k in enumerate(seq):
        ln = at(analysis.bars[k].end) - at(analysis.bars[k].start)
        ln = min(ln, n - pos - at(1.0))
        pieces.append(Piece(out_start=pos, out_end=pos + ln, src_start=at(analysis.bars[k].start),
                            src_end=at(analysis.bars[k].start) + ln, bar=j, source_bar=k))
        pos += ln
    end_bar = seq[-1] + 1 if seq[-1] + 1 < len(analysis.bars) else 0
    src = at(analysis.bars[end_bar].start)
    pieces.append(Piece(out_start=pos, out_end=n, src_start=src, src_end=src + n - pos, bar=len(seq),
                        source_bar=end_bar, role="ending"))
    _joins(pieces, sr, FREE_XF_S)
    return Edit(**base, meter=1, free_time=True, bars=seq, pieces=pieces, ending="made", ending_at=pos / sr,
                ending_bar=end_bar,
                notes=["free time (no steady beat): phrase seams with long crossfades, nothing stretched, "
                       "cuts not aimed at", "a made ending: the next phrase under a long release"])
