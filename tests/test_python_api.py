"""The public Python API (musicvid_core.score): the object `musicvid run --json` prints, moviepy clips
in and out, and bad input as one domain error with a one-line message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from musicvid_core.cli import main
from musicvid_core.domain import errors
from musicvid_core.domain.errors import BadInput, MusicVidError, UnsupportedMedia
from musicvid_core.domain.job import Job, JobError, Status
from musicvid_core.stages.analyse.probe import probe


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory):
    """3 s, 160x90, 25 fps, two scenes (a cut at 2 s), quiet tone."""
    from musicvid_core.lab.samples import make_video

    return make_video(tmp_path_factory.mktemp("api") / "tiny.mp4", (2.0, 1.0), size=(160, 90), audio="tone").path


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text
    return text


def test_import_stays_light_and_score_is_there_on_first_use():
    code = ("import sys, musicvid_core; light = 'numpy' not in sys.modules and 'musicvid_core.scoring' not in "
            "sys.modules; from musicvid_core import ScoreResult, score; print(light, callable(score), "
            "ScoreResult.__module__, 'moviepy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "musicvid_core.scoring", "False"]
    import musicvid_core

    assert {"score", "ScoreResult"} <= set(dir(musicvid_core))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        musicvid_core.nope  # noqa: B018


def test_a_failed_job_raises_the_error_its_record_names():
    from musicvid_core.scoring import ScoreResult, failure

    job = Job(user_id="u", s3_url="local://uploads/u/x.mp4", prompts=["p"], status=Status.FAILED,
              error=JobError(type="MixError", message="ffmpeg said\nno", stage="mix"))
    exc = failure(job)
    assert type(exc) is errors.MixError and exc.context["job_id"] == job.job_id
    assert _one_line(exc) == f"job {job.job_id} failed: MixError at mix: ffmpeg said no"
    odd = job.model_copy(update={"error": JobError(type="States.Timeout", message="late", stage="mix")})
    assert type(failure(odd)) is MusicVidError  # a name outside the tree: the root, never AttributeError
    result = ScoreResult(job=job, output=None)
    assert not result.ok and result.plan is None and result.as_dict()["job"]["status"] == "FAILED"
    with pytest.raises(errors.MixError):
        result.raise_for_failure()


def test_bad_input_is_one_domain_error_before_anything_runs(services, tmp_path, tiny_video):
    from musicvid_core import score

    cases = [((tmp_path / "missing.mp4", "calm"), {}, "no such file"),
             ((tiny_video, "   "), {}, "prompt is empty"),
             ((tiny_video, "calm"), {"loudness": "tv"}, "unknown loudness preset"),
             ((tiny_video, "calm"), {"hits": [-1]}, "hit must be a number of seconds >= 0"),
             ((42, "calm"), {}, "a file path or a moviepy clip")]
    for args, kwargs, message in cases:
        with pytest.raises(BadInput, match=message) as exc:
            score(*args, services=services, **kwargs)
        _one_line(exc.value)
    assert services.jobs.list_for_user(services.settings.user, limit=10)[0] == []  # no job was made


@pytest.mark.slow
def test_a_file_that_is_not_a_video_raises_unsupported_media(services, tmp_path):
    from musicvid_core import score

    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(UnsupportedMedia) as exc:
        score(text, "calm", services=services)
    assert "failed: UnsupportedMedia at" in _one_line(exc.value)
    failed = score(text, "calm", services=services, check=False)  # the CLI's way: the failed job back
    assert failed.job.status == Status.FAILED and failed.output is None and not failed.ok


@pytest.mark.slow
def test_score_returns_what_musicvid_run_json_prints(settings, tmp_path, tiny_video, capsys):
    from musicvid_core import score

    result = score(tiny_video, "calm piano", seed=3, out=tmp_path / "api.mp4", stems=tmp_path / "stems")
    assert result.ok and result.output == tmp_path / "api.mp4" and result.output.is_file()
    assert sorted(result.stems) == ["master", "music", "original", "plan"]
    assert all(p.is_file() for p in result.stems.values())
    assert result.plan.duration == pytest.approx(3.0, abs=1e-3) and result.plan.seed == 3
    assert json.loads(result.to_json()) == result.as_dict()

    with pytest.raises(SystemExit) as exc:
        main(["run", str(tiny_video), "--prompt", "calm piano", "--seed", "3", "--out", str(tmp_path / "cli.mp4"),
              "--json", "--quiet"])
    assert exc.value.code == 0
    printed = json.loads(capsys.readouterr().out)
    mine = result.as_dict()
    assert printed.keys() == mine.keys() and printed["plan"] == mine["plan"]
    assert printed["job"].keys() == mine["job"].keys() and printed["output"] == str(tmp_path / "cli.mp4")
    assert printed["metrics"].keys() - {"stems"} == mine["metrics"].keys() - {"stems"}  # stems kept by the API only
    assert printed["metrics"]["music"] == mine["metrics"]["music"]  # same input and seed: same music
    for key in ("integrated_lufs", "true_peak_dbtp", "target_lufs"):
        assert printed["metrics"][key] == pytest.approx(mine["metrics"][key], abs=0.05)


@pytest.mark.slow
def test_a_moviepy_composition_is_scored_and_opens_as_a_clip(services, tmp_path):
    moviepy = pytest.importorskip("moviepy")
    from musicvid_core import score

    edit = moviepy.concatenate_videoclips([moviepy.ColorClip((160, 90), (200, 40, 40), duration=1.5),
                                           moviepy.ColorClip((160, 90), (40, 40, 200), duration=1.5)])
    with pytest.raises(BadInput, match=r"no frame rate: give it one \(clip.with_fps"):
        score(edit, "calm piano", services=services)
    result = score(edit.with_fps(25), "calm piano", services=services, music_metrics=False)
    assert result.ok and result.output.suffix == ".mp4"  # the stored output: a clip has no folder of its own
    assert probe(result.output).duration == pytest.approx(edit.duration, abs=0.041)  # one frame at 25 fps
    assert result.metrics["integrated_lufs"] < 0 and "music" not in result.metrics
    with result.clip() as scored:
        assert scored.size == [160, 90] and scored.fps == 25 and scored.audio is not None
        assert scored.duration == pytest.approx(3.0, abs=0.05)


@pytest.mark.slow
def test_the_lab_edit_cuts_spans_of_a_video(tiny_video):
    pytest.importorskip("moviepy")
    from musicvid_core.lab import edit

    clip = edit.cut(tiny_video, [[2.0, 3.0], [0.0, 1.0]])
    assert clip.duration == pytest.approx(2.0, abs=0.05) and clip.fps == 25 and clip.audio is not None
    for spans, message in (([[2.0, 9.0]], "outside the video"), ([[1.0, 1.0]], "outside the video or empty"),
                           ([["a", 1]], r"\[start, end\] in seconds"), ([], "at least one")):
        with pytest.raises(BadInput, match=message):
            edit.cut(tiny_video, spans)
