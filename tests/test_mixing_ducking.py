"""Ducking under speech, loudness presets and the speech/music metric, measured on what is written."""

import math

import numpy as np
import pytest
import soundfile as sf

from musicvid_core.domain import BadInput
from musicvid_core.domain.features import Region
from musicvid_core.lab.samples import espeak_available, make_video
from musicvid_core.media import run_ffmpeg
from musicvid_core.metrics import measure_loudness, speech_music_difference, video_packet_hashes
from musicvid_core.stages.analyse.features import analyze_video
from musicvid_core.stages.analyse.probe import probe
from musicvid_core.stages.mix.compose import SPEECH_CLEARANCE_LU, compose, duck_depth
from musicvid_core.stages.mix.filtergraph import duck_chain, duck_spans
from musicvid_core.stages.mix.presets import LOUDNESS_PRESETS, job_options
from tests.test_mixing_compose import SR, make_plan, media_of, write_clips


# --- the envelope ----------------------------------------------------------------------------
def test_close_regions_are_bridged_far_ones_are_not():
    plan = make_plan([0, 20.0], speech=[Region(start=1, end=2), Region(start=2.4, end=3),
                                        Region(start=6, end=7)], duck_attack_s=0.1, duck_release_s=0.3)
    assert duck_spans(plan) == [(1, 3), (6, 7)]  # 0.4 s gap bridged, 3 s gap not
    # slow ramps: the bridge grows to attack + release so the ramps never overlap
    slow = plan.model_copy(update={"duck_attack_s": 1.0, "duck_release_s": 2.5})
    assert duck_spans(slow) == [(1, 7)]
    assert duck_chain(plan, 0.0) is None and duck_chain(make_plan([0, 5.0]), 12.0) is None


def test_envelope_gain_over_time(tmp_path):
    """A constant signal through the ducking chain: 0 dB away from speech, -depth from the speech's
    start (the attack runs before it) to its end, across a short gap too, back to 0 dB after the
    release, and every step between two 128-sample frames is small (no zipper)."""
    plan = make_plan([0, 8.0], speech=[Region(start=2, end=3), Region(start=3.3, end=4)],
                     duck_attack_s=0.15, duck_release_s=0.5)
    wav = tmp_path / "ducked.wav"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"aevalsrc=0.5:s={SR}:d=8", "-af", duck_chain(plan, 12.0),
                "-c:a", "pcm_f32le", str(wav)])
    x, _ = sf.read(wav)
    gain_db = 20 * np.log10(np.abs(x) / 0.5)

    def at(t):
        return gain_db[round(t * SR)]

    assert at(0.5) == pytest.approx(0, abs=1e-3) and at(1.84) == pytest.approx(0, abs=1e-3)
    for t in (2.0, 2.5, 3.0, 3.15, 3.3, 3.99):
        assert at(t) == pytest.approx(-12, abs=0.1), t
    assert at(4.25) == pytest.approx(-6, abs=1.0)  # half-way through the release (raised cosine)
    assert at(4.51) == pytest.approx(0, abs=1e-3) and at(7.5) == pytest.approx(0, abs=1e-3)
    assert np.max(np.abs(np.diff(gain_db))) < 0.4


def test_depth_deepens_to_keep_the_clearance():
    plan = make_plan([0, 5.0], duck_db=12.0)
    assert duck_depth(plan, speech_lufs=-20, music_lufs=-30) == 12.0  # 10 LU under already: plan's depth
    assert duck_depth(plan, speech_lufs=-25, music_lufs=-14) == pytest.approx(11 + SPEECH_CLEARANCE_LU + 1)
    assert duck_depth(plan, speech_lufs=-70, music_lufs=-14) == 12.0  # silent "speech": nothing to protect
    assert duck_depth(plan, speech_lufs=-50, music_lufs=0) == 40.0  # capped


# --- presets ---------------------------------------------------------------------------------
def test_job_options():
    assert job_options(None) == {}
    assert job_options({"loudness": "broadcast"}) == {"target_lufs": -23.0, "true_peak_dbtp": -1.0}
    assert job_options({"loudness": "apple", "true_peak_dbtp": -2, "target_lufs": None,
                             "stems": True}) == {"target_lufs": -16.0, "true_peak_dbtp": -2.0, "stems": True}
    for bad in ({"loudness": "tv"}, {"target_lufs": -3}, {"true_peak_dbtp": 1}, {"target_lufs": "loud"}):
        with pytest.raises(BadInput):
            job_options(bad)


# --- the metric ------------------------------------------------------------------------------
def _stem(path, x):
    sf.write(path, np.stack([x, x], axis=1).astype(np.float32), SR, subtype="FLOAT")
    return path


