"""The CLI as a user meets it: real processes, one JSON object on stdout, one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from musicvid_core.metrics import measure_loudness, video_packet_hashes

pytestmark = pytest.mark.slow


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICVID_")}
    env.update(MUSICVID_HOME=str(tmp_path / "home"), MUSICVID_USER="cli", MUSICVID_RETRY_TIME_SCALE="0")

    def call(*args, check=None):
        proc = subprocess.run([sys.executable, "-m", "musicvid_core.cli", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=300)
        if check is not None:
            assert proc.returncode == check, proc.stderr
        return proc

    return call


def test_run_json_then_jobs(cli, short_video, tmp_path):
    out = tmp_path / "scored.mp4"
    proc = cli("run", short_video.path, "--prompt", "upbeat corporate", "--out", out, "--json", check=0)
    result = json.loads(proc.stdout)
    assert result["job"]["status"] == "COMPLETED" and result["output"] == str(out)
    assert result["plan"]["segments"] and result["metrics"]["integrated_lufs"] < 0
    assert video_packet_hashes(out) == video_packet_hashes(short_video.path)
    assert "Traceback" not in proc.stderr
    listing = json.loads(cli("jobs", "--json", check=0).stdout)
    assert [j["job_id"] for j in listing] == [result["job"]["job_id"]]
    shown = json.loads(cli("jobs", "show", result["job"]["job_id"], "--json", check=0).stdout)
    assert shown["prompts"] == ["upbeat corporate"]
    regen = json.loads(cli("regenerate", result["job"]["job_id"], "--prompt", "darker", "--json",
                           "--loudness", "apple", check=0).stdout)
    assert regen["job"]["operation_type"] == "REGENERATE"
    assert regen["job"]["prompts"] == ["upbeat corporate", "darker"]
    assert regen["metrics"]["target_lufs"] == -16.0
    assert abs(measure_loudness(regen["output"]).integrated_lufs + 16.0) <= 0.5


def test_run_with_preset_override_and_stems(cli, short_video, tmp_path):
    import soundfile as sf

    proc = cli("run", short_video.path, "--prompt", "calm piano", "--loudness", "broadcast", "--true-peak", "-2",
               "--stems", tmp_path / "stems", "--out", tmp_path / "o.mp4", "--json", check=0)
    metrics = json.loads(proc.stdout)["metrics"]
    assert metrics["target_lufs"] == -23.0
    loud = measure_loudness(tmp_path / "o.mp4")
    assert abs(loud.integrated_lufs + 23.0) <= 0.5 and loud.true_peak_dbtp <= -2.0
    names = sorted(p.name for p in (tmp_path / "stems").iterdir())
    assert names == ["master.wav", "music.wav", "original.wav", "plan.json"]
    assert {sf.info(tmp_path / "stems" / n).frames for n in names if n.endswith(".wav")} == {6 * 48000}
    bad = cli("run", short_video.path, "--prompt", "x", "--loudness", "tv", check=2)
    assert "unknown loudness preset" in bad.stderr and "Traceback" not in bad.stderr


def test_analyze_prints_plan(cli, short_video):
    plan = json.loads(cli("analyze", short_video.path, "--prompt", "slow sad piano", check=0).stdout)
    assert plan["segments"][0]["start"] == 0 and plan["duration"] == pytest.approx(6.0, abs=1e-3)


def _bad_inputs(tmp_path, short_video):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    trunc = tmp_path / "truncated.mp4"
    trunc.write_bytes(short_video.path.read_bytes()[: short_video.path.stat().st_size // 3])
    audio_only = tmp_path / "audio.m4a"
    from musicvid_core.media import run_ffmpeg

    run_ffmpeg(["-f", "lavfi", "-t", "2", "-i", "sine=frequency=440", "-c:a", "aac", str(audio_only)])
    return {"missing": tmp_path / "nope.mp4", "empty": empty, "text": text, "truncated": trunc,
            "audio-only": audio_only}


def test_bad_inputs_get_one_line_errors(cli, tmp_path, short_video):
    for name, path in _bad_inputs(tmp_path, short_video).items():
        proc = cli("run", path, "--prompt", "calm")
        assert proc.returncode != 0, name
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("job ")
                 and "…" not in ln]
        assert len(lines) == 1 and lines[0].startswith("error:"), (name, proc.stderr)
        assert "Traceback" not in proc.stderr
    # every job that was created ended FAILED with a reason; none is left running
    jobs = json.loads(cli("jobs", "--json", check=0).stdout)
    assert jobs and all(j["status"] == "FAILED" and j["error"]["message"] for j in jobs)


def test_usage_errors(cli):
    proc = cli("run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = cli("jobs", "show", "not-a-uuid")
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error:")
    proc = cli("jobs", "show", "00000000-0000-0000-0000-000000000000")
    assert proc.returncode != 0 and "no such job" in proc.stderr
