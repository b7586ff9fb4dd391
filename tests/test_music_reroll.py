"""Per-segment re-roll and requested hits through the service (the Python API) and the CLI."""

import json
import os
import subprocess
import sys

import pytest

from musicvid_core.domain.errors import BadInput
from musicvid_core.domain.job import Status
from musicvid_core.domain.plan import Plan
from musicvid_core.workflow import submit as service


@pytest.fixture(scope="module")
def two_scene_video(media_dir):
    """18 s, two long scenes (a cut at 9.0 s): the planner makes two segments."""
    from musicvid_core.lab.samples import make_video

    return make_video(media_dir / "two_scenes.mp4", (9, 9), size=(160, 90), audio="none")


def _clips(services, job, n):
    return [services.objects.get_bytes(f"{job.prefix}segments/{i:03d}.wav") for i in range(n)]


def _plan(services, job):
    return Plan.parse(services.objects.get_bytes(job.prefix + "plan.json").decode())


@pytest.mark.slow
def test_reroll_one_segment_keeps_the_others_bit_identical(services, two_scene_video):
    uri = service.upload_file(services, two_scene_video.path, "tester")
    job = service.run(services, service.submit_new(services, uri, "acoustic folk", "tester", seed=4,
                                                   options={"music_metrics": True}))
    assert job.status == Status.COMPLETED, job.error
    plan = _plan(services, job)
    assert len(plan.segments) == 2
    before = _clips(services, job, 2)
    music = job.metrics["music"]
    assert music["cuts"] == 1 and 0.0 <= music["cut_beat_hit_rate"] <= 1.0 and music["boundary_clicks"] == 0

    rerolled = service.run(services, service.submit_regenerate(services, job.job_id, None, "tester", segment=1))
    assert rerolled.status == Status.COMPLETED, rerolled.error
    assert rerolled.attempt == 2 and rerolled.prompts == ["acoustic folk"]
    after = _clips(services, rerolled, 2)
    assert after[0] == before[0]  # untouched: the very same bytes
    assert after[1] != before[1]  # re-rolled: new music
    new_plan = _plan(services, rerolled)
    assert new_plan.segments[1].variation == 1 and new_plan.segments[0] == plan.segments[0]

    # A prompt for one segment changes that segment's style only, and hits land in its accents.
    styled = service.run(services, service.submit_regenerate(services, job.job_id, "dark house", "tester",
                                                             segment=0, hits=[3.5]))
    assert styled.status == Status.COMPLETED, styled.error
    styled_plan = _plan(services, styled)
    assert styled_plan.segments[0].style == "electronic" and styled_plan.segments[1].style == "acoustic"
    assert 3.5 in styled_plan.segments[0].accents and styled.prompts == ["acoustic folk"]
    assert _clips(services, styled, 2)[1] == after[1]

    with pytest.raises(BadInput, match="outside the plan"):
        service.submit_regenerate(services, job.job_id, None, "tester", segment=5)
    with pytest.raises(BadInput):
        service.submit_regenerate(services, job.job_id, None, "tester", hits=[-1.0])
    with pytest.raises(BadInput):
        service.submit_regenerate(services, job.job_id, None, "tester", hits=["soon"])


@pytest.mark.slow
def test_same_seed_same_samples_and_hits_on_a_whole_run(services, two_scene_video):
    uri = service.upload_file(services, two_scene_video.path, "tester")
    # (Other seeds, other music: tests/test_music_composer.py, on the generator directly.)
    a = service.run(services, service.submit_new(services, uri, "rock", "tester", seed=1, options={"hits": [13.5]}))
    b = service.run(services, service.submit_new(services, uri, "rock", "tester", seed=1, options={"hits": [13.5]}))
    assert all(j.status == Status.COMPLETED for j in (a, b))
    # The same bytes: every clip, and the scored video itself.
    assert _clips(services, a, 2) == _clips(services, b, 2)
    assert service.output_path(services, a).read_bytes() == service.output_path(services, b).read_bytes()
    c = service.run(services, service.submit_new(services, uri, "rock", "tester", seed=2, options={"hits": [13.5]}))
    assert _clips(services, c, 2) != _clips(services, a, 2)  # another seed, other music
    seg = _plan(services, a).segments[1]
    assert seg.hits == [13.5] and 13.5 in seg.accents
    assert min(abs(b - 13.5) for b in seg.beats) < 1e-4


def test_cli_rejects_bad_segment_and_hit_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICVID_")}
    env.update(MUSICVID_HOME=str(tmp_path / "home"), MUSICVID_USER="cli")
    for args in (["regenerate", "not-a-job", "--segment", "1"],
                 ["regenerate", "00000000-0000-4000-8000-000000000000", "--hit", "soon"]):
        proc = subprocess.run([sys.executable, "-m", "musicvid_core.cli", *args], capture_output=True, text=True,
                              env=env, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    proc = subprocess.run([sys.executable, "-m", "musicvid_core.cli", "regenerate", "--help"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert "--segment" in proc.stdout and "--hit" in proc.stdout


@pytest.mark.slow
def test_cli_json_has_music_metrics_and_regenerates_one_segment(tmp_path, two_scene_video):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICVID_")}
    env.update(MUSICVID_HOME=str(tmp_path / "home"), MUSICVID_USER="cli", MUSICVID_RETRY_TIME_SCALE="0")

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "musicvid_core.cli", *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    first = cli("run", two_scene_video.path, "-p", "rock", "--hit", "13.5", "--json", "--out", tmp_path / "o.mp4")
    music = first["metrics"]["music"]
    assert 0.0 <= music["cut_beat_hit_rate"] <= 1.0 and music["cuts"] == 1
    assert len(music["segments"]) == 2 and first["plan"]["hits"] == [13.5]
    sound = music["sound"]  # metrics.sound's figures of the music bus
    assert {"balance_rms_db", "crest_db", "lra_lu", "width", "mono_loss_db", "contrast_db", "repetition"} <= set(sound)
    assert 0.0 < sound["width"] < 2.0 and 6.0 < sound["crest_db"] < 25.0
    again = cli("regenerate", first["job"]["job_id"], "--segment", "1", "--json")
    assert again["plan"]["segments"][0] == first["plan"]["segments"][0]
    assert again["plan"]["segments"][1]["variation"] == 1 and "music" in again["metrics"]
