"""Your own track's title (issue 15): an upload is stored under a server-made key (a uuid), so the
file's name travels beside it as display text (``music.title``: the CLI's ``--music FILE`` and the
batch/notebook helpers send the file's name, the API an optional ``music.title``) into the plan's
MusicChoice.title, the job view, the web app and the summary ``musicvid status`` prints. Never a
path: control characters dropped, at most MAX_TITLE_CHARS. The HTTP face is tests/test_api_music.py."""

from __future__ import annotations

import pytest

from musicvid_core.domain.errors import BadInput
from musicvid_core.domain.options import MAX_TITLE_CHARS, JobOptions, title_of
from musicvid_core.domain.plan import MusicChoice, Plan
from musicvid_core.lab.tracks import make_track
from musicvid_core.media import write_float_wav


def test_a_title_is_one_clean_line_of_bounded_length():
    music = JobOptions.parse({"music": {"kind": "track", "track": "uploads/u/a.wav",
                                        "title": "\u202eMy\r\nsong\x1b]0;pwned\x07 .wav "}}).music
    assert music.title == "My song]0;pwned .wav"
    assert JobOptions.parse({"music": {"kind": "track", "track": "k"}}).given() == {"music": {"kind": "track",
                                                                                             "track": "k"}}
    for bad, words in (({"kind": "track", "track": "k", "title": "y" * (MAX_TITLE_CHARS + 1)}, "at most"),
                       ({"kind": "track", "track": "k", "title": "\x00\u200b"}, "visible"),
                       ({"kind": "track", "track": "k", "title": ["a"]}, "text"),
                       ({"kind": "library", "title": "mine"}, "your own track")):
        with pytest.raises(BadInput) as err:
            JobOptions.parse({"music": bad})
        assert words in str(err.value) and "\n" not in str(err.value)
    long = title_of("x" * 300 + ".mp3")
    assert len(long) == MAX_TITLE_CHARS and long.endswith("\u2026")
    assert title_of("\x01\x02") is None


def test_shown_title_hides_a_stored_name_only():
    own = MusicChoice(kind="track", track="uploads/u/0f3c.wav", title="0f3c.wav")
    assert own.shown_title() == "Your track"
    assert own.model_copy(update={"title": "Night drive.mp3"}).shown_title() == "Night drive.mp3"
    assert MusicChoice(kind="library", track="calm_01").shown_title() == "calm_01"


@pytest.fixture
def song(tmp_path):
    synth = make_track(bpm=120, bars=6, seed=2, sample_rate=22050)
    path = tmp_path / "Night drive (demo).wav"
    write_float_wav(path, synth.audio, synth.sample_rate)
    return path


def test_a_local_files_name_becomes_the_plans_title(services, song, tmp_path):
    """The CLI (scoring.upload_recording), batch and the notebooks upload through track_option; the
    Analyzer (music_source._choose) titles the plan's recording with it, and the summary names it."""
    from musicvid_core.adapters.local.summary import TemplateSummarizer
    from musicvid_core.domain.features import MediaInfo, VideoFeatures
    from musicvid_core.domain.job import Job
    from musicvid_core.scoring import upload_recording
    from musicvid_core.workflow.music_source import _choose

    option = upload_recording(services, {"kind": "track", "track": str(song)}, "tester")
    assert option["title"] == "Night drive (demo).wav" and "Night" not in option["track"]
    job = Job(user_id="tester", s3_url="local://uploads/tester/v.mp4", prompts=["p"],
              options=JobOptions.parse({"music": option}))
    seg = dict(index=0, start=0.0, end=10.0, prompt="p", style="pop", mood="happy", bpm=120, key="C major",
               energy=0.5)
    plan = Plan(duration=10.0, prompt="p", segments=[seg])
    features = VideoFeatures(media=MediaInfo(duration=10.0, width=320, height=180, fps=25, video_codec="h264"))
    choice, _ = _choose(services, job, plan, features, tmp_path)
    assert choice.title == "Night drive (demo).wav" and choice.track == option["track"]
    summary = TemplateSummarizer().summarize(job, plan.model_copy(update={"music": choice}), {})
    assert "Cut from Night drive (demo).wav: your own track." in summary
    # an upload without a title (an older job, or the API without one) is still named by its key
    untitled = job.model_copy(update={"options": JobOptions.parse({"music": {"kind": "track",
                                                                             "track": option["track"]}})})
    choice, _ = _choose(services, untitled, plan, features, tmp_path)
    assert choice.title == option["track"].rsplit("/", 1)[1] and choice.shown_title() == "Your track"
