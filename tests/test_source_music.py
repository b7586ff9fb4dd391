"""Music already in the original sound: detected by the analysis, ducked / muted / kept by the mix,
measured on the stems compose writes."""

import numpy as np
import pytest
import soundfile as sf

from musicvid_core.domain import BadInput
from musicvid_core.domain.features import Region
from musicvid_core.lab.samples import espeak_available, make_video
from musicvid_core.media import run_ffmpeg
from musicvid_core.metrics import measure_loudness, video_packet_hashes
from musicvid_core.metrics.speech import loudness_over
from musicvid_core.stages.analyse.features import analyze_video
from musicvid_core.stages.analyse.probe import probe
from musicvid_core.stages.mix.compose import SOURCE_MUSIC_CLEARANCE_LU, compose, source_depth
from musicvid_core.stages.mix.filtergraph import source_music_chain
from musicvid_core.stages.mix.presets import job_options
from tests.test_mixing_compose import SR, make_plan, write_clips


def _music_s(features) -> float:
    return sum(r.end - r.start for r in features.music)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    out = {}
    for kind in ("music", "tone", "speech", "silence"):
        sample = make_video(d / f"{kind}.mp4", (4, 4, 4), audio=kind)
        media = probe(sample.path)
        out[kind] = (sample, media, analyze_video(sample.path, media))
    return out


# --- detection -------------------------------------------------------------------------------
def test_music_in_the_source_is_detected(samples):
    _, media, features = samples["music"]
    assert _music_s(features) >= 0.8 * media.duration
    assert not features.speech


def test_steady_tone_and_silence_are_not_music(samples):
    """A steady sine bed is tonal and held but its harmony never moves: not music."""
    for kind in ("tone", "silence"):
        assert samples[kind][2].music == [], kind


def test_speech_is_not_music(samples):
    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    _, media, features = samples["speech"]
    assert features.speech
    assert _music_s(features) <= 0.2 * media.duration


# --- the envelope ----------------------------------------------------------------------------
def test_replace_mutes_inside_and_keeps_the_rest(tmp_path):
    plan = make_plan([0, 8.0], source_music=[Region(start=2, end=4)], duck_attack_s=0.15,
                     duck_release_s=0.5)
    assert source_music_chain(plan, 0.0) is None and source_music_chain(make_plan([0, 8.0]), 12.0) is None
    wav = tmp_path / "muted.wav"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"aevalsrc=0.5:s={SR}:d=8", "-af",
                source_music_chain(plan, float("inf")), "-c:a", "pcm_f32le", str(wav)])
    x, _ = sf.read(wav)
    assert np.all(x[round(2.0 * SR):round(4.0 * SR)] == 0)
    assert x[round(1.0 * SR)] == pytest.approx(0.5) and x[round(5.0 * SR)] == pytest.approx(0.5)


def test_source_depth_and_options():
    assert source_depth(original_lufs=-30, music_lufs=-14) == 12.0
    assert source_depth(original_lufs=-14, music_lufs=-20) == pytest.approx(6 + SOURCE_MUSIC_CLEARANCE_LU + 1)
    assert source_depth(original_lufs=-70, music_lufs=-14) == 12.0
    assert job_options({"source_music": "replace"}) == {"source_music": "replace"}
    with pytest.raises(BadInput):
        job_options({"source_music": "louder"})


# --- compose ---------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["duck", "replace", "keep"])
def test_source_music_policies(samples, tmp_path, policy):
    sample, media, features = samples["music"]
    plan = make_plan([0, 6.0, 12.0], source_music=features.music, source_music_policy=policy)
    assert plan.source_music
    # our music quieter than the source's: in "duck" the depth must grow past the minimum
    clips = write_clips(plan, tmp_path / "clips", level_dbfs=-26.0)
    out = tmp_path / "out.mp4"
    metrics = compose(sample.path, media, plan, clips, out, stems_dir=tmp_path / "stems")
    spans = [(r.start, r.end) for r in features.music]
    original = loudness_over(tmp_path / "stems" / "original.wav", spans)
    music = loudness_over(tmp_path / "stems" / "music.wav", spans)
    if policy == "duck":
        report = metrics["source_music"]
        assert report["duck_db"] > 12.0
        assert music - original >= 10.0, (music, original)
    elif policy == "replace":
        assert metrics["source_music"]["duck_db"] is None
        assert original == -70.0
    else:
        assert "source_music" not in metrics
        assert original > music  # left as it is: the source's chords are louder than ours
    assert abs(measure_loudness(out).integrated_lufs - (-14.0)) <= 0.5
    assert video_packet_hashes(out) == video_packet_hashes(sample.path)


# --- preview ---------------------------------------------------------------------------------
def test_preview_is_small_and_as_long_as_the_video(tmp_path):
    from musicvid_core.metrics import stream_durations

    sample = make_video(tmp_path / "hd.mp4", (2, 2), size=(1280, 720), fps=30, audio="music")
    media = probe(sample.path)
    plan = make_plan([0, 2.0, 4.0])
    out = tmp_path / "out_preview.mp4"
    metrics = compose(sample.path, media, plan, write_clips(plan, tmp_path / "clips"), out, preview=True)
    assert metrics["preview"] is True
    small = probe(out)
    assert (small.width, small.height) == (640, 360)
    durations = stream_durations(out)
    assert abs(durations["video"] - media.duration) <= 1 / media.fps + 1e-6
    assert abs(durations["audio"] - media.duration) <= 1 / media.fps + 1e-6
    assert abs(measure_loudness(out).integrated_lufs - (-14.0)) <= 1.0
