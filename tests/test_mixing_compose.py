"""compose() on generated media, asserted by measurement of the files it writes."""

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicvid_core.domain import MixError, Plan, Segment
from musicvid_core.domain.errors import MediaToolError
from musicvid_core.domain.features import AudioStreamInfo, MediaInfo
from musicvid_core.lab.samples import make_video
from musicvid_core.media import run_ffmpeg
from musicvid_core.metrics import measure_loudness, stream_durations, video_packet_hashes
from musicvid_core.stages.mix import compose as compose_mod
from musicvid_core.stages.mix.compose import compose, output_suffix
from musicvid_core.stages.mix.filtergraph import original_chain

SR = 48000
FPS = 25
CHORDS = [(220.0, 277.18, 329.63), (196.0, 246.94, 293.66), (174.61, 220.0, 261.63)]


def make_plan(bounds, **kw) -> Plan:
    segs = [Segment(index=i, start=a, end=b, prompt="warm strings", style="cinematic", mood="calm",
                    bpm=96, key="A minor", energy=0.5) for i, (a, b) in enumerate(itertools.pairwise(bounds))]
    return Plan(duration=bounds[-1], prompt="warm strings", segments=segs, **kw)


def media_of(path, audio_channels: int | None, duration=6.0) -> MediaInfo:
    audio = [] if audio_channels is None else [
        AudioStreamInfo(index=0, codec="aac", sample_rate=SR, channels=audio_channels)]
    return MediaInfo(path=str(path), duration=duration, width=320, height=180, fps=FPS, video_codec="h264",
                     audio=audio)


