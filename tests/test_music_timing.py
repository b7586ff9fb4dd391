"""Cut-locked beat grids (music/timing.py) and how the planner and composer use them."""

import math
import random

import numpy as np
import pytest

from musicvid_core.domain.errors import BadInput
from musicvid_core.domain.features import Curve, Cut, MediaInfo, VideoFeatures
from musicvid_core.domain.plan import Plan, Segment
from musicvid_core.stages.compose.composer import compose_segment
from musicvid_core.stages.compose.grid import beat_grid
from musicvid_core.stages.plan.planner import RulePlanner, lock_timing, reroll_segment
from musicvid_core.stages.plan.timing import (
    EXPLICIT_DRIFT,
    FAST_RANGE,
    MAX_DRIFT,
    SHORT_DRIFT,
    SYNC_S,
    Anchor,
    fit_beats,
    nominal_grid,
)


def on_beat(t, beats, tol=1e-4):
    return min(abs(b - t) for b in beats) <= tol


def features(duration, cuts, motion=0.4):
    media = MediaInfo(duration=duration, width=320, height=180, fps=25, video_codec="h264")
    times = [i * 0.5 for i in range(int(duration * 2))]
    return VideoFeatures(media=media, cuts=[Cut(time=t, strength=s) for t, s in cuts],
                         motion=Curve(times=times, values=[motion] * len(times)),
                         brightness=Curve(times=times, values=[0.5] * len(times)))


def test_regular_cuts_land_on_bar_lines_at_a_tempo_in_range():
    fit = fit_beats(16.0, [Anchor(t, 1.0) for t in (2, 4, 6, 8, 10, 12, 14)], bpm=124, bpm_range=(118, 130))
    assert fit.missed == () and len(fit.hit) == 7
    bars = fit.beats[::4]
    assert all(on_beat(t, bars) for t in (2, 4, 6, 8, 10, 12, 14))  # strong cuts: downbeats
    assert fit.bpm == pytest.approx(120.0, abs=0.01) and fit.max_drift < 0.04
    assert len(fit.beats) % 4 == 0  # the segment's end is a bar line


def test_irregular_cuts_are_hit_with_bounded_drift():
    rng = random.Random(3)
    t, cuts = 0.0, []
    while t < 26:
        t += rng.uniform(1.5, 5.0)
        cuts.append(round(t, 3))
    duration = cuts.pop() + 0.8
    fit = fit_beats(duration, [Anchor(c, 0.5) for c in cuts], bpm=96, bpm_range=(76, 120))
    assert len(fit.hit) >= 0.8 * len(cuts)
    assert all(on_beat(c, fit.beats, SYNC_S + 1e-6) for c in fit.hit)
    gaps = np.diff(fit.beats)
    assert (60 / gaps).max() <= fit.bpm * (1 + SHORT_DRIFT) * 1.05 and fit.max_drift <= SHORT_DRIFT + 1e-6
    assert 76 * (1 - MAX_DRIFT) <= fit.bpm <= 120 * (1 + MAX_DRIFT)
    assert fit.beats[0] == 0.0 and all(b < duration for b in fit.beats)


def fast_cuts(seed, until=15.0):
    rng = random.Random(seed)
    t, cuts = 0.0, []
    while t < until - 1.5:
        t += rng.uniform(0.5, 1.2)
        cuts.append(round(t, 3))
    return cuts


def test_fast_cutting_moves_a_slow_style_to_double_time_and_hits_more_cuts():
    hits = {"fit": 0, "slow": 0, "n": 0}
    for seed in range(4):
        cuts = fast_cuts(seed)
        anchors = [Anchor(c, 1.0) for c in cuts]
        fit = fit_beats(15.0, anchors, bpm=82, bpm_range=(70, 92))  # lo-fi: 140-184 in double time
        assert FAST_RANGE[0] * (1 - SHORT_DRIFT) <= fit.bpm <= FAST_RANGE[1] * (1 + SHORT_DRIFT)
        assert all(on_beat(c, fit.beats, SYNC_S + 1e-6) for c in fit.hit) and fit.max_drift <= SHORT_DRIFT + 1e-6
        hits["fit"] += len(fit.hit)
        hits["n"] += len(cuts)
        slow = nominal_grid(82, 15.0)
        hits["slow"] += sum(on_beat(c, slow, 0.07) for c in cuts)
    assert hits["fit"] >= 0.75 * hits["n"] > hits["slow"]


