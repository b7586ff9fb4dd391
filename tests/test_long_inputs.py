"""Long and oddly named inputs (issue 17): the ffmpeg time limit grows with the input's length, and a
relative path with a colon in its name is a file, not a protocol. The 2-hour and 4 GB runs themselves
are measurements (docs/mixing.md, "Long and large inputs"), not tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from musicvid_core.domain.errors import UnsupportedMedia
from musicvid_core.media import TIMEOUT_REFERENCE_S, local_input, run_ffmpeg, timeout_for


def test_the_ffmpeg_timeout_scales_with_the_inputs_duration():
    assert timeout_for(1800.0, 60.0) == 1800.0  # up to the reference length: the setting as it is
    assert timeout_for(1800.0, TIMEOUT_REFERENCE_S) == 1800.0
    assert timeout_for(1800.0, 7200.0) == pytest.approx(14400.0)  # a 2-hour input: 8x
    assert timeout_for(0.001, 2.0) == 0.001  # a tiny limit stays tiny (test_hostile_media's hang check)
    for unknown in (None, float("nan"), float("inf")):
        assert timeout_for(1800.0, unknown) == 1800.0


def test_the_steps_hand_the_long_calls_the_scaled_timeout(services, short_video, monkeypatch, tmp_path):
    """The analysis decode and the mix get the limit for the input's duration (here the reference
    length is shrunk to 2 s, so the 6 s sample counts as long)."""
    import musicvid_core.media as media
    from musicvid_core.scoring import score
    from musicvid_core.stages.analyse import features
    from musicvid_core.stages.mix import compose as mix

    monkeypatch.setattr(media, "TIMEOUT_REFERENCE_S", 2.0)
    seen = {}
    real_analyze, real_compose = features.analyze_video, mix.compose

    def analyze(*args, timeout, **kwargs):
        seen["analysis"] = timeout
        return real_analyze(*args, timeout=timeout, **kwargs)

    def compose(*args, timeout, **kwargs):
        seen["mix"] = timeout
        return real_compose(*args, timeout=timeout, **kwargs)

    monkeypatch.setattr(features, "analyze_video", analyze)
    monkeypatch.setattr(mix, "compose", compose)
    score(short_video.path, "calm piano", out=tmp_path / "o.mp4", services=services, music_metrics=False)
    base = services.settings.ffmpeg_timeout_s
    assert seen == {"analysis": pytest.approx(base * 3, rel=0.01), "mix": pytest.approx(base * 3, rel=0.01)}


def test_a_local_path_is_handed_to_ffmpeg_absolute(tmp_path, short_video, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(short_video.path, tmp_path / "a:b.mp4")
    assert str(local_input("a:b.mp4")) == os.path.join(str(tmp_path), "a:b.mp4")
    run_ffmpeg(["-i", local_input("a:b.mp4"), "-t", "0.1", "-f", "null", "-"], timeout=60)
    # strings that name locations are refused as before, a file of that name or not
    shutil.copy(short_video.path, tmp_path / "concat:a:b.mp4")
    for name in ("concat:a:b.mp4", "http://127.0.0.1:9/a.mp4", "subfile:a:b.mp4"):
        with pytest.raises(UnsupportedMedia, match="names a location other than the file"):
            run_ffmpeg(["-i", name, "-f", "null", "-"], timeout=60)


@pytest.mark.slow
def test_the_cli_reads_a_relative_name_with_a_colon(tmp_path, short_video):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICVID_")}
    env.update(MUSICVID_HOME=str(tmp_path / "home"), MUSICVID_USER="cli", MUSICVID_RETRY_TIME_SCALE="0")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "musicvid_core.cli", *args], capture_output=True, text=True,
                              env=env, timeout=600, cwd=tmp_path)

    shutil.copy(short_video.path, tmp_path / "a:b.mp4")
    # --out with a format probes the input before the upload: that probe read "a:b.mp4" as protocol "a"
    proc = cli("run", "a:b.mp4", "-p", "calm piano", "--out", "o.mkv", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o.mkv").stat().st_size > 0
    assert cli("analyze", "a:b.mp4", "-p", "calm piano").returncode == 0
    refused = cli("run", "concat:a:b.mp4", "-p", "calm piano", "-q")
    assert refused.returncode == 2 and "no such file" in refused.stderr


def test_a_task_timeout_hook_gives_a_long_task_its_time():
    import time

    from musicvid_core.asl import ExecutionFailed, StateMachine

    definition = {"StartAt": "Slow", "States": {"Slow": {"Type": "Task", "Resource": "slow", "TimeoutSeconds": 0.2,
                                                         "End": True}}}

    def slow(event):
        time.sleep(0.5)
        return {"done": True}

    with pytest.raises(ExecutionFailed, match="Timeout"):
        StateMachine(definition, lambda _: slow).run({})
    seen = []

    def scaled(state, seconds):
        seen.append((state, seconds))
        return seconds * 10

    assert StateMachine(definition, lambda _: slow, task_timeout=scaled).run({}) == {"done": True}
    assert seen == [("Slow", 0.2)]


def test_the_local_runner_scales_task_timeouts_with_the_input(services, short_video, monkeypatch):
    """Lambda's 900 s per Task would fail a 2-hour input's mix on one machine: the runner scales it
    like an ffmpeg call's limit (the reference length shrunk to 2 s: the 6 s sample is 3x)."""
    import musicvid_core.media as media
    from musicvid_core.workflow import submit as service
    from musicvid_core.workflow.runner import _TaskTimeouts

    monkeypatch.setattr(media, "TIMEOUT_REFERENCE_S", 2.0)
    user = services.settings.user
    job = service.submit_new(services, service.upload_file(services, short_video.path, user), "calm piano", user)
    timeouts = _TaskTimeouts(services, job)
    assert timeouts("Mix", 900) == pytest.approx(2700, rel=0.01)
    assert timeouts("Summarize", 120) == pytest.approx(360, rel=0.01)
    gone = service.submit_new(services, service.upload_file(services, short_video.path, user), "calm piano", user)
    services.objects.local_path(services.objects.key_from_uri(gone.s3_url)).unlink()
    assert _TaskTimeouts(services, gone)("Mix", 900) == 900  # no duration known: the definition's limit
