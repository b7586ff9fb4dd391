"""End to end on the embedded default, asserted by measurement on generated media."""

import json
import math

import pytest

from musicvid_core.domain import OperationType, Stage, Status
from musicvid_core.domain.errors import GenerationError, MixError, TransientBackendError
from musicvid_core.lab.samples import make_video
from musicvid_core.metrics import measure_loudness, stream_durations, video_packet_hashes
from musicvid_core.workflow import submit as service

pytestmark = pytest.mark.slow


def _run(services, path, prompt="warm acoustic, slow build, big finish", **kw):
    uri = service.upload_file(services, path, "tester")
    job = service.submit_new(services, uri, prompt, "tester", **kw)
    return service.run(services, job)


def _assert_good_output(services, job, source, target_lufs=-14.0):
    assert job.status == Status.COMPLETED, job.error
    assert job.stage == Stage.DONE and job.summary and job.plan_url
    out = service.output_path(services, job)
    # the video stream is copied, packet for packet
    assert video_packet_hashes(out) == video_packet_hashes(source)
    durs = stream_durations(out)
    src = stream_durations(source)
    frame = 1.0 / 25
    assert abs(durs["video"] - src["video"]) < 1e-3
    assert abs(durs["audio"] - durs["video"]) <= frame
    loud = measure_loudness(out)
    assert abs(loud.integrated_lufs - target_lufs) <= 1.0
    assert loud.true_peak_dbtp <= -1.0
    for key in ("duration_s", "integrated_lufs", "true_peak_dbtp"):
        assert math.isfinite(job.metrics[key])
    return out


def test_full_run_measures_right(services, short_video):
    job = _run(services, short_video.path)
    _assert_good_output(services, job, short_video.path)
    plan = services.objects.get_json(services.objects.key_from_uri(job.plan_url))
    assert plan["segments"][0]["start"] == 0 and abs(plan["segments"][-1]["end"] - 6.0) < 1e-6
    # the input upload is kept, intermediates sit under this attempt's prefix
    assert services.objects.exists(services.objects.key_from_uri(job.s3_url))


@pytest.mark.parametrize("audio,size,fps", [("none", (320, 180), 25), ("5.1", (426, 240), 30000 / 1001)])
def test_other_inputs(services, media_dir, audio, size, fps):
    sample = make_video(media_dir / f"in_{audio}.mp4", (2.5, 2.5), size=size, fps=fps, audio=audio)
    job = _run(services, sample.path)
    assert job.status == Status.COMPLETED, job.error
    out = service.output_path(services, job)
    assert video_packet_hashes(out) == video_packet_hashes(sample.path)
    durs = stream_durations(out)
    assert abs(durs["audio"] - durs["video"]) <= 1.0 / fps
    assert abs(measure_loudness(out).integrated_lufs + 14) <= 1.0


def test_custom_loudness_target(services, short_video):
    job = _run(services, short_video.path, options={"target_lufs": -23.0})
    _assert_good_output(services, job, short_video.path, target_lufs=-23.0)


def test_corrupt_input_fails_cleanly(services, tmp_path):
    bad = tmp_path / "random.mp4"
    bad.write_bytes(bytes(range(256)) * 64)
    job = _run(services, bad)
    assert job.status == Status.FAILED
    assert job.error.stage == "analyze" and job.error.type == "UnsupportedMedia"
    assert job.error.message and "\n" not in job.error.message
    assert services.objects.list(f"jobs/{job.job_id}") == []
    assert services.objects.exists(services.objects.key_from_uri(job.s3_url))


def test_failure_in_mix_rolls_back_partial_outputs(services, short_video, monkeypatch):
    import musicvid_core.stages.mix.compose as compose_mod

    def broken(video, media, plan, clips, out, **kw):
        out.write_bytes(b"partial")  # a half-written output must not survive
        raise MixError("mixer exploded")

    monkeypatch.setattr(compose_mod, "compose", broken)
    job = _run(services, short_video.path)
    assert job.status == Status.FAILED
    assert (job.error.type, job.error.stage, job.error.message) == ("MixError", "mix", "mixer exploded")
    # nothing of the attempt is left; the job's analysis cache (complete, input-derived) stays for a retry
    assert services.objects.list(f"jobs/{job.job_id}") == [job.layout.features_cache]
    assert services.objects.exists(services.objects.key_from_uri(job.s3_url))