def test_sparse_cuts_keep_the_asked_tempo_family():
    fit = fit_beats(16.0, [Anchor(t, 1.0) for t in (2.1, 5.3, 8.2, 12.4)], bpm=82, bpm_range=(70, 92))
    assert 70 * (1 - MAX_DRIFT) <= fit.bpm <= 92 * (1 + MAX_DRIFT)


def test_explicit_tempo_is_kept_and_drift_stays_small():
    fit = fit_beats(12.0, [Anchor(3.1, 1.0), Anchor(7.3, 0.4)], bpm=128, explicit=True)
    assert fit.bpm == 128 and fit.max_drift <= EXPLICIT_DRIFT + 1e-6


def test_a_hit_gets_a_downbeat_and_the_last_segment_runs_free():
    fit = fit_beats(10.0, [Anchor(5.0, 1.0, hit=True)], bpm=100, bpm_range=(90, 110), end_on_bar=False)
    assert fit.hit == (5.0,) and on_beat(5.0, fit.beats[::4])


def test_a_cut_within_a_frame_of_a_steady_beat_is_hit_without_bending_the_tempo():
    # At an explicit 120 bpm (beats 0.5 s, drift within 3 %) a cut 30 ms after a beat cannot be
    # put exactly on one (a one-beat gap of 0.53 s is 6 % slow); within the sync window it is hit.
    fit = fit_beats(8.0, [Anchor(2.0, 0.5), Anchor(2.53, 0.5), Anchor(4.0, 0.5)], bpm=120, explicit=True)
    assert fit.bpm == 120 and fit.max_drift <= EXPLICIT_DRIFT + 1e-6
    assert 2.53 in fit.hit and not fit.missed
    assert on_beat(2.53, fit.beats, SYNC_S + 1e-6) and not on_beat(2.53, fit.beats, 1e-3)
    assert all(on_beat(t, fit.beats, 1e-6) for t in (2.0, 4.0))  # no offset where none is needed


def test_a_requested_hit_is_placed_exactly_not_within_the_sync_window():
    fit = fit_beats(8.0, [Anchor(2.0, 0.5), Anchor(2.53, 1.0, hit=True), Anchor(4.0, 0.5)], bpm=120,
                    bpm_range=(100, 140))
    assert 2.53 in fit.hit and on_beat(2.53, fit.beats, 1e-6)


def test_a_segment_keeps_its_predecessors_tempo_family():
    rng = random.Random(3)
    cuts, t = [], 0.0
    while t < 12:
        t += rng.uniform(2.0, 4.0)
        cuts.append(round(t, 3))
    duration = cuts.pop() + 1.0
    anchors = [Anchor(c, 0.5) for c in cuts]
    alone = fit_beats(duration, anchors, bpm=100, bpm_range=(70, 120))
    after_fast = fit_beats(duration, anchors, bpm=100, bpm_range=(70, 120), family=170.0)
    octave = math.log2(after_fast.bpm / 170.0)
    assert abs(alone.bpm / 100 - 1) <= 0.15  # on its own: near the asked tempo
    assert abs(2 ** (octave - round(octave)) - 1) <= 0.05  # after a 170 bpm segment: ~85 (its half)
    assert after_fast.bpm < 90


def test_fit_is_deterministic_and_rejects_nonsense():
    anchors = [Anchor(1.3, 0.7), Anchor(2.9, 0.2), Anchor(4.4, 1.0)]
    assert fit_beats(8.0, anchors, bpm=110, bpm_range=(100, 150)) == fit_beats(8.0, anchors, bpm=110,
                                                                             bpm_range=(100, 150))
    with pytest.raises(ValueError):
        fit_beats(0.0, anchors, bpm=110)
    with pytest.raises(ValueError):
        fit_beats(5.0, anchors, bpm=0)


def test_planner_puts_cuts_on_beats_and_the_energy_curve_on_bars():
    cuts = [(2.0, 1.0), (4.1, 0.6), (7.0, 1.0), (9.0, 0.8), (12.6, 1.0), (15.0, 0.5)]
    plan = RulePlanner().plan(features(18.0, cuts), "rock", 0)
    beats = [b for s in plan.segments for b in s.beats]
    hit = [t for t, _ in cuts if on_beat(t, beats, SYNC_S + 1e-6)]
    assert len(hit) >= 5
    for seg in plan.segments:
        assert seg.beats[0] == seg.start and len(seg.energy_curve) == len(seg.beats[::4])
        assert all(a in seg.accents for a in plan.cuts if seg.start < a < seg.end)


