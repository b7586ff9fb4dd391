"""RulePlanner: plans that tile the video, follow the cuts and the prompt, and repeat per seed."""

import itertools
import math
import random

import pytest

from musicvid_core.domain.features import Curve, Cut, MediaInfo, VideoFeatures
from musicvid_core.domain.plan import Plan
from musicvid_core.domain.styles import STYLES
from musicvid_core.services import PLANNERS, load_plugin
from musicvid_core.stages.plan.planner import MAX_SEGMENT_S, MIN_SEGMENT_S, RulePlanner, segment_bounds
from musicvid_core.stages.plan.prompt import parse_prompt


def features(duration, cuts=(), motion=0.35, brightness=0.5):
    """Hand-built features: ``motion``/``brightness`` a constant or a function of time (s)."""
    times = [round(0.1 + 0.2 * k, 4) for k in range(math.ceil(duration * 5))]

    def curve(value):
        return Curve(times=times, values=[value(t) if callable(value) else value for t in times])

    media = MediaInfo(duration=duration, width=1280, height=720, fps=30, video_codec="h264", audio=[])
    return VideoFeatures(media=media, cuts=[Cut(time=t, strength=s) for t, s in cuts],
                         motion=curve(motion), brightness=curve(brightness))


@pytest.fixture
def planner(settings):
    return RulePlanner(settings)


def _bounds(plan):
    return [s.start for s in plan.segments] + [plan.segments[-1].end]


def test_registered_as_rules(settings):
    assert load_plugin(PLANNERS, "planner", "rules") is RulePlanner


@pytest.mark.parametrize("duration", [0.4, 3.0, 7.5, 29.0, 61.3, 200.0, 3601.7])
def test_tiles_exactly(planner, duration):
    rng = random.Random(duration)
    cuts = sorted((round(rng.uniform(0, duration), 3), rng.random()) for _ in range(int(duration / 5)))
    plan = planner.plan(features(duration, cuts), "warm acoustic, slow build", 1)
    assert plan.segments[0].start == 0 and plan.segments[-1].end == duration == plan.duration
    for a, b in zip(plan.segments, plan.segments[1:]):
        assert a.end == b.start


def test_short_video_is_one_segment(planner):
    plan = planner.plan(features(4.0, [(2.0, 1.0)]), "", 0)
    assert len(plan.segments) == 1
    assert plan.segments[0].accents == [2.0]
    assert plan.fade_out_s <= 1.0  # fades fit a short clip


def test_boundaries_at_cuts_within_length_limits(planner):
    cuts = [(t, 1.0) for t in (4.0, 9.5, 13.0, 21.0, 26.5, 33.0, 41.0, 44.0, 52.0)]
    plan = planner.plan(features(60.0, cuts), "", 0)
    inner = _bounds(plan)[1:-1]
    assert inner and set(inner) <= {t for t, _ in cuts}
    assert all(MIN_SEGMENT_S <= s.duration <= MAX_SEGMENT_S for s in plan.segments)
    assert plan.cuts == [t for t, _ in cuts]
    for seg in plan.segments:  # every other cut is an accent of the segment holding it
        assert seg.accents == [t for t, _ in cuts if seg.start < t < seg.end]


def test_strong_cuts_win_over_weak_ones():
    # a weak and a strong cut near the middle: the strong one becomes the boundary
    assert segment_bounds(30.0, [(14.0, 0.2), (16.0, 1.0)]) == [0.0, 16.0, 30.0]


def test_no_cuts_splits_evenly():
    assert segment_bounds(60.0, []) == [0.0, 20.0, 40.0, 60.0]
    bounds = segment_bounds(1000.0, [])
    lengths = [b - a for a, b in itertools.pairwise(bounds)]
    assert max(lengths) - min(lengths) < 1e-6 and 15 <= lengths[0] <= 25


def test_deterministic_per_seed(planner):
    f = features(45.0, [(12.0, 0.9), (30.0, 0.7)], motion=lambda t: 0.2 + 0.01 * t)
    one = planner.plan(f, "dreamy ambient with piano", 7).model_dump()
    assert one == RulePlanner(None).plan(f, "dreamy ambient with piano", 7).model_dump()
    keys = {planner.plan(f, "dreamy ambient with piano", seed).segments[0].key for seed in range(20)}
    assert len(keys) > 1  # the seed picks the tonic


def test_explicit_tempo_and_key_are_honoured(planner):
    plan = planner.plan(features(40.0, [(18.0, 1.0)]), "dark techno at 128 bpm in F# minor", 3)
    assert {s.bpm for s in plan.segments} == {128.0}
    assert {s.key for s in plan.segments} == {"F# minor"}
    assert plan.understood == parse_prompt("dark techno at 128 bpm in F# minor").understood
    assert all(s.style == "electronic" and "128 bpm" in s.prompt and "F# minor" in s.prompt
               for s in plan.segments)


