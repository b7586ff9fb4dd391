"""``regenerate --segment N --hit S`` on a recording (issue 15): the re-edited segment puts a bar line
on a hit inside it and keeps every sample outside it; a hit no bar line of the segment can reach is
one clear line; hits outside segment N are not used, as the composer's re-roll does not use them.
The track is generated (musicvid_core.lab.tracks: known beats and bars); the end-to-end run
is tests/test_track_pipeline.py's."""

from __future__ import annotations

import numpy as np
import pytest

from musicvid_core.domain.errors import BadInput
from musicvid_core.domain.plan import MusicChoice, Plan
from musicvid_core.lab.tracks import make_track

SR = 48000
DURATION = 40.0


@pytest.fixture(scope="module")
def fitted():
    """A 40 s plan of three segments fitted to an edit of a 120 bpm track (0.3 s offset, a pickup),
    the edit, its render, the analysis and the source at SR."""
    from musicvid_core.domain.features import Cut, MediaInfo, VideoFeatures
    from musicvid_core.lab.tracks import irregular_cuts
    from musicvid_core.media import resample
    from musicvid_core.metrics.music import _analysis_mono
    from musicvid_core.stages.compose.track.analysis import analyse_audio
    from musicvid_core.stages.compose.track.fit import fit_plan
    from musicvid_core.stages.compose.track.render import render_edit

    synth = make_track(bpm=120, bars=8, offset_s=0.3, pickup_beats=1, seed=1)
    analysis = analyse_audio(_analysis_mono(synth.audio, synth.sample_rate), sha256="ab" * 32, name="pop")
    source = resample(synth.audio, synth.sample_rate, SR)
    cuts, _ = irregular_cuts(DURATION, 2)
    media = MediaInfo(duration=DURATION, width=320, height=180, fps=25, video_codec="h264")
    features = VideoFeatures(media=media, cuts=[Cut(time=t, strength=1.0) for t in cuts])
    bounds = [0.0, 12.3, 27.0, DURATION]
    segs = [dict(index=i, start=a, end=b, prompt="p", style="pop", mood="happy", bpm=90, key="A minor", energy=0.5)
            for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    plan = Plan(duration=DURATION, prompt="p", segments=segs, cuts=cuts, hits=[5.0])
    fitted, edit = fit_plan(plan, features, analysis, MusicChoice(kind="library", track="pop", why="test"),
                            sample_rate=SR, seed=4)
    return dict(plan=fitted, edit=edit, full=render_edit(edit, source), analysis=analysis, source=source,
                features=features)


def _reroll(f, index: int, hits: list[float], seed: int = 99):
    from musicvid_core.stages.compose.track.fit import fit_plan

    plan = f["plan"].model_copy(update={"hits": hits})  # what decide_plan's re-roll hands on: the new hits
    return fit_plan(plan, f["features"], f["analysis"], f["plan"].music, sample_rate=SR, seed=seed,
                    previous=f["edit"], reroll=index)


def _reachable_hit(f, index: int) -> float:
    """A time inside segment ``index``, at least 0.12 s off every bar line of the edit, that its bars
    can be re-timed to put a bar line on (the stretch limit allows this near a bar line only)."""
    from musicvid_core.stages.compose.track.edit import segment_bars
    from musicvid_core.stages.compose.track.fit import refit_beats

    edit, plan = f["edit"], f["plan"]
    a, b = segment_bars(edit, [0.0, *(s.end for s in plan.segments)])[index]
    lines = edit.bar_lines
    for k in range(a + 2, b - 1):
        for off in (0.2, -0.2, 0.15, -0.15, 0.12, -0.12):
            h = round(lines[k] + off, 3)
            if refit_beats(edit, f["analysis"], a + 1, b - 1, [h]) is not None:
                return h
    raise AssertionError("no reachable hit in the segment")


def test_a_hit_in_the_segment_gets_a_bar_line_and_nothing_outside_changes(fitted):
    from musicvid_core.stages.compose.track.fit import HIT_TOLERANCE_S, segment_samples
    from musicvid_core.stages.compose.track.render import render_edit

    f = fitted
    hit = _reachable_hit(f, 1)
    old_lines = f["edit"].bar_lines
    assert min(abs(hit - t) for t in old_lines) > HIT_TOLERANCE_S  # not on a bar line before
    plan, edit = _reroll(f, 1, [hit])
    assert min(abs(hit - t) for t in edit.bar_lines) <= HIT_TOLERANCE_S  # a downbeat now
    assert edit.max_stretch <= 0.06 and len(edit.beats) == len(f["edit"].beats)
    assert hit in edit.hits and 5.0 in edit.hits  # the hit of segment 0 stays the edit's
    a, b = segment_samples(f["plan"], 1, SR)
    assert [s.start for s in plan.segments] == [s.start for s in f["plan"].segments]
    assert plan.segments[1].hits == [hit] and hit in plan.segments[1].accents
    assert plan.segments[0].hits == f["plan"].segments[0].hits  # copied clips: their plan is the same too
    other = render_edit(edit, f["source"])
    full = f["full"]
    assert np.array_equal(other[:a], full[:a]) and np.array_equal(other[b:], full[b:])
    assert not np.array_equal(other[a:b], full[a:b])
    # the bar lines outside the segment are where they were
    def outside(lines):
        return [t for t in lines if not a / SR + 1e-6 < t < b / SR - 1e-6]

    assert outside(edit.bar_lines) == outside(old_lines)


def test_a_hit_no_bar_line_can_reach_is_one_clear_line(fitted):
    f = fitted
    plan = f["plan"]
    seg = plan.segments[1]
    lines = [t for t in f["edit"].bar_lines if seg.start < t < seg.end]
    # half a bar off the grid in the middle of a 7-bar segment: its bars would stretch ~10 %
    hit = round((lines[2] + lines[3]) / 2, 3)
    with pytest.raises(BadInput) as err:
        _reroll(f, 1, [hit])
    message = str(err.value)
    assert "\n" not in message and f"{hit:.2f} s" in message and "segment 1" in message and "stretch" in message


def test_hits_outside_the_segment_are_not_used(fitted):
    """The composer's rule (workflow/submit.py: with a segment, only the hits inside it are used)."""
    from musicvid_core.stages.compose.track.fit import segment_samples
    from musicvid_core.stages.compose.track.render import render_edit

    f = fitted
    plain_plan, plain = _reroll(f, 1, [])
    plan, edit = _reroll(f, 1, [33.1, 2.2])  # in segments 2 and 0
    assert edit.bars == plain.bars and edit.beats == plain.beats
    assert plan.segments[0].hits == f["plan"].segments[0].hits and plan.segments[2].hits == []
    a, b = segment_samples(f["plan"], 1, SR)
    other = render_edit(edit, f["source"])
    assert np.array_equal(other[:a], f["full"][:a]) and np.array_equal(other[b:], f["full"][b:])


def test_a_retimed_segment_keeps_the_beat_count(fitted):
    """The made ending's ring-out reads the edit's mean beat: a re-timed grid of another length would
    change the last segment's samples, so reedit_segment refuses it."""
    from musicvid_core.stages.compose.track.edit import reedit_segment

    f = fitted
    bounds = [0.0, *(s.end for s in f["plan"].segments)]
    with pytest.raises(BadInput, match="beats"):
        reedit_segment(f["edit"], f["analysis"], bounds, 1, seed=3, beats=f["edit"].beats[:-4])