def test_hits_become_downbeats_with_accents():
    plan = RulePlanner().plan(features(16.0, [(8.0, 1.0)]), "acoustic folk", 0)
    locked = lock_timing(plan, None, hits=[3.3, 11.7])
    assert locked.hits == [3.3, 11.7]
    for h in (3.3, 11.7):
        seg = next(s for s in locked.segments if s.start <= h < s.end)
        # On a beat; on a bar line too where the drift limit lets the grid reach one (not here).
        assert h in seg.hits and h in seg.accents and on_beat(h, seg.beats)
    # The composer puts a crash on each hit.
    for h in (3.3, 11.7):
        seg = next(s for s in locked.segments if s.start <= h < s.end)
        pm = compose_segment(locked, seg.index, 0)
        crashes = [n.start for i in pm.instruments if i.is_drum for n in i.notes if n.pitch == 49]
        assert any(abs(c - (h - seg.start)) < 1e-6 for c in crashes)


def test_composer_plays_on_the_fitted_beats():
    plan = RulePlanner().plan(features(14.0, [(1.9, 1.0), (4.7, 1.0), (9.3, 1.0)]), "electronic house", 0)
    seg = plan.segments[0]
    pm = compose_segment(plan, 0, 0)
    kicks = sorted(n.start for i in pm.instruments if i.is_drum for n in i.notes if n.pitch == 36)
    rel = [b - seg.start for b in seg.beats]
    on = sum(on_beat(k, rel, 1e-3) for k in kicks)
    assert on >= 0.9 * len(kicks)  # four on the floor follows the (drifting) grid
    grid = beat_grid(seg.bpm, seg.duration, beats=rel)
    assert grid.beats == tuple(rel) and grid.time(1, 0) == pytest.approx(rel[4])
    with pytest.raises(ValueError):
        beat_grid(120, 4.0, beats=[0.5, 1.0])


def test_reroll_changes_one_segment_only():
    plan = RulePlanner().plan(features(24.0, [(8.0, 1.0), (16.0, 1.0)]), "acoustic folk", 0)
    assert len(plan.segments) >= 2
    again = reroll_segment(plan, 1, None)
    assert again.segments[1].variation == 1
    assert [s for i, s in enumerate(again.segments) if i != 1] == [s for i, s in enumerate(plan.segments) if i != 1]
    styled = reroll_segment(plan, 1, None, prompt="dark house in a minor key")
    s1 = styled.segments[1]
    assert s1.style == "electronic" and s1.key.endswith("minor")
    assert s1.key.split()[0] == plan.segments[1].key.split()[0]  # the tonic stays: still belongs
    assert styled.understood["segments"]["1"]["style"] == "electronic"
    with pytest.raises(BadInput):
        reroll_segment(plan, 7, None)


def test_plan_rejects_beats_outside_the_segment():
    base = dict(index=0, start=0.0, end=4.0, prompt="p", style="rock", mood="m", bpm=120, key="C major",
                energy=0.5)
    Segment(**base, beats=[0.0, 0.5, 1.0])
    for bad in ([0.5, 1.0], [0.0, 1.0, 0.9], [0.0, 4.0]):
        with pytest.raises(ValueError):
            Segment(**base, beats=bad)
    assert Plan(duration=4.0, prompt="p", segments=[Segment(**base)]).hits == []


def test_the_segment_description_states_the_fitted_tempo():
    from musicvid_core.domain.features import Curve, Cut, MediaInfo, VideoFeatures
    from musicvid_core.settings import Settings
    from musicvid_core.stages.plan.planner import RulePlanner, lock_timing

    cuts = [round(0.6 * i + 0.1 * (i % 3), 3) for i in range(1, 40)]  # fast cutting
    features = VideoFeatures(media=MediaInfo(duration=25.0, width=320, height=180, fps=25, video_codec="h264"),
                             cuts=[Cut(time=t, strength=0.8) for t in cuts if t < 24.5],
                             motion=Curve(times=[0, 25], values=[0.6, 0.6]), brightness=Curve(times=[0, 25], values=[0.5, 0.5]))
    plan = lock_timing(RulePlanner(Settings()).plan(features, "slow lo-fi hip hop", 0), features)
    for seg in plan.segments:
        assert f"{seg.bpm:.0f} bpm" in seg.prompt, (seg.bpm, seg.prompt)