def test_tempo_follows_motion_within_the_style_range(planner):
    lo, hi = STYLES["acoustic"].bpm_range
    calm = planner.plan(features(30.0, motion=0.05), "acoustic folk", 0).segments[0].bpm
    busy = planner.plan(features(30.0, motion=0.95), "acoustic folk", 0).segments[0].bpm
    assert lo <= calm < busy <= hi


def test_one_tempo_family_for_all_segments(planner):
    # One asked tempo; the cut fit may nudge each segment's nominal tempo by a few percent only.
    plan = planner.plan(features(90.0, [(30.0, 1), (60.0, 1)], motion=lambda t: t / 90), "rock", 0)
    tempos = [s.bpm for s in plan.segments]
    assert max(tempos) / min(tempos) < 1.03
    assert len({s.key for s in plan.segments}) == 1


def test_dark_picture_or_sad_mood_is_minor(planner):
    assert planner.plan(features(20.0, brightness=0.1), "acoustic", 0).segments[0].key.endswith("minor")
    assert planner.plan(features(20.0, brightness=0.8), "acoustic", 0).segments[0].key.endswith("major")
    assert planner.plan(features(20.0, brightness=0.8), "sad acoustic", 0).segments[0].key.endswith("minor")


@pytest.mark.parametrize("prompt,check", [
    ("orchestral, slow build", lambda e: e == sorted(e) and e[-1] > e[0]),
    ("piano that fades out", lambda e: e == sorted(e, reverse=True) and e[-1] < e[0]),
    ("cinematic with a big finish", lambda e: e[-1] == max(e) and e.count(e[-1]) == 1),
])
def test_energy_arc(planner, prompt, check):
    # motion that fights the arc: busy at the start, still at the end
    f = features(80.0, [(t, 1.0) for t in (15.0, 31.0, 47.0, 63.0)], motion=lambda t: 1 - t / 80)
    energies = [s.energy for s in planner.plan(f, prompt, 0).segments]
    assert len(energies) > 2 and check(energies), energies


def test_energy_curve_per_bar(planner):
    plan = planner.plan(features(24.0, motion=lambda t: 0.1 if t < 12 else 0.9), "rock 120 bpm", 0)
    seg = plan.segments[0]
    assert len(plan.segments) == 1
    assert len(seg.energy_curve) == math.ceil(24.0 / 2.0)  # 4 beats at 120 bpm = 2 s bars
    assert all(0 <= e <= 1 for e in seg.energy_curve)
    assert seg.energy_curve[-1] > seg.energy_curve[0]  # the busy half plays harder


def test_instruments_named_or_from_the_style(planner):
    named = planner.plan(features(20.0), "acoustic with cello and flute", 0).segments[0]
    assert named.instruments == ["cello", "flute"] and "cello and flute" in named.prompt
    plain = planner.plan(features(20.0), "acoustic folk", 0).segments[0]
    # the composer keeps the style's arrangement when none are named; the text still lists them
    assert plain.instruments == [] and "guitar" in plain.prompt


def test_features_from_a_real_video(planner, short_video):
    from musicvid_core.stages.analyse.features import analyze

    plan = planner.plan(analyze(short_video.path), "warm acoustic, slow build, big finish", 0)
    assert plan.duration == pytest.approx(6.0, abs=1e-3)
    assert len(plan.segments) == 1 and plan.segments[0].accents == pytest.approx(short_video.cuts)
    assert plan.cuts == pytest.approx(short_video.cuts)


def test_features_without_audio_or_curves(planner):
    media = MediaInfo(duration=12.0, width=320, height=180, fps=25, video_codec="h264")
    plan = planner.plan(VideoFeatures(media=media), "", 0)
    assert plan.segments[0].end == 12.0 and 0 <= plan.segments[0].energy <= 1


def test_music_ducks_under_speech_and_leads_otherwise(planner, settings):
    from musicvid_core.domain.features import Region

    quiet = planner.plan(features(20.0), "calm piano", 0)
    assert quiet.music_gain_db == 0.0 and quiet.speech == [] and quiet.duck_db == settings.duck_db
    talk = features(20.0).model_copy(update={"speech": [Region(start=1, end=9)],
                                             "audio_integrated_lufs": -20.0})
    plan = planner.plan(talk, "calm piano", 0)
    # the music leads outside speech; under it the speech regions are copied for the mixer to duck
    assert plan.music_gain_db == 0.0 and plan.speech == [Region(start=1, end=9)]
    assert (plan.duck_attack_s, plan.duck_release_s) == (settings.duck_attack_s, settings.duck_release_s)
    # -20 LUFS dialogue: music nominally at -18 LUFS must go down 12 dB to sit 10 LU under it
    assert plan.duck_db == pytest.approx(12.0)
    loud = talk.model_copy(update={"audio_integrated_lufs": -30.0})
    assert planner.plan(loud, "calm piano", 0).duck_db == pytest.approx(22.0)
    # without settings, the Plan's defaults
    assert RulePlanner().plan(loud, "calm piano", 0).duck_attack_s == Plan.model_fields["duck_attack_s"].default