def test_transient_generation_errors_are_retried(services, short_video, monkeypatch):
    gen = services.generator
    real = gen.generate
    calls = {"n": 0}

    def flaky(plan, index, seed):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise TransientBackendError("backend busy")
        return real(plan, index, seed)

    monkeypatch.setattr(gen, "generate", flaky)
    job = _run(services, short_video.path)
    assert job.status == Status.COMPLETED, job.error
    assert calls["n"] >= 3


def test_permanent_generation_error_is_not_retried(services, short_video, monkeypatch):
    calls = {"n": 0}

    def broken(plan, index, seed):
        calls["n"] += 1
        raise GenerationError(f"segment {index} cannot be rendered")

    monkeypatch.setattr(services.generator, "generate", broken)
    job = _run(services, short_video.path)
    assert job.status == Status.FAILED and job.error.stage == "generate"
    assert job.error.type == "GenerationError"
    assert calls["n"] <= 4  # at most one call per segment (Map stops launching after a failure)


def test_regenerate_keeps_history_and_replaces_output(services, short_video, monkeypatch):
    first = _run(services, short_video.path, prompt="calm ambient")
    old_out = service.output_path(services, first)
    job = service.submit_regenerate(services, first.job_id, "same but darker", "tester")
    assert job.status == Status.SCHEDULED and job.operation_type == OperationType.REGENERATE
    assert job.final_url == first.final_url  # earlier output kept until the new one succeeds
    assert old_out.exists()
    done = service.run(services, job)
    assert done.status == Status.COMPLETED, done.error
    assert done.prompts == ["calm ambient", "same but darker"] and done.attempt == 2
    new_out = service.output_path(services, done)
    assert new_out != old_out and new_out.exists() and not old_out.exists()
    # a failed regeneration leaves the previous output in place
    monkeypatch.setattr(services.generator, "generate",
                        lambda *a: (_ for _ in ()).throw(GenerationError("nope")))
    again = service.run(services, service.submit_regenerate(services, done.job_id, "jazz", "tester"))
    assert again.status == Status.FAILED and again.final_url == done.final_url and new_out.exists()
    assert again.prompts[-1] == "jazz"


def test_regenerate_refuses_other_users_and_bad_ids(services, short_video):
    from musicvid_core.domain import BadInput, NotFound

    job = _run(services, short_video.path)
    with pytest.raises(NotFound):
        service.submit_regenerate(services, job.job_id, "x", "intruder")
    with pytest.raises(BadInput):
        service.submit_regenerate(services, "nope", "x", "tester")


def test_plan_is_deterministic_per_seed(services, short_video):
    a = _run(services, short_video.path, seed=7)
    b = _run(services, short_video.path, seed=7)
    pa, pb = (json.loads(services.objects.get_bytes(services.objects.key_from_uri(j.plan_url)))
              for j in (a, b))
    assert pa == pb


def test_odd_picture_size_and_rate_in_mkv(services, media_dir):
    from musicvid_core.media import run_ffmpeg

    odd = media_dir / "odd_321x181.mkv"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=321x181:rate=23.976", "-f", "lavfi", "-i",
                "sine=frequency=300:sample_rate=44100", "-t", "3", "-c:v", "libx264", "-preset", "veryfast",
                "-pix_fmt", "yuv444p", "-c:a", "aac", "-ac", "1", str(odd)])
    job = _run(services, odd)
    assert job.status == Status.COMPLETED, job.error
    out = service.output_path(services, job)
    assert out.suffix == ".mkv"
    assert video_packet_hashes(out) == video_packet_hashes(odd)
    durs = stream_durations(out)
    # Matroska keeps no AAC end-trim (up to 1024 samples = 21 ms of padding): still within a frame
    assert abs(durs["audio"] - durs["video"]) <= 1.0 / 23.976