def write_clips(plan: Plan, folder, *, level_dbfs=-20.0, kind="chord", subtype="FLOAT"):
    """One stereo WAV per segment, exactly Plan.clip_samples long: sine chords peaking at
    ``level_dbfs``, or silence, or an impulse 2000 samples in (to locate the clip in the mix)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(1)
    for i in range(len(plan.segments)):
        n = plan.clip_samples(i, SR)
        t = np.arange(n) / SR
        if kind == "chord":
            x = sum(np.sin(2 * np.pi * f * t) for f in CHORDS[i % 3])
            x = x / np.max(np.abs(x)) * 10 ** (level_dbfs / 20)
        elif kind == "hits":  # dense noise bursts over a bass tone: high crest factor, limiter works hard
            x = 0.03 * np.sin(2 * np.pi * 110 * t) + 0.45 * np.exp(-((t * 4) % 1) * 30) * rng.standard_normal(n)
            x = np.clip(x, -1, 1)
        else:
            x = np.zeros(n)
            if kind == "impulse":
                x[2000] = 0.5
        path = folder / f"clip{i}.wav"
        sf.write(path, np.stack([x, x], axis=1).astype(np.float32), SR, subtype=subtype)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """6 s, 320x180, 25 fps inputs with every kind of sound the mixer must handle."""
    d = tmp_path_factory.mktemp("compose-in")
    kinds = {"tone.mp4": "tone", "none.mp4": "none", "surround.mp4": "5.1", "silence.mp4": "silence",
             "tone.mkv": "tone"}
    return {name: make_video(d / name, (2, 2, 2), fps=FPS, audio=audio).path for name, audio in kinds.items()}


def assert_well_formed(out, source, metrics, target_lufs):
    assert video_packet_hashes(out) == video_packet_hashes(source)  # copied, never re-encoded
    durs = stream_durations(out)
    assert durs["video"] == pytest.approx(stream_durations(source)["video"], abs=1e-6)
    assert abs(durs["audio"] - durs["video"]) <= 1 / FPS
    loud = measure_loudness(out)
    assert abs(loud.integrated_lufs - target_lufs) <= 0.5
    assert loud.true_peak_dbtp <= -1.0
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
    assert metrics["integrated_lufs"] == loud.integrated_lufs
    assert metrics["audio_duration_s"] == durs["audio"] and metrics["duration_s"] == durs["video"]
    # exactly one video and one audio stream: the original audio is not carried as a second track
    streams = re.findall(r"Stream #0:\d+.*?: (Video|Audio|Data|Subtitle)",
                         run_ffmpeg(["-i", str(out)], check=False).stderr)
    assert streams == ["Video", "Audio"]


@pytest.mark.parametrize("target", [-14.0, -23.0])
def test_mp4_with_sound_meets_target(videos, tmp_path, target):
    plan = make_plan([0, 2.0, 4.0, 6.0])
    clips = write_clips(plan, tmp_path / "clips")
    out = tmp_path / "out.mp4"
    metrics = compose(videos["tone.mp4"], media_of(videos["tone.mp4"], 2), plan, clips, out,
                      target_lufs=target)
    assert_well_formed(out, videos["tone.mp4"], metrics, target)
    assert metrics["passes"] >= 1 and metrics["final_runs"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_no_audio_input_gets_music_only(videos, tmp_path):
    plan = make_plan([0, 3.0, 6.0])
    clips = write_clips(plan, tmp_path / "clips", subtype="PCM_16")  # s16 clips are accepted too
    out = tmp_path / "out.mp4"
    metrics = compose(videos["none.mp4"], media_of(videos["none.mp4"], None), plan, clips, out,
                      stems_dir=tmp_path / "stems")
    assert_well_formed(out, videos["none.mp4"], metrics, -14.0)
    assert set(metrics["stems"]) == {"music", "master"}


def test_surround_input(videos, tmp_path):
    plan = make_plan([0, 2.0, 4.0, 6.0])
    out = tmp_path / "out.mp4"
    metrics = compose(videos["surround.mp4"], media_of(videos["surround.mp4"], 6), plan,
                      write_clips(plan, tmp_path / "clips"), out)
    assert_well_formed(out, videos["surround.mp4"], metrics, -14.0)


def test_mkv_input_gives_mkv(videos, tmp_path):
    src = videos["tone.mkv"]
    assert output_suffix(src) == ".mkv" and output_suffix("clip.webm") == ".mkv"
    assert output_suffix("a.MOV") == ".mov"
    plan = make_plan([0, 2.0, 4.0, 6.0])
    out = tmp_path / ("out" + output_suffix(src))
    metrics = compose(src, media_of(src, 2), plan, write_clips(plan, tmp_path / "clips"), out)
    assert_well_formed(out, src, metrics, -14.0)
    assert "matroska" in run_ffmpeg(["-i", str(out)], check=False).stderr


def test_silence_stays_silence(videos, tmp_path):
    plan = make_plan([0, 2.0, 4.0, 6.0])
    clips = write_clips(plan, tmp_path / "clips", kind="silence")
    out = tmp_path / "out.mp4"
    metrics = compose(videos["silence.mp4"], media_of(videos["silence.mp4"], 2), plan, clips, out)
    assert metrics["gain_db"] == 0.0 and metrics["passes"] == 1
    assert metrics["integrated_lufs"] == -70.0 and metrics["true_peak_dbtp"] == -120.0
    for key, value in metrics.items():
        if isinstance(value, float):
            assert math.isfinite(value), key
    audio, _ = sf.read(_decode(out, tmp_path))
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) < 1e-3


def _decode(path, tmp_path):
    wav = tmp_path / "decoded.wav"
    run_ffmpeg(["-y", "-i", str(path), "-map", "0:a:0", "-c:a", "pcm_f32le", str(wav)])
    return wav


def test_clips_land_on_their_exact_sample(videos, tmp_path):
    """Segment starts that are not whole frames or samples: each clip's impulse (2000 samples in)
    appears in the music stem exactly at its segment's first sample + 2000."""
    bounds = [0, 2.01234, 4.5, 6.0]
    plan = make_plan(bounds, fade_in_s=0.0, fade_out_s=0.5)
    clips = write_clips(plan, tmp_path / "clips", kind="impulse")
    compose(videos["none.mp4"], media_of(videos["none.mp4"], None), plan, clips, tmp_path / "out.mp4",
            stems_dir=tmp_path / "stems")
    music, sr = sf.read(tmp_path / "stems" / "music.wav")
    assert sr == SR and len(music) == 6 * SR
    hits = np.nonzero(np.abs(music[:, 0]) > 0.25)[0]
    assert hits.tolist() == [round(b * SR) + 2000 for b in bounds[:-1]]