def test_metric_on_known_levels(tmp_path):
    t = np.arange(10 * SR) / SR
    tone = np.sin(2 * np.pi * 1000 * t)
    speech = np.where((t >= 2) & (t < 5), 0.3, 0.0) * tone
    music = np.where((t >= 2) & (t < 5), 0.03, 0.3) * tone  # 20 dB under the speech
    m = speech_music_difference(_stem(tmp_path / "o.wav", speech), _stem(tmp_path / "m.wav", music),
                                [Region(start=2, end=5)])
    assert m["speech_music_lu"] == pytest.approx(20.0, abs=0.3)
    assert m["recovery_lu"] == pytest.approx(0.0, abs=0.2) and m["music_recovered"] is True
    assert m["speech_s"] == 3.0
    # music still ducked 1-2 s after the speech: not recovered
    late = np.where((t >= 2) & (t < 7), 0.03, 0.3) * tone
    m = speech_music_difference(tmp_path / "o.wav", _stem(tmp_path / "late.wav", late), [(2, 5)])
    assert m["recovery_lu"] > 3 and m["music_recovered"] is False


def test_metric_on_silence_is_finite(tmp_path):
    silent = _stem(tmp_path / "s.wav", np.zeros(4 * SR))
    m = speech_music_difference(silent, silent, [(1, 2)])
    assert m["speech_lufs"] == m["music_lufs"] == -70.0 and m["speech_music_lu"] == 0.0
    assert all(math.isfinite(v) for v in m.values() if isinstance(v, float))
    assert speech_music_difference(silent, silent, [(1, 3.8)])["recovery_lu"] is None  # no room after


# --- compose on generated speech ---------------------------------------------------------------
@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """12 s, three scenes, espeak-ng speech from 1 s to ~5 s over a quiet bed, and what the analysis
    finds in it."""
    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    d = tmp_path_factory.mktemp("talk")
    sample = make_video(d / "talk.mp4", (4, 4, 4), audio="speech", speech_at=1.0,
                        speech_text="Welcome to the harbour. Every morning the boats come in.")
    media = probe(sample.path)
    return sample, media, analyze_video(sample.path, media)


@pytest.mark.parametrize("preset", sorted(LOUDNESS_PRESETS))
def test_music_ducks_under_speech_and_comes_back(talk, tmp_path, preset):
    sample, media, features = talk
    assert features.speech
    target, peak = LOUDNESS_PRESETS[preset]
    plan = make_plan([0, 6.0, 12.0], speech=features.speech)
    clips = write_clips(plan, tmp_path / "clips", level_dbfs=-6.0)  # loud music: the depth must grow
    out = tmp_path / "out.mp4"
    metrics = compose(sample.path, media, plan, clips, out, target_lufs=target, true_peak_dbtp=peak,
                      stems_dir=tmp_path / "stems")
    report = metrics["speech_music"]
    assert report["speech_music_lu"] >= 10.0 and metrics["duck_db"] > plan.duck_db
    assert report["recovery_lu"] <= 3.0 and report["music_recovered"] is True
    # independently, from the stems compose wrote (the ducked music, the original)
    again = speech_music_difference(tmp_path / "stems" / "original.wav", tmp_path / "stems" / "music.wav",
                                    features.speech)
    assert again["speech_music_lu"] == pytest.approx(report["speech_music_lu"], abs=0.01)
    assert again["recovery_lu"] <= 3.0
    # stems are sample-aligned with the video: each exactly its duration in samples
    total = round(media.duration * SR)
    assert {name: sf.info(tmp_path / "stems" / f"{name}.wav").frames for name in ("music", "original", "master")} \
        == dict.fromkeys(("music", "original", "master"), total)
    loud = measure_loudness(out)
    assert abs(loud.integrated_lufs - target) <= 0.5 and loud.true_peak_dbtp <= peak
    assert video_packet_hashes(out) == video_packet_hashes(sample.path)


def test_no_speech_no_ducking(talk, tmp_path):
    sample, media, _ = talk
    plan = make_plan([0, 12.0])
    metrics = compose(sample.path, media, plan, write_clips(plan, tmp_path / "clips"), tmp_path / "out.mp4")
    assert "speech_music" not in metrics and "duck_db" not in metrics


def test_speech_regions_on_silent_sound_stay_finite(tmp_path):
    video = make_video(tmp_path / "silence.mp4", (3, 3), audio="silence").path
    plan = make_plan([0, 6.0], speech=[Region(start=1, end=2.5)])
    metrics = compose(video, media_of(video, 2), plan, write_clips(plan, tmp_path / "clips"), tmp_path / "out.mp4")
    assert metrics["duck_db"] == plan.duck_db  # silent "speech": the plan's depth, nothing measured into it
    report = metrics["speech_music"]
    assert report["speech_lufs"] == -70.0 and report["music_recovered"] is True
    for value in [*metrics.values(), *report.values()]:
        if isinstance(value, float):
            assert math.isfinite(value)
    assert video_packet_hashes(tmp_path / "out.mp4") == video_packet_hashes(video)
