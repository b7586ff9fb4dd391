"""The API over HTTP against `musicvid serve` (loopback, free port): the flow, and every refusal."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid

import pytest
import requests
from apihelpers import Live

from musicvid_core.api.auth import mint_token
from musicvid_core.domain import Job, Status
from musicvid_core.metrics import video_packet_hashes
from musicvid_core.workflow import submit as service

ROUTES = [("POST", "/uploads", {"content_type": "video/mp4"}),
          ("POST", "/jobs", {"s3_url": "local://uploads/alice/x.mp4", "prompt": "calm"}),
          ("GET", "/jobs", None),
          ("GET", f"/jobs/{uuid.uuid4()}", None)]


@pytest.fixture
def live(settings):
    server = Live(settings.model_copy(update={"max_input_bytes": 3_000_000, "workers": 2}))
    yield server
    server.close()


def _call(live, method, path, body=None, headers=None):
    return requests.request(method, live.url + path, json=body, headers=headers or {}, timeout=30)


def _error(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "message"} and body["message"]
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    return body


def _forged(token: str) -> str:
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 0xFF
    return f"{head}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"


def _unsigned(token: str) -> str:
    head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).decode().rstrip("=")
    return f"{head}.{token.split('.')[1]}."


BAD_TOKENS = {
    "none": lambda live, tmp: None,
    "not bearer": lambda live, tmp: "Basic YWxpY2U6cHc=",
    "garbage": lambda live, tmp: "Bearer not.a.jwt",
    "bad signature": lambda live, tmp: "Bearer " + _forged(live.token("alice")),
    "unsigned (alg none)": lambda live, tmp: "Bearer " + _unsigned(live.token("alice")),
    "other key": lambda live, tmp: "Bearer " + mint_token(tmp / "elsewhere", "alice"),
    "expired": lambda live, tmp: "Bearer " + live.token("alice", ttl_s=-30),
    "not yet valid": lambda live, tmp: "Bearer " + live.token("alice", nbf=int(time.time()) + 600),
    "wrong audience": lambda live, tmp: "Bearer " + live.token("alice", audience="another-app"),
    "wrong issuer": lambda live, tmp: "Bearer " + live.token("alice", issuer="https://evil.example"),
    "wrong token_use": lambda live, tmp: "Bearer " + live.token("alice", token_use="refresh"),
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_every_route_refuses_unverified_callers(live, tmp_path, kind):
    header = BAD_TOKENS[kind](live, tmp_path)
    for method, path, body in ROUTES:
        r = _call(live, method, path, body, {"Authorization": header} if header else {})
        assert _error(r, 401)["error"] == "unauthorized", (method, path)


def test_bad_input_is_a_clear_4xx(live):
    h = live.headers("alice")
    cases = [
        ("GET", "/jobs/not-a-uuid", None, 400),
        ("GET", "/jobs/12345", None, 400),
        ("GET", "/jobs?limit=0", None, 400),
        ("GET", "/jobs?limit=abc", None, 400),
        ("GET", "/jobs?next=garbage!!", None, 400),
        ("POST", "/uploads", {"content_type": "text/html"}, 400),
        ("POST", "/uploads", {"content_type": "video/mp4", "size": 3_000_001}, 400),  # over the limit
        ("POST", "/uploads", {"content_type": "video/mp4", "filename": "../../x"}, 400),
        ("POST", "/jobs", {"prompt": "calm"}, 400),
        ("POST", "/jobs", {"s3_url": "local://uploads/alice/a.mp4", "job_id": str(uuid.uuid4()), "prompt": "x"}, 400),
        ("POST", "/jobs", {"job_id": "nope", "prompt": "calm"}, 400),
        ("POST", "/jobs", {"s3_url": "local://uploads/alice/a.mp4", "prompt": "   "}, 400),
        ("POST", "/jobs", {"s3_url": "local://uploads/alice/missing.mp4", "prompt": "calm"}, 400),
        ("POST", "/jobs", {"s3_url": "local://uploads/bob/theirs.mp4", "prompt": "calm"}, 400),  # another user's key
        ("POST", "/jobs", {"s3_url": "s3://other-bucket/uploads/alice/a.mp4", "prompt": "calm"}, 400),  # not our store
        ("POST", "/jobs", {"s3_url": "local://uploads/alice/../bob/a.mp4", "prompt": "calm"}, 400),
        ("POST", "/jobs", {"s3_url": "file:///etc/passwd", "prompt": "calm"}, 400),
        ("POST", "/jobs", {"job_id": str(uuid.uuid4()), "prompt": "calm"}, 404),
        ("GET", f"/jobs/{uuid.uuid4()}", None, 404),
        ("GET", "/nowhere", None, 404),
    ]
    for method, path, body, status in cases:
        _error(_call(live, method, path, body, h), status)
    r = requests.post(live.url + "/jobs", data=b"{not json", headers=h)
    _error(r, 400)
    r = requests.post(live.url + "/jobs", data=b"x" * 200_000, headers=h)  # JSON routes read 64 KiB at most
    _error(r, 413)


def test_another_users_job_and_upload_are_refused(live, media_dir, short_video):
    services = live.app.services
    bob_key = service.upload_file(services, short_video.path, "bob")
    bob_job = services.jobs.create(Job(user_id="bob", s3_url=bob_key, prompts=["calm"]))
    alice = live.headers("alice")
    _error(_call(live, "GET", f"/jobs/{bob_job.job_id}", None, alice), 404)
    _error(_call(live, "POST", "/jobs", {"job_id": bob_job.job_id, "prompt": "mine now"}, alice), 404)
    _error(_call(live, "POST", "/jobs", {"s3_url": bob_key, "prompt": "calm"}, alice), 400)
    jobs = _call(live, "GET", "/jobs", None, alice).json()
    assert jobs == {"jobs": [], "next": None}
    assert services.jobs.get(bob_job.job_id).prompts == ["calm"]  # untouched


def test_upload_forms_are_signed_bounded_and_expire(live, tmp_path, short_video):
    h = live.headers("alice")
    form = _call(live, "POST", "/uploads", {"content_type": "video/mp4"}, h).json()
    assert form["s3_url"].startswith("local://uploads/alice/") and form["max_bytes"] == 3_000_000
    fields = form["upload"]["fields"]
    assert fields["x-amz-server-side-encryption"] == "AES256" and fields["Content-Type"] == "video/mp4"

    def post(fields, data):
        return requests.post(form["upload"]["url"], data=fields, files={"file": ("v.mp4", data, "video/mp4")})

    _error(post({**fields, "key": "uploads/alice/other.mp4"}, b"x"), 400)  # key not the signed one
    _error(post({**fields, "key": "uploads/bob/x.mp4"}, b"x"), 400)
    _error(post({**fields, "x-musicvid-signature": "0" * 64}, b"x"), 401)
    _error(post({k: v for k, v in fields.items() if k != "x-amz-server-side-encryption"}, b"x"), 400)
    _error(post(fields, b"\0" * 3_000_001), 413)  # over the signed limit
    assert not live.app.services.objects.exists(live.app.services.objects.key_from_uri(form["s3_url"]))
    assert post(fields, short_video.path.read_bytes()).status_code == 204

    expired = live.app.links.upload("uploads/alice/late.mp4", "video/mp4", 1000, expires_s=-1)
    r = requests.post(expired["url"], data=expired["fields"], files={"file": ("v.mp4", b"x", "video/mp4")})
    _error(r, 401)


def test_download_links_are_signed(live, short_video):
    services = live.app.services
    uri = service.upload_file(services, short_video.path, "alice")
    key = services.objects.key_from_uri(uri)
    url = live.app.links.download(key, 60)
    assert requests.get(url).content == short_video.path.read_bytes()
    _error(requests.get(url.replace("signature=", "signature=0")), 401)
    _error(requests.get(url.replace(key, key.replace("alice", "bob"))), 401)
    _error(requests.get(live.app.links.download(key, -1)), 401)


def test_pagination_walks_every_job_once_newest_first(live):
    services = live.app.services
    made = [services.jobs.create(Job(user_id="alice", s3_url="local://uploads/alice/x.mp4", prompts=[f"p{i}"]))
            for i in range(7)]
    services.jobs.create(Job(user_id="bob", s3_url="local://uploads/bob/x.mp4", prompts=["b"]))
    h = live.headers("alice")
    seen, token, pages = [], None, 0
    while True:
        q = "?limit=3" + (f"&next={token}" if token else "")
        page = _call(live, "GET", "/jobs" + q, None, h).json()
        seen += page["jobs"]
        pages += 1
        token = page["next"]
        if token is None:
            break
    assert pages == 3
    assert [j["job_id"] for j in seen] == [j.job_id for j in sorted(made, key=lambda j: j.created_at, reverse=True)]
    assert all(set(j) == {"job_id", "status", "stage", "operation_type", "prompts", "created_at", "updated_at",
                          "error", "summary", "final_url", "preview", "stem_urls", "input_url", "plan"}
               for j in seen)  # no user, object or internal ids
    assert all(j["plan"] is None and j["input_url"] is None for j in seen)  # a page is one store read
    first = _call(live, "GET", "/jobs?limit=3", None, h).json()["next"]
    _error(_call(live, "GET", f"/jobs?limit=3&next={first}", None, live.headers("bob")), 400)  # foreign token
    _error(_call(live, "GET", f"/jobs?limit=3&next={first[:-2]}xx", None, h), 400)  # tampered


def test_cors_preflight(live):
    r = requests.options(live.url + "/jobs", headers={"Origin": "http://localhost:3000",
                                                      "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]


@pytest.mark.slow
def test_flow_to_completed_then_regenerate(live, short_video, tmp_path):
    s3_url = live.upload("alice", short_video.path)
    first = live.submit("alice", s3_url=s3_url, prompt="warm acoustic, slow build", client_token="req-1")
    assert first["status"] == "SCHEDULED"
    again = live.submit("alice", s3_url=s3_url, prompt="warm acoustic, slow build", client_token="req-1")
    assert again["job_id"] == first["job_id"]  # idempotent on the client token
    job = live.wait("alice", first["job_id"])
    assert job["status"] == "COMPLETED", job["error"]
    assert job["operation_type"] == "NEW" and job["stage"] == "done" and job["summary"]
    out = tmp_path / "out.mp4"
    out.write_bytes(requests.get(job["final_url"]).content)
    assert video_packet_hashes(out) == video_packet_hashes(short_video.path)  # the video stream is copied

    regen = live.submit("alice", job_id=first["job_id"], prompt="same but darker", client_token="req-2")
    assert regen == {"job_id": first["job_id"], "status": "SCHEDULED"}
    _error(_call(live, "POST", "/jobs", {"job_id": first["job_id"], "prompt": "third"}, live.headers("alice")), 409)
    job2 = live.wait("alice", first["job_id"])
    assert job2["status"] == "COMPLETED", job2["error"]
    assert job2["operation_type"] == "REGENERATE"
    assert job2["prompts"] == ["warm acoustic, slow build", "same but darker"]
    assert job2["final_url"] != job["final_url"]
    assert requests.get(job["final_url"]).status_code == 404  # the superseded attempt is gone
    out2 = tmp_path / "out2.mp4"
    out2.write_bytes(requests.get(job2["final_url"]).content)
    assert video_packet_hashes(out2) == video_packet_hashes(short_video.path)
    assert live.app.services.jobs.get(first["job_id"]).status == Status.COMPLETED


def _cli_env(home):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICVID_")}
    env.update(MUSICVID_HOME=str(home), MUSICVID_RETRY_TIME_SCALE="0")
    return env


def test_cli_token_and_serve_as_processes(tmp_path):
    import re
    import socket
    import subprocess
    import sys

    from musicvid_core.api.auth import verifier_for
    from musicvid_core.settings import Settings

    env = _cli_env(tmp_path / "home")
    cli = [sys.executable, "-m", "musicvid_core.cli"]
    token = subprocess.run([*cli, "token", "--user", "alice"], env=env, capture_output=True, text=True, timeout=60)
    assert token.returncode == 0, token.stderr
    claims = verifier_for(Settings(home=tmp_path / "home")).verify("Bearer " + token.stdout.strip())
    assert claims["sub"] == "alice" and claims["token_use"] == "id"
    bad = subprocess.run([*cli, "token", "--user", "a b"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

    server = subprocess.Popen([*cli, "serve", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
        r = requests.get(f"http://127.0.0.1:{port}/jobs", timeout=10)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        r = requests.get(f"http://127.0.0.1:{port}/jobs", headers={"Authorization": "Bearer " + token.stdout.strip()})
        assert r.json() == {"jobs": [], "next": None}
        with socket.socket() as taken:  # a port in use is a one-line error, exit 2
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = subprocess.run([*cli, "serve", "--port", str(taken.getsockname()[1])], env=env,
                                  capture_output=True, text=True, timeout=60)
        assert busy.returncode == 2 and "cannot listen" in busy.stderr and "Traceback" not in busy.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_worker_pool_is_bounded(services, monkeypatch):
    import threading

    from musicvid_core.workflow import runner
    from musicvid_core.workflow.pool import PooledLauncher

    gate, running, peak, lock = threading.Event(), [], [0], threading.Lock()

    def fake_run(services, job_id, on_event=None):
        with lock:
            running.append(job_id)
            peak[0] = max(peak[0], len(running))
        gate.wait(10)
        with lock:
            running.remove(job_id)

    monkeypatch.setattr(runner, "run_job", fake_run)
    pool = PooledLauncher(services, workers=2)
    jobs = [Job(user_id="u", s3_url="local://uploads/u/x.mp4", prompts=["p"]) for _ in range(5)]
    for job in jobs:
        pool.start(job)
    deadline = time.monotonic() + 5
    while len(running) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(running) == 2 and len(pool.running()) == 5  # two render, three wait in the queue
    gate.set()
    pool.wait(timeout=10)
    assert peak[0] == 2 and pool.running() == []
    pool.shutdown()


def test_segment_reroll_and_hits_through_the_api(live, short_video, monkeypatch):
    services = live.app.services
    done = service.run(services, service.submit_new(services, service.upload_file(services, short_video.path, "alice"),
                                                    "calm", "alice"))
    assert done.status == Status.COMPLETED, done.error
    started = []
    monkeypatch.setattr(live.app.api, "launcher", type("L", (), {"start": lambda self, job: started.append(job)})())
    h = live.headers("alice")
    _error(_call(live, "POST", "/jobs", {"job_id": done.job_id, "prompt": "dark", "segment": 99}, h), 400)
    _error(_call(live, "POST", "/jobs", {"s3_url": done.s3_url, "prompt": "dark", "segment": 0}, h), 400)
    _error(_call(live, "POST", "/jobs", {"job_id": done.job_id, "prompt": "dark", "hits": ["soon"]}, h), 400)
    r = _call(live, "POST", "/jobs", {"job_id": done.job_id, "prompt": "dark", "segment": 0, "hits": [1.5]}, h)
    assert r.status_code == 202, r.text
    job = services.jobs.get(done.job_id)
    assert job.reroll.segment == 0 and job.reroll.attempt == done.attempt and job.options.hits == [1.5] and started


@pytest.mark.slow
def test_options_plan_and_links_through_the_api(live, short_video, monkeypatch):
    """Submit takes the CLI's render options; the job view shows the public plan, the preview flag
    and links to the stems and to the caller's own input; a regeneration may leave the prompt out."""
    services = live.app.services
    h = live.headers("alice")
    s3_url = live.upload("alice", short_video.path)
    bad = [{"loudness": "tv"}, {"target_lufs": -50}, {"true_peak_dbtp": 1}, {"source_music": "mute"},
           {"preview": "yes"}, {"stems": 1}, {"hits": [-1]}]
    for extra in bad:
        _error(_call(live, "POST", "/jobs", {"s3_url": s3_url, "prompt": "calm", **extra}, h), 400)
    _error(_call(live, "POST", "/jobs", {"s3_url": s3_url}, h), 400)  # a new job needs a prompt
    _error(_call(live, "POST", "/jobs", {"s3_url": None, "job_id": None, "prompt": "calm"}, h), 400)
    r = _call(live, "POST", "/jobs", {"s3_url": s3_url, "prompt": "calm piano", "loudness": "broadcast",
                                      "true_peak_dbtp": -2, "source_music": "replace", "preview": True,
                                      "stems": True, "hits": [4.5]}, h)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    options = services.jobs.get(job_id).options
    assert (options.target_lufs, options.true_peak_dbtp, options.source_music, options.preview, options.stems,
            options.hits) == (-23.0, -2.0, "replace", True, True, [4.5])
    job = live.wait("alice", job_id)
    assert job["status"] == "COMPLETED", job["error"]
    assert job["preview"] is True and "output_preview" in job["final_url"]
    assert sorted(job["stem_urls"]) == ["master", "music", "original"]
    assert requests.get(job["stem_urls"]["music"]).headers["Content-Type"] == "audio/wav"
    assert requests.get(job["input_url"]).content == short_video.path.read_bytes()
    video = requests.get(job["final_url"], headers={"Range": "bytes=0-99"})  # a player seeks with Range
    assert video.status_code == 206 and len(video.content) == 100 and video.headers["Content-Type"] == "video/mp4"
    plan = job["plan"]
    assert plan["cuts"] == pytest.approx([2.0, 4.0], abs=0.05) and plan["hits"] == [4.5]
    assert plan["duration"] == pytest.approx(6.0, abs=0.05) and isinstance(plan["speech"], list)
    seg = plan["segments"]
    assert seg[0]["start"] == 0 and seg[-1]["end"] == plan["duration"] and {"style", "bpm", "key"} <= set(seg[0])
    assert set(seg[0]) == {"index", "start", "end", "style", "mood", "bpm", "key", "energy", "hits"}

    # Regenerate without a prompt: the full render of the same prompt; options not given are kept.
    started = []
    monkeypatch.setattr(live.app.api, "launcher", type("L", (), {"start": lambda self, job: started.append(job)})())
    r = _call(live, "POST", "/jobs", {"job_id": job_id, "preview": False}, h)
    assert r.status_code == 202, r.text
    again = services.jobs.get(job_id)
    assert again.prompts == ["calm piano"] and again.options.preview is False and again.options.stems is True
    assert again.options.target_lufs == -23.0 and started
    view = _call(live, "GET", f"/jobs/{job_id}", None, h).json()
    assert view["final_url"] is None and view["stem_urls"] == {} and view["plan"] == plan  # the last plan, still


