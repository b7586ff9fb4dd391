"""The compose stage's entry for real recordings (issue 15, phase 2): a plan fitted to an edit.

:func:`fit_plan` edits the analysed track to the picture (``edit.make_edit``: exactly the plan's
duration in samples, cuts on beats, strong cuts and the job's hits on bar lines) and moves every
inner segment boundary to the nearest bar line of that edit (``edit.segment_bars``), so that a
segment is a whole number of the edit's bars and ``regenerate --segment N`` can re-edit one
stretch (``edit.reedit_segment``) and leave every other sample bit-identical. The plan then says
which track plays and why (``Plan.music``), takes the track's tempo and key, and drops every fade
and release tail: its clips are contiguous exact slices of one signal (``render.render_span``), so
the mixer's sum of them is the edit itself (stages/mix/filtergraph.clip_chain).

Pure: no I/O (the workflow fetches the track, caches its analysis, stores the Edit as edit.json).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from musicvid_core.domain.errors import BadInput
from musicvid_core.domain.features import VideoFeatures
from musicvid_core.domain.plan import _KEY_RE, MusicChoice, Plan
from musicvid_core.stages.compose.track.analysis import TrackAnalysis
from musicvid_core.stages.compose.track.edit import MAX_STRETCH, Edit, make_edit, reedit_segment, segment_bars, stretch_limit
from musicvid_core.stages.compose.track.grid import HIT_SYNC_S, Anchor, even_bars, fit_grid
from musicvid_core.stages.plan.timing import STRONG_CUT

HIT_TOLERANCE_S = 0.07  # a cut "on" a beat or bar line: within +-70 ms (as metrics/edit.py measures)
EDGE_S = 0.05  # cuts this close to the video's ends are no musical events (the edit starts and ends there)


def picture_cuts(features: VideoFeatures | None, duration: float,
                 bounds: Sequence[float] = ()) -> tuple[list[float], list[float]]:
    """The picture's cuts inside (EDGE_S, duration - EDGE_S) seconds, and the strong ones among
    them: those the plan put a segment boundary on (``bounds``, seconds; within EDGE_S) that are
    at least STRONG_CUT strong (the procedural planner's threshold for a bar line). Not every hard
    cut: a strong cut reaches its bar line only when the span before it can absorb up to half a bar
    within the 6 % stretch limit (docs/tracks.md, "The grid"), so they must be sparse, and the
    planner's boundaries (a strong cut every ~10-20 s) are the picture's sections."""
    cuts = sorted((c for c in (features.cuts if features is not None else [])
                   if EDGE_S < c.time < duration - EDGE_S), key=lambda c: c.time)
    strong = [c.time for c in cuts if c.strength >= STRONG_CUT and any(abs(c.time - b) <= EDGE_S for b in bounds)]
    return [c.time for c in cuts], strong


def fit_plan(plan: Plan, features: VideoFeatures | None, analysis: TrackAnalysis, music: MusicChoice, *,
             sample_rate: int, seed: int, previous: Edit | None = None,
             reroll: int | None = None) -> tuple[Plan, Edit]:
    """The plan and the edit for a real recording. ``plan``: decide_plan's (its duration, segments
    and hits, seconds); ``analysis``: the track's; ``music``: which track and why (its bpm, key and
    free_time are filled from the analysis); ``sample_rate``: the pipeline's (Hz). With
    ``previous`` (the attempt's edit a re-roll starts from) and ``reroll`` (a segment index), only
    that segment's bars are chosen again (``seed``: another choice); else a whole new edit from
    ``seed``. Raises BadInput when the video is too short for a bar and an ending of the track,
    or for a re-roll without its previous edit or of a segment outside it."""
    n = round(plan.duration * sample_rate)
    if reroll is not None:
        if previous is None:
            raise BadInput("a segment re-roll of a recording needs the edit it starts from")
        if previous.track_sha256 != analysis.sha256 or previous.n_samples != n or previous.sample_rate != sample_rate:
            raise BadInput("the previous edit is of another track, length or rate: regenerate the job whole")
        edit = _reedit(previous, analysis, [0.0, *(s.end for s in plan.segments)], reroll, seed, plan.hits)
        fitted = snap_plan(plan, edit, analysis, music)
        if len(fitted.segments) == len(plan.segments):  # the others' clips are copied: so are their hits
            fitted = fitted.model_copy(update={"segments": [
                s if s.index == reroll else s.model_copy(update={"hits": old.hits, "accents": old.accents})
                for s, old in zip(fitted.segments, plan.segments)]})
        return fitted, edit
    else:
        cuts, strong = picture_cuts(features, plan.duration, [s.start for s in plan.segments[1:]])
        hits = [h for h in plan.hits if 0 <= h <= plan.duration]
        edit = make_edit(analysis, n, sample_rate, cuts=cuts, strong=strong, hits=hits, seed=seed)
    return snap_plan(plan, edit, analysis, music), edit


def _reedit(previous: Edit, analysis: TrackAnalysis, bounds: list[float], index: int, seed: int,
            hits: Sequence[float] = ()) -> Edit:
    """``previous`` with segment ``index``'s bars chosen again, every sample outside the segment
    unchanged (so its render, and the clips copied from the previous attempt, stay exact).
    ``hits`` (seconds): those inside the segment get a bar line each (:func:`refit_beats`: the
    segment's beats re-timed within the stretch limit); those outside it are not used, as the
    composer's re-roll does (a whole regeneration takes them). Raises BadInput for a hit inside
    the segment that no bar line can reach.

    A piece's samples depend on its neighbours' joins: one that enters at a seam gets a longer
    pre-roll, so a new bar next to a kept one can change the kept one's samples -- and a piece's
    pre-roll lies before its start, in the segment before. So the segment's second bar and its
    last are kept too where it is long enough (re-editing between them), and every piece that
    reaches outside the segment's samples is checked unchanged; where none of the narrower
    re-edits passes, the previous edit is kept, with a note."""
    spans = segment_bars(previous, bounds)
    if not 0 <= index < len(spans):
        raise BadInput(f"segment {index} does not exist: the plan has {len(spans)}")
    a, b = spans[index]
    lines, n_bars, sr = previous.bar_lines, len(previous.bars), previous.sample_rate
    lo = int(round(lines[a] * sr)) if a > 0 else 0
    hi = int(round(lines[b] * sr)) if b < n_bars else previous.n_samples

    def reaching(e: Edit) -> list:
        return [p for p in e.pieces if p.out_end <= lo or p.out_start >= hi or p.out_start - p.fade < lo]

    # the composer's rule: only the hits inside the segment (free time aims at no hit, as make_edit)
    mine = [] if previous.free_time else sorted(h for h in hits if lo / sr - 1e-3 <= h < hi / sr - 1e-3)
    kept = reaching(previous)
    narrow = []  # (first, last): the bars re-edited, the segment's first two and last kept where it can
    for head, tail in ((1, 1), (0, 1), (1, 0), (0, 0)):
        first, last = a + (head if a > 0 else 0), b - (tail if b < n_bars else 0)
        if last - first < 2:
            continue
        narrow.append((first, last))
        beats = refit_beats(previous, analysis, first, last, mine) if mine else None
        if mine and beats is None:
            continue
        inner = list(bounds)
        inner[index], inner[index + 1] = (lines[first] if index else 0.0), (lines[last] if last < n_bars else
                                                                               bounds[index + 1])
        edit = reedit_segment(previous, analysis, inner, index, seed=seed, beats=beats)
        if (edit.bars, edit.beats) != (previous.bars, previous.beats) and reaching(edit) == kept:
            return _with_hits(edit, previous, mine, lo / sr, hi / sr)
    if mine:  # name the hit that cannot land even alone, and the bar lines around it
        alone = [h for h in mine if all(refit_beats(previous, analysis, f, z, [h]) is None for f, z in narrow)]
        h = (alone or mine)[0]
        below = max((t for t in lines if t <= h), default=0.0)
        above = min((t for t in lines if t > h), default=previous.duration)
        what = (f"the hit at {h:.2f} s cannot get a bar line" if alone or len(mine) == 1 else
                f"the hits at {', '.join(f'{t:.2f}' for t in mine)} s cannot all get bar lines")
        raise BadInput(f"{what} in segment {index} of this recording within the {MAX_STRETCH:.0%} stretch limit "
                       f"(bar lines at {below:.2f} and {above:.2f} s): move it nearer one, or regenerate the job "
                       "whole with --hit")
    note = f"segment {index}: not re-edited (its bars cannot change without changing its neighbours)"
    return previous.model_copy(update={"notes": previous.notes + [note], "seed": seed})


def refit_beats(edit: Edit, analysis: TrackAnalysis, first: int, last: int,
                hits: Sequence[float]) -> list[float] | None:
    """The edit's beats with output bars [first, last) re-timed so that each of ``hits`` (seconds)
    is a bar line (within grid.HIT_SYNC_S), or None where the stretch limit does not allow it. The
    bar lines ``first`` and ``last`` stay, and so does the number of beats between them: the
    ending's ring-out reads the edit's mean beat (render.py), and the samples outside the segment
    must not change. A hit already on a bar line needs nothing; one outside the bars, or too near
    their ends for a bar of its own, cannot be reached. The grid is fitted as make_edit fits it
    (the edit's cuts inside on beats, its strong ones on bar lines); where that grid has another
    number of beats, the bars go evenly between the hits (recorded tempo first, the last beats
    before each hit stretched)."""
    m, beat = edit.meter, analysis.beat_s
    i0, i1 = edit.pickup + first * m, edit.pickup + last * m
    t0, t1 = edit.beats[i0], edit.beats[i1]
    lines = edit.bar_lines
    todo = sorted(h for h in hits if min(abs(h - t) for t in lines) > HIT_SYNC_S)
    if not todo:
        return list(edit.beats)
    if not all(t0 < h < t1 for h in todo):
        return None
    limit = stretch_limit(analysis)
    strong = {round(t, 6) for t in edit.strong}
    anchors = [Anchor(c - t0, bar=round(c, 6) in strong) for c in edit.cuts if t0 < c < t1]
    anchors += [Anchor(h - t0, bar=True, hit=True) for h in todo]
    candidates = []
    with contextlib.suppress(ValueError):
        candidates.append(list(fit_grid(anchors, beat_s=beat, meter=m, end=(t1 - t0,) * 3, max_stretch=limit).beats))
    candidates.append(even_bars([0.0, *(h - t0 for h in todo), t1 - t0], last - first, m, beat, limit))
    for grid in candidates:
        if grid is None or len(grid) != i1 - i0 + 1:
            continue
        out = [round(t0 + t, 6) for t in grid]
        out[0], out[-1] = t0, t1
        bars = out[::m]
        on = all(min(abs(h - t) for t in bars) <= HIT_SYNC_S + 1e-6 for h in todo)
        if on and max(abs((y - x) / beat - 1) for x, y in zip(out, out[1:])) <= limit + 1e-9:
            return [*edit.beats[:i0], *out, *edit.beats[i1 + 1:]]
    return None


def _with_hits(edit: Edit, previous: Edit, hits: list[float], start: float, end: float) -> Edit:
    """``edit`` listing the previous edit's hits outside [start, end) seconds and ``hits`` inside."""
    kept = [h for h in previous.hits if not start - 1e-3 <= h < end - 1e-3]
    return edit.model_copy(update={"hits": sorted([*kept, *hits])})


def snap_plan(plan: Plan, edit: Edit, analysis: TrackAnalysis, music: MusicChoice) -> Plan:
    """``plan`` with its segments on ``edit``'s bar lines (boundaries that meet on one bar line
    merge: the later segment is dropped), each segment's beats the edit's output beats inside it,
    tempo and key the track's, no gain trims, and no fades or tails (see the module docstring)."""
    bounds = [0.0, *(s.end for s in plan.segments)]
    spans = segment_bars(edit, bounds)
    lines = edit.bar_lines
    kept = [(i, a) for i, (a, b) in enumerate(spans) if b > a]
    starts = [0.0 if k == 0 else float(lines[a]) for k, (_, a) in enumerate(kept)]
    ends = [*starts[1:], plan.duration]
    bpm = analysis.bpm if analysis.bpm and not analysis.free_time else None
    key = analysis.key if _KEY_RE.fullmatch(analysis.key or "") else None
    segments = []
    for k, ((i, _), start, end) in enumerate(zip(kept, starts, ends)):
        seg = plan.segments[i]
        beats = [] if edit.free_time else [b for b in edit.beats if start - 1e-9 <= b < end - 1e-6]
        if beats and abs(beats[0] - start) > 1e-3:
            beats = [start, *(b for b in beats if b > start + 1e-3)]
        hits = [h for h in plan.hits if start <= h < end]
        accents = sorted({*(c for c in plan.cuts if start < c < end), *hits})
        update = {"index": k, "start": start, "end": end, "beats": beats, "hits": hits, "accents": accents,
                  "gain_db": 0.0}
        if bpm is not None:
            update["bpm"] = min(240.0, max(30.0, round(float(bpm), 3)))
        if key is not None:
            update["key"] = key
        segments.append(seg.model_copy(update=update))
    choice = music.model_copy(update={"sha256": analysis.sha256, "bpm": round(float(bpm), 3) if bpm else None,
                                      "key": analysis.key, "free_time": bool(edit.free_time)})
    if edit.free_time and "free time" not in choice.why:
        choice = choice.model_copy(update={"why": f"{choice.why}; free time (no steady beat): phrase seams, "
                                                  "long crossfades, cuts not aimed at".lstrip("; ")})
    return Plan.parse({**plan.model_dump(), "segments": [s.model_dump() for s in segments],
                       "fade_in_s": 0.0, "fade_out_s": 0.0, "crossfade_s": 0.0,
                       "music": choice.model_dump()})


def segment_samples(plan: Plan, index: int, sample_rate: int) -> tuple[int, int]:
    """Segment ``index``'s slice [start, end) of the edit, in samples (Plan.clip_samples's rounding)."""
    seg = plan.segments[index]
    return round(seg.start * sample_rate), round(seg.end * sample_rate)


def edl_figures(edit: Edit, *, cuts: Sequence[float] = (), strong: Sequence[float] = ()) -> dict:
    """The edit's own facts as planned (not measured on audio): the share of ``cuts`` within
    HIT_TOLERANCE_S of an output beat and of ``strong`` cuts within it of a bar line, seams, the
    largest stretch (a fraction), the longest repeat, the ending."""
    stats = edit.stats()
    lines = edit.bar_lines
    return {"planned_cut_beat_hit_rate": _near(cuts, edit.beats),
            "planned_strong_downbeat_hit_rate": _near(strong, lines),
            "seams": stats["seams"], "max_stretch": stats["max_stretch"],
            "longest_repeat_bars": stats["longest_repeat_bars"], "longest_repeat_s": stats["longest_repeat_s"],
            "max_back_to_back": stats["max_back_to_back"], "ending": stats["ending"],
            "free_time": stats["free_time"], "bars": stats["bars"], "track": edit.track_name,
            "seed": edit.seed}


def _near(times: Sequence[float], grid: Sequence[float]) -> float | None:
    if not times:
        return None
    if not grid:
        return 0.0
    return round(sum(min(abs(t - g) for g in grid) <= HIT_TOLERANCE_S for t in times) / len(times), 4)