def test_speech_is_ducked_with_preset_and_stems(services, media_dir, tmp_path):
    """A talking video end to end: the broadcast preset, the music >= 10 LU under the speech and back
    after it, stems exported sample-aligned with the video, the plan beside them."""
    import soundfile as sf

    from musicvid_core.lab.samples import espeak_available

    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    sample = make_video(media_dir / "talk_pipeline.mp4", (4, 4, 4), audio="speech", speech_at=1.0,
                        speech_text="Welcome to the harbour. Every morning the boats come in.")
    job = _run(services, sample.path, prompt="energetic rock", options={"loudness": "broadcast", "stems": True})
    _assert_good_output(services, job, sample.path, target_lufs=-23.0)
    assert abs(measure_loudness(service.output_path(services, job)).integrated_lufs + 23.0) <= 0.5
    report = job.metrics["speech_music"]
    assert report["speech_music_lu"] >= 10.0 and report["recovery_lu"] <= 3.0
    written = service.export_stems(services, job, tmp_path / "stems")
    assert sorted(p.name for p in written) == ["master.wav", "music.wav", "original.wav", "plan.json"]
    total = round(stream_durations(sample.path)["video"] * 48000)
    assert all(sf.info(p).frames == total for p in written if p.suffix == ".wav")
    plan = json.loads((tmp_path / "stems" / "plan.json").read_text())
    assert plan["speech"] and plan["duck_db"] >= 0


def test_source_music_is_ducked_end_to_end_and_preview(services, media_dir):
    """A video whose own sound is music: detected, planned with the default policy (duck) and ducked
    >= 10 LU under ours; then the same as a preview (option), written as output_preview, smaller."""
    from musicvid_core.stages.analyse.probe import probe

    sample = make_video(media_dir / "music_pipeline.mp4", (3, 3), size=(960, 540), fps=25, audio="music")
    job = _run(services, sample.path)
    _assert_good_output(services, job, sample.path)
    plan = services.objects.get_json(services.objects.key_from_uri(job.plan_url))
    assert plan["source_music"] and plan["source_music_policy"] == "duck"
    report = job.metrics["source_music"]
    assert report["music_lufs"] - (report["original_lufs"] - report["duck_db"]) >= 10.0
    job = _run(services, sample.path, options={"preview": True, "source_music": "replace"})
    assert job.status == Status.COMPLETED, job.error
    out = service.output_path(services, job)
    assert out.stem == "output_preview" and probe(out).height == 360
    assert job.metrics["source_music"]["policy"] == "replace"
    assert abs(stream_durations(out)["video"] - 6.0) <= 1 / 25 + 1e-6
    assert abs(measure_loudness(out).integrated_lufs + 14) <= 1.0


def test_regeneration_reuses_analysis_and_preview_proxy(services, media_dir, monkeypatch):
    """The features (and a preview's proxy) are made once per job: a regeneration re-plans and
    re-renders without decoding the video again, and a preview copies the proxy's packets."""
    import musicvid_core.stages.analyse.features as features_mod
    from musicvid_core.stages.analyse.probe import probe

    sample = make_video(media_dir / "proxy_src.mp4", (2, 2), size=(854, 480), fps=25, audio="tone")
    job = _run(services, sample.path, options={"preview": True})
    assert job.status == Status.COMPLETED, job.error
    proxy = services.objects.local_path(job.layout.proxy)
    assert services.objects.exists(job.layout.features_cache) and proxy.is_file()
    first = service.output_path(services, job)
    assert first.stem == "output_preview" and (probe(first).width, probe(first).height) == (640, 360)
    assert video_packet_hashes(first) == video_packet_hashes(proxy)
    made = proxy.stat().st_mtime_ns

    def no_decode(*a, **k):
        raise AssertionError("the video was analysed again")

    monkeypatch.setattr(features_mod, "analyze_video", no_decode)
    monkeypatch.setattr("musicvid_core.media.make_proxy", no_decode)
    job = service.run(services, service.submit_regenerate(services, job.job_id, "dark synth", "tester"))
    assert job.status == Status.COMPLETED and job.attempt == 2, job.error
    out = service.output_path(services, job)
    assert video_packet_hashes(out) == video_packet_hashes(proxy) and proxy.stat().st_mtime_ns == made
    durations = stream_durations(out)
    assert abs(durations["video"] - 4.0) <= 1 / 25 + 1e-6 and abs(durations["audio"] - 4.0) <= 1 / 25 + 1e-6
    assert abs(measure_loudness(out).integrated_lufs + 14) <= 1.0
    # back to the full render: the input's packets again, still without a new analysis
    job = service.run(services, service.submit_regenerate(services, job.job_id, "dark synth", "tester",
                                                          options={"preview": False}))
    assert job.status == Status.COMPLETED, job.error
    assert video_packet_hashes(service.output_path(services, job)) == video_packet_hashes(sample.path)