def test_schema_valid_values_the_fuzzer_found_are_answered_as_the_schema_says(live):
    h = live.headers("alice")
    r = _call(live, "POST", "/uploads", {"content_type": "video/mp4", "size": 61.0}, h)  # an integer to JSON Schema
    assert r.status_code == 201, r.text
    _error(_call(live, "POST", "/uploads", {"content_type": "video/mp4", "size": 61.5}, h), 400)
    _error(_call(live, "POST", "/uploads", {"content_type": "video/mp4", "size": True}, h), 400)
    from musicvid_core.api.openapi import openapi

    doc = openapi()
    submit = doc["components"]["schemas"]["SubmitRequest"]
    assert submit["oneOf"] == [{"required": ["s3_url", "prompt"]}, {"required": ["job_id"]}]
    assert submit["properties"]["s3_url"]["type"] == "string"  # not nullable: null is not "absent"
    pattern = next(p for p in doc["paths"]["/jobs"]["get"]["parameters"] if p["name"] == "next")["schema"]["pattern"]
    for i in range(2):
        live.app.services.jobs.create(Job(user_id="alice", s3_url="local://uploads/alice/x.mp4", prompts=[f"p{i}"]))
    token = _call(live, "GET", "/jobs?limit=1", None, h).json()["next"]
    assert re.fullmatch(pattern, token)  # the schema allows the tokens the server makes ...
    assert not re.fullmatch(pattern, "garbage!!") and not re.fullmatch(pattern, "abc.def")  # ... and not these
