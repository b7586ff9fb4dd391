"""musicvid_core.lab.viz: the measurements behind the figures, and the figures themselves, on
generated media with known truth (scene cuts, tone levels)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("matplotlib")

from musicvid_core.domain.errors import BadInput
from musicvid_core.domain.plan import Plan, Segment
from musicvid_core.lab import readers, viz


@pytest.fixture(scope="module")
def features(short_video):
    from musicvid_core.stages.analyse.features import analyze

    return analyze(short_video.path)


@pytest.fixture(scope="module")
def plan(features):
    from musicvid_core.stages.plan.planner import RulePlanner

    return RulePlanner(None).plan(features, "upbeat 120 bpm house", 0)


def _tone(path, seconds, amplitude, *, silence_s=0.0, rate=48000):
    t = np.arange(int(seconds * rate)) / rate
    x = amplitude * np.sin(2 * np.pi * 1000 * t)
    x = np.concatenate([np.zeros(int(silence_s * rate)), x])
    sf.write(path, np.stack([x, x], axis=1), rate, subtype="FLOAT")
    return path


def test_loudness_series_matches_an_independent_meter_and_hides_unfilled_windows(tmp_path):
    import pyloudnorm

    path = _tone(tmp_path / "step.wav", 5.0, 0.1, silence_s=2.0)
    s = readers.loudness_series(path)
    times = np.array(s["time"])
    assert len(times) == len(s["momentary"]) == len(s["short_term"]) >= 60
    assert np.allclose(np.diff(times), 0.1, atol=1e-3)
    # no reading before its window is full
    assert all(v is None for t, v in zip(times, s["short_term"]) if t < 2.99)
    assert all(v is None for t, v in zip(times, s["momentary"]) if t < 0.39)
    # silence floors at -70; a steady tone reads what pyloudnorm measures for it
    assert s["momentary"][int(np.searchsorted(times, 1.5))] == -70.0
    data, rate = sf.read(path)
    steady = pyloudnorm.Meter(rate).integrated_loudness(data[int(3 * rate):])
    end_short = s["short_term"][-1]
    assert abs(end_short - steady) < 0.3
    assert abs(s["momentary"][int(np.searchsorted(times, 4.0))] - steady) < 0.3


def test_meter_log_parser():
    log = ("frame:0 pts:0 pts_time:0\nlavfi.r128.M=-120.7\nlavfi.r128.S=-120.7\n"
           "frame:1 pts:4800 pts_time:0.1\nlavfi.r128.M=-inf\nlavfi.r128.S=-inf\n"
           "frame:2 pts:9600 pts_time:0.3\nlavfi.r128.M=-20.5\nlavfi.r128.S=-30.25\n"
           "frame:3 pts:9600 pts_time:2.9\nlavfi.r128.M=-19.0\nlavfi.r128.S=-18.0\n")
    s = readers.parse_meter_log(log)
    assert s["time"] == [0.1, 0.2, 0.4, 3.0]
    assert s["momentary"] == [None, None, -20.5, -19.0]
    assert s["short_term"] == [None, None, None, -18.0]


def test_read_audio_and_thumbnails_follow_the_video(short_video):
    y, rate = readers.read_audio(short_video.path, rate=4000)
    assert rate == 4000 and abs(len(y) / rate - short_video.duration) < 0.05
    assert 0.02 < float(np.max(np.abs(y))) < 0.2  # the sample's quiet tone bed
    frames = readers.thumbnails(short_video.path, [1.0, 3.0, 5.0], height=36)
    assert [f.shape for f in frames] == [(36, 64, 3)] * 3
    # three different scenes (testsrc2, life, smptehdbars) look different
    means = [f.reshape(-1, 3).mean(axis=0) for f in frames]
    assert min(np.abs(means[0] - means[1]).max(), np.abs(means[1] - means[2]).max()) > 10


def test_beat_times_follow_each_segments_tempo():
    seg = dict(prompt="x", style="electronic", mood="happy", key="A minor", energy=0.5)
    plan = Plan(duration=5.0, prompt="x", segments=[Segment(index=0, start=0, end=2, bpm=120, **seg),
                                                     Segment(index=1, start=2, end=5, bpm=60, **seg)])
    beats, bars = viz.beat_times(plan)
    assert beats == pytest.approx([0, 0.5, 1.0, 1.5, 2, 3, 4])
    assert bars == pytest.approx([0, 2])


def test_timeline_shows_cuts_segments_and_beats(short_video, features, plan, tmp_path):
    fig = viz.timeline(short_video.path, features, plan, n_thumbnails=4, detected_beats=[0.5, 1.0])
    try:
        labels = [a.get_ylabel() for a in fig.axes]
        assert labels[:3] == ["picture", "motion", "speech"] and "music plan" in labels and "beats / bars" in labels
        texts = " ".join(t.get_text() for a in fig.axes for t in a.texts)
        for seg in plan.segments:
            assert f"{seg.bpm:.0f} bpm · {seg.key}" in texts and seg.style in texts
        motion_ax = fig.axes[1]
        cut_lines = sorted(round(line.get_xdata()[0], 2) for line in motion_ax.get_lines()
                           if line.get_linestyle() == "--")
        assert cut_lines == pytest.approx([c.time for c in features.cuts], abs=0.05)
        assert cut_lines == pytest.approx(short_video.cuts, abs=0.1)  # the known truth
        assert len(fig.axes[0].images) == 4
        png = viz.save(fig, tmp_path / "timeline.png")
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[1] > 1000 and img.shape[0] > 500


def test_loudness_curves_and_waveforms(tmp_path):
    import matplotlib.pyplot as plt

    a = _tone(tmp_path / "a.wav", 4.0, 0.3)
    b = _tone(tmp_path / "b.wav", 4.0, 0.03)
    fig = viz.loudness_curves({"loud": a, "quiet": b}, target_lufs=-14, speech=[(1.0, 2.0)])
    ax = fig.axes[0]
    thick = {line.get_label(): line for line in ax.get_lines() if line.get_label() in ("loud", "quiet")}
    gap = np.nanmean(thick["loud"].get_ydata()) - np.nanmean(thick["quiet"].get_ydata())
    assert gap == pytest.approx(20.0, abs=0.5)  # 0.3 vs 0.03 amplitude = 20 dB
    plt.close(fig)
    fig = viz.waveforms({"loud": a, "quiet": b})
    assert [x.get_ylabel() for x in fig.axes] == ["loud", "quiet"]
    assert fig.axes[0].get_xlim()[1] == pytest.approx(4.0, abs=0.05)
    plt.close(fig)
    with pytest.raises(BadInput):
        viz.loudness_curves({})
    with pytest.raises(BadInput):
        viz.waveforms({})


def test_compare_and_batch_summary_say_what_is_missing():
    import matplotlib.pyplot as plt

    rows = [{"prompt": "a", "seed": 0, "bpm": 120.0, "hit_rate": 0.9},
            {"prompt": "b", "seed": 0, "bpm": 80.0, "hit_rate": None}]
    fig = viz.compare(rows, x="prompt", columns=["bpm", "hit_rate", "absent"], reference={"hit_rate": 0.9})
    titles = [a.get_title() for a in fig.axes]
    assert titles == ["bpm", "hit_rate  (1 not measured)"]
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    assert heights == [80.0, 120.0]
    plt.close(fig)
    with pytest.raises(BadInput):
        viz.compare([], x="prompt", columns=["bpm"])
    with pytest.raises(BadInput):
        viz.compare(rows, x="prompt", columns=["nothing"])
    batch = [{"video": "a.mp4", "status": "COMPLETED", "elapsed_s": 3, "integrated_lufs": -14.1, "target_lufs": -14},
             {"video": "b.mp4", "status": "FAILED", "error_type": "UnsupportedMedia", "elapsed_s": 0.1}]
    fig = viz.batch_summary(batch)
    assert fig.axes[0].get_title() == "1 of 2 completed, 1 failed"
    assert "UnsupportedMedia" in " ".join(t.get_text() for t in fig.axes[0].texts)
    lo, hi = fig.axes[1].get_xlim()
    assert hi - lo >= 6  # a 0.1 LU miss is not drawn as a big one
    plt.close(fig)


def test_players_embed_small_media(short_video, tmp_path):
    html = viz.players({"A": short_video.path}).data
    assert '<video controls' in html and "data:video/mp4;base64," in html and "<b>A</b>" in html
    audio = readers.audio_of(short_video.path, tmp_path / "a.m4a")
    assert "data:audio/mp4;base64," in viz.players({"B": audio}).data
    ab = viz.ab_players({"first": short_video.path}).data
    assert "<audio controls" in ab and (short_video.path.parent / "short_audio.m4a").is_file()
    with pytest.raises(BadInput):
        viz.players({"gone": tmp_path / "missing.mp4"})
