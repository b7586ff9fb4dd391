"""The music source over HTTP (issues 15 and 19): an audio upload through the same presigned POST,
``music`` on submit and regenerate (procedural, library, your track), every refusal one clear 400,
and the plan's recording in the job view. Jobs are not run here (a recording launcher): the pipeline
side is tests/test_track_*.py and the browser test."""

from __future__ import annotations

import json

import pytest
import requests
from apihelpers import Live

from musicvid_core.domain.job import JobError, Status
from musicvid_core.domain.plan import MusicChoice, Plan, Segment


@pytest.fixture
def live(settings, monkeypatch):
    server = Live(settings.model_copy(update={"max_input_bytes": 3_000_000, "workers": 1}))
    started = []
    monkeypatch.setattr(server.app.api, "launcher", type("L", (), {"start": lambda self, job: started.append(job)})())
    server.started = started
    yield server
    server.close()


def _post(live, path, body, user="alice"):
    return requests.post(live.url + path, json=body, headers=live.headers(user), timeout=30)


def _refused(r, words: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "bad_input" and "\n" not in body["message"] and words in body["message"], body


@pytest.fixture
def uploads(live, tmp_path):
    """alice's video and audio uploads, and bob's audio upload (tiny files: nothing decodes them here)."""
    video, audio = tmp_path / "v.mp4", tmp_path / "a.mp3"
    video.write_bytes(b"\x00" * 1000)
    audio.write_bytes(b"ID3" + b"\x00" * 1000)
    return {"video": live.upload("alice", video), "audio": live.upload("alice", audio, "audio/mpeg"),
            "bobs": live.upload("bob", audio, "audio/mpeg")}


@pytest.mark.parametrize("ctype,ext", [("audio/mpeg", ".mp3"), ("audio/wav", ".wav"), ("audio/x-wav", ".wav"),
                                       ("audio/flac", ".flac"), ("audio/mp4", ".m4a"), ("audio/x-m4a", ".m4a"),
                                       ("audio/aac", ".aac"), ("audio/ogg", ".ogg"), ("audio/opus", ".opus"),
                                       ("audio/webm", ".weba"), ("video/webm", ".webm"), ("video/mp4", ".mp4")])
def test_an_upload_form_for_audio_gets_an_audio_key(live, ctype, ext):
    r = _post(live, "/uploads", {"content_type": ctype, "size": 1234})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["s3_url"].startswith("local://uploads/alice/") and body["s3_url"].endswith(ext)
    policy = live.app.links.check_upload(body["upload"]["fields"])
    assert policy["content_type"] == ctype  # the signed form holds the file to its declared type


@pytest.mark.parametrize("ctype", ["audio/midi", "audio/x-foo", "audio/", "Audio/mpeg", "text/plain", "image/png"])
def test_other_types_are_refused(live, ctype):
    _refused(_post(live, "/uploads", {"content_type": ctype}), "content_type")


def test_submit_takes_each_music_source(live, uploads):
    jobs = live.app.services.jobs
    r = _post(live, "/jobs", {"s3_url": uploads["video"], "prompt": "warm", "music": {"source": "track",
                                                                                    "s3_url": uploads["audio"]}})
    assert r.status_code == 202, r.text
    music = jobs.get(r.json()["job_id"]).options.music
    assert (music.kind, music.track) == ("track", uploads["audio"].removeprefix("local://"))
    r = _post(live, "/jobs", {"s3_url": uploads["video"], "prompt": "calm", "music": {"source": "library"}})
    assert r.status_code == 202 and jobs.get(r.json()["job_id"]).options.music.kind == "library"
    r = _post(live, "/jobs", {"s3_url": uploads["video"], "prompt": "calm",
                              "music": {"source": "library", "track": "calm_01"}})
    music = jobs.get(r.json()["job_id"]).options.music
    assert (music.kind, music.track) == ("library", "calm_01")
    r = _post(live, "/jobs", {"s3_url": uploads["video"], "prompt": "calm", "music": {"source": "procedural"}})
    assert jobs.get(r.json()["job_id"]).options.music.kind == "procedural"
    r = _post(live, "/jobs", {"s3_url": uploads["video"], "prompt": "calm", "music": None})
    assert r.status_code == 202 and jobs.get(r.json()["job_id"]).options.music is None
    assert len(live.started) == 5


def test_every_wrong_music_is_one_clear_400(live, uploads):
    video, audio = uploads["video"], uploads["audio"]
    cases = [
        ({"s3_url": audio}, "audio upload"),  # the audio as the video
        ({"s3_url": video, "music": {"source": "track", "s3_url": video}}, "audio upload"),  # the video as music
        ({"s3_url": video, "music": {"source": "track", "s3_url": uploads["bobs"]}}, "your own uploads"),
        ({"s3_url": video, "music": {"source": "track", "s3_url": "local://uploads/alice/missing.mp3"}}, "not exist"),
        ({"s3_url": video, "music": {"source": "track", "s3_url": "s3://elsewhere/uploads/alice/a.mp3"}}, "local"),
        ({"s3_url": video, "music": {"source": "track"}}, "needs s3_url"),
        ({"s3_url": video, "music": {"source": "track", "s3_url": audio, "track": "calm_01"}}, "needs s3_url"),
        ({"s3_url": video, "music": {"source": "library", "s3_url": audio}}, "not s3_url"),
        ({"s3_url": video, "music": {"source": "procedural", "track": "calm_01"}}, "neither"),
        ({"s3_url": video, "music": {"source": "radio"}}, "music.source"),
        ({"s3_url": video, "music": {"source": "library", "track": "../../etc/passwd"}}, "music.track"),
        ({"s3_url": video, "music": {"source": "library", "volume": 3}}, "music.volume"),
        ({"s3_url": video, "music": "library"}, "music"),
    ]
    for body, words in cases:
        _refused(_post(live, "/jobs", {"prompt": "calm", **body}), words)
    assert live.started == [] and live.app.services.jobs.list_for_user("alice", limit=10)[0] == []


def test_regenerate_keeps_the_music_unless_given(live, uploads):
    jobs = live.app.services.jobs
    r = _post(live, "/jobs", {"s3_url": uploads["video"], "prompt": "warm",
                              "music": {"source": "track", "s3_url": uploads["audio"]}})
    job_id = r.json()["job_id"]
    jobs.transition(job_id, Status.PROCESSING)
    jobs.transition(job_id, Status.FAILED, error=JobError(type="X", message="x", stage="ANALYZE"))
    assert _post(live, "/jobs", {"job_id": job_id, "prompt": "warmer"}).status_code == 202
    assert jobs.get(job_id).options.music.kind == "track"  # kept
    jobs.transition(job_id, Status.PROCESSING)
    jobs.transition(job_id, Status.FAILED, error=JobError(type="X", message="x", stage="ANALYZE"))
    _refused(_post(live, "/jobs", {"job_id": job_id, "music": {"source": "track", "s3_url": uploads["video"]}}),
             "audio upload")
    assert _post(live, "/jobs", {"job_id": job_id, "music": {"source": "library"}}).status_code == 202
    assert jobs.get(job_id).options.music.kind == "library"  # replaced


def test_the_job_view_shows_the_plans_recording_and_never_its_key(live, uploads):
    services = live.app.services
    r = _post(live, "/jobs", {"s3_url": uploads["video"], "prompt": "warm",
                              "music": {"source": "track", "s3_url": uploads["audio"]}})
    job = services.jobs.get(r.json()["job_id"])
    key = uploads["audio"].removeprefix("local://")
    seg = Segment(index=0, start=0.0, end=6.0, prompt="warm", style="lofi", mood="calm", bpm=92.0, key="D minor",
                  energy=0.5)
    plan = Plan(duration=6.0, prompt="warm", segments=[seg],
                music=MusicChoice(kind="track", track=key, title=key.rsplit("/", 1)[1], sha256="ab" * 32,
                                  why="cut to 6 s on 2 bars", bpm=92.0, key="D minor"))  # the title: a stored name
    url = services.objects.put_bytes(job.layout.plan, plan.model_dump_json().encode(), "application/json")
    services.jobs.update(job.job_id, {"plan_url": url})
    view = requests.get(f"{live.url}/jobs/{job.job_id}", headers=live.headers("alice"), timeout=30).json()
    assert view["plan"]["music"] == {"kind": "track", "title": "Your track", "why": "cut to 6 s on 2 bars",
                                     "bpm": 92.0, "key": "D minor", "free_time": False}
    assert key not in json.dumps(view) and "ab" * 32 not in json.dumps(view)
    plan = plan.model_copy(update={"music": MusicChoice(kind="library", track="calm_01", title="Calm 01",
                                                        why="calm, 90 BPM: the prompt's mood", bpm=None, key="",
                                                        free_time=True, score=0.8)})
    services.objects.put_bytes(job.layout.plan, plan.model_dump_json().encode(), "application/json")
    view = requests.get(f"{live.url}/jobs/{job.job_id}", headers=live.headers("alice"), timeout=30).json()
    assert view["plan"]["music"]["title"] == "Calm 01" and view["plan"]["music"]["bpm"] is None
    plan = plan.model_copy(update={"music": None})
    services.objects.put_bytes(job.layout.plan, plan.model_dump_json().encode(), "application/json")
    view = requests.get(f"{live.url}/jobs/{job.job_id}", headers=live.headers("alice"), timeout=30).json()
    assert view["plan"]["music"] is None  # composed


def test_your_tracks_title_is_display_text_from_the_request(live, uploads):
    """``music.title`` (the web app sends the file's name): control characters dropped, at most 200
    characters, only with source track; the plan's recording carries it into the job view."""
    jobs, services = live.app.services.jobs, live.app.services
    music = {"source": "track", "s3_url": uploads["audio"], "title": " My\tSong\u202e\x1b[2J (final).mp3\n"}
    r = _post(live, "/jobs", {"s3_url": uploads["video"], "prompt": "warm", "music": music})
    assert r.status_code == 202, r.text
    job = jobs.get(r.json()["job_id"])
    assert job.options.music.title == "My Song[2J (final).mp3"  # one line, nothing a terminal obeys
    for bad, words in ((("x" * 201), "music.title"), ("\x00\x07 \u200b", "visible characters"), (7, "music.title"),
                       ("", "music.title")):
        _refused(_post(live, "/jobs", {"s3_url": uploads["video"], "prompt": "warm",
                                       "music": {**music, "title": bad}}), words)
    for source in ({"source": "library"}, {"source": "procedural"}):
        _refused(_post(live, "/jobs", {"s3_url": uploads["video"], "prompt": "warm",
                                       "music": {**source, "title": "mine"}}), "title")
    # what the Analyzer makes of it (workflow/music_source.py: MusicChoice.title), in the job view
    key = uploads["audio"].removeprefix("local://")
    seg = Segment(index=0, start=0.0, end=6.0, prompt="warm", style="lofi", mood="calm", bpm=92.0, key="D minor",
                  energy=0.5)
    plan = Plan(duration=6.0, prompt="warm", segments=[seg],
                music=MusicChoice(kind="track", track=key, title=job.options.music.title, why="your own track"))
    url = services.objects.put_bytes(job.layout.plan, plan.model_dump_json().encode(), "application/json")
    services.jobs.update(job.job_id, {"plan_url": url})
    view = requests.get(f"{live.url}/jobs/{job.job_id}", headers=live.headers("alice"), timeout=30).json()
    assert view["plan"]["music"]["title"] == "My Song[2J (final).mp3" and key not in json.dumps(view)