def test_loud_dense_material_is_limited_to_the_true_peak(videos, tmp_path):
    plan = make_plan([0, 3.0, 6.0])
    clips = write_clips(plan, tmp_path / "clips", kind="hits")
    out = tmp_path / "out.mp4"
    metrics = compose(videos["tone.mp4"], media_of(videos["tone.mp4"], 2), plan, clips, out,
                      target_lufs=-14.0)
    assert metrics["passes"] > 1  # the limiter acted, so the gain was corrected by measurement
    assert_well_formed(out, videos["tone.mp4"], metrics, -14.0)


def test_surround_downmix_coefficients(tmp_path):
    """The original sound's 5.1 fold-down: L = FL + 0.707 C + 0.707 BL, LFE dropped."""
    n = SR
    levels = [0.1, 0.2, 0.3, 0.4, 0.05, 0.06]  # FL FR FC LFE BL BR, constant (DC) per channel
    wav = tmp_path / "surround.wav"
    sf.write(wav, np.tile(np.array(levels, dtype=np.float32), (n, 1)), SR, subtype="FLOAT")
    run_ffmpeg(["-y", "-channel_layout", "5.1", "-i", str(wav), "-filter_complex",
                original_chain(make_plan([0, 1.0]), total=n, sample_rate=SR, input_index=0),
                "-map", "[orig]", "-c:a", "pcm_f32le", str(tmp_path / "stereo.wav")])
    stereo, _ = sf.read(tmp_path / "stereo.wav")
    k = 2 ** -0.5
    assert stereo.shape == (n, 2)
    assert stereo[n // 2, 0] == pytest.approx(0.1 + k * 0.3 + k * 0.05, abs=1e-4)
    assert stereo[n // 2, 1] == pytest.approx(0.2 + k * 0.3 + k * 0.06, abs=1e-4)


def test_missing_clip_fails_cleanly(videos, tmp_path):
    plan = make_plan([0, 2.0, 4.0, 6.0])
    clips = write_clips(plan, tmp_path / "clips")
    clips[1].unlink()
    out_dir = tmp_path / "out"
    with pytest.raises(MixError) as err:
        compose(videos["tone.mp4"], media_of(videos["tone.mp4"], 2), plan, clips, out_dir / "out.mp4")
    assert "segment 1" in str(err.value)
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_ffmpeg_failure_leaves_nothing(videos, tmp_path):
    plan = make_plan([0, 3.0, 6.0])
    clips = write_clips(plan, tmp_path / "clips")
    clips[0].write_bytes(b"RIFF but not really a wave file" * 10)
    out_dir = tmp_path / "out"
    with pytest.raises(MixError, match="mixing failed"):
        compose(videos["tone.mp4"], media_of(videos["tone.mp4"], 2), plan, clips, out_dir / "out.mp4")
    assert list(out_dir.iterdir()) == []


def test_failure_in_the_final_run_removes_the_partial_file(videos, tmp_path, monkeypatch):
    def half_written(video, audio, dest, **kw):
        dest.write_bytes(b"partial")
        raise MediaToolError("compose failed: disk full")

    monkeypatch.setattr(compose_mod, "_final_run", half_written)
    plan = make_plan([0, 3.0, 6.0])
    out_dir = tmp_path / "out"
    with pytest.raises(MixError, match="disk full"):
        compose(videos["none.mp4"], media_of(videos["none.mp4"], None), plan,
                write_clips(plan, tmp_path / "clips"), out_dir / "out.mp4")
    assert list(out_dir.iterdir()) == []  # neither the partial output nor the premaster WAV


def test_rotation_is_kept(videos, tmp_path):
    rotated = tmp_path / "rotated.mp4"
    run_ffmpeg(["-y", "-display_rotation", "90", "-i", str(videos["tone.mp4"]), "-c", "copy", str(rotated)])
    plan = make_plan([0, 6.0])
    out = tmp_path / "out.mov"
    compose(rotated, media_of(rotated, 2).model_copy(update={"rotation": 90}), plan,
            write_clips(plan, tmp_path / "clips"), out)
    info = run_ffmpeg(["-i", str(out)], check=False).stderr
    assert "rotation of 90.00 degrees" in info and "mov," in info
    assert video_packet_hashes(out) == video_packet_hashes(rotated)


def test_the_limited_mix_is_mastered_and_metered_inside_the_final_run(videos, tmp_path, monkeypatch):
    """Issue 18: no master WAV pass and no separate output meter. The limiter feeds the encoder in
    the final run, and that run meters the encoded track itself (a loopback decoder): the figures
    returned are the output file's, true peak included, as an independent decode reads them."""
    calls = []

    def recording(args, **kw):
        calls.append(kw.get("what"))
        return run_ffmpeg(args, **kw)

    monkeypatch.setattr(compose_mod, "run_ffmpeg", recording)
    plan = make_plan([0, 3.0, 6.0])
    out = tmp_path / "out.mp4"
    metrics = compose(videos["tone.mp4"], media_of(videos["tone.mp4"], 2), plan,
                      write_clips(plan, tmp_path / "clips", kind="hits"), out, stems_dir=tmp_path / "stems")
    assert metrics["passes"] > 1  # the limiter acted
    assert "master pass" not in calls and calls.count("compose") == metrics["final_runs"]
    assert_well_formed(out, videos["tone.mp4"], metrics, -14.0)
    loud = measure_loudness(out)
    assert metrics["true_peak_dbtp"] == pytest.approx(loud.true_peak_dbtp, abs=0.1)
    assert metrics["lra_lu"] == pytest.approx(loud.lra_lu, abs=0.1)
    master, _ = sf.read(tmp_path / "stems" / "master.wav")  # the limiter's output, as encoded
    assert len(master) == 6 * SR and 20 * np.log10(np.max(np.abs(master))) <= -1.0


def test_an_encoded_overshoot_lowers_the_limiter_and_runs_again(videos, tmp_path, monkeypatch):
    """The ceiling set right at the target: the peaks AAC adds put the encoded track over it, which
    only a meter of the encoded audio sees; the final run is repeated with a lower ceiling, and the
    gain fitted again for it, so the loudness stays on the target."""
    monkeypatch.setattr(compose_mod, "LIMITER_MARGIN_DB", 0.0)
    plan = make_plan([0, 3.0, 6.0])
    out = tmp_path / "out.mp4"
    metrics = compose(videos["tone.mp4"], media_of(videos["tone.mp4"], 2), plan,
                      write_clips(plan, tmp_path / "clips", kind="hits"), out)
    assert metrics["final_runs"] > 1 and metrics["limit_dbfs"] < -1.0
    measured = measure_loudness(out)
    assert measured.true_peak_dbtp <= -1.0
    assert abs(measured.integrated_lufs - -14.0) <= 0.2


def test_the_premasters_true_peak_is_metered_when_its_sample_peak_leaves_it_open(videos, tmp_path, monkeypatch):
    """The wiring of compose.INTERSAMPLE_MARGIN_DB: with a margin so wide that every mix falls in it,
    the premaster WAV's true peaks are read (limiter.analyse, once) and decide; the output is the one
    the sample peak alone gives when it decides (the -14 LUFS chord mix is linear either way)."""
    from musicvid_core.stages.mix import limiter

    plan = make_plan([0, 2.0, 4.0, 6.0])
    clips = write_clips(plan, tmp_path / "clips")
    metered = []
    real = limiter.analyse

    def counting(path, **kw):
        metered.append(Path(path).name)
        return real(path, **kw)

    monkeypatch.setattr(limiter, "analyse", counting)
    results = {}
    for margin in (0.0, 100.0):
        monkeypatch.setattr(compose_mod, "INTERSAMPLE_MARGIN_DB", margin)
        out = tmp_path / f"out{margin:.0f}.mp4"
        results[margin] = compose(videos["tone.mp4"], media_of(videos["tone.mp4"], 2), plan, clips, out)
        assert_well_formed(out, videos["tone.mp4"], results[margin], -14.0)
    assert metered == ["premaster.wav"]  # only where the margin left it open
    keys = ("gain_db", "passes", "final_runs", "integrated_lufs", "true_peak_dbtp")
    assert [results[0.0][k] for k in keys] == [results[100.0][k] for k in keys]
