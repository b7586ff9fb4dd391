"""The Chalice app through chalice.test.Client, on moto's S3, DynamoDB and Step Functions.

The executions the app starts on (moto's) Step Functions are driven by the same ASL definition
with our interpreter, whose Tasks invoke the app's own step Lambdas through the test client: the
whole deployed path except API Gateway and Lambda themselves.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
import requests

pytest.importorskip("chalice")
from chalice.test import Client

from musicvid_core.adapters.aws.dynamodb import create_table
from musicvid_core.api.auth import mint_token
from musicvid_core.asl import StateMachine, load_definition
from musicvid_core.metrics import video_packet_hashes
from musicvid_core.workflow.runner import SUBSTITUTIONS, definition_path

# chalice.test warns that it does not run the Cognito authorizer: exactly why the app verifies tokens itself.
pytestmark = pytest.mark.filterwarnings("ignore:CognitoUserPoolAuthorizer:UserWarning")
from tests.awsstack import load_chalice_app  # noqa: E402

APP_DIR = Path(__file__).resolve().parents[1] / "chalice_app"
BUCKET, TABLE = "musicvid-media-test", "musicvid-jobs-test"
FUNCTIONS = {"Coordinator": "coordinator", "Analyzer": "analyzer", "AudioGenerator": "audio_generator",
             "AVOperator": "av_operator", "FailureHandler": "failure_handler"}


def _load_app():
    return load_chalice_app("musicvid_chalice_app")


@pytest.fixture
def stack(settings, aws, monkeypatch):
    """moto resources + env as the deployed stack sets them; yields (app module, sfn client, arn)."""
    aws.client("s3").create_bucket(Bucket=BUCKET)
    create_table(aws.client("dynamodb"), TABLE)
    sfn = aws.client("stepfunctions")
    role = aws.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    arn = sfn.create_state_machine(name="musicvid", roleArn=role,
                                   definition=definition_path().read_text())["stateMachineArn"]
    for key, value in {"OBJECT_STORE": "s3", "JOB_STORE": "dynamodb", "LAUNCHER": "stepfunctions",
                       "BUCKET": BUCKET, "TABLE": TABLE, "STATE_MACHINE_ARN": arn}.items():
        monkeypatch.setenv(f"MUSICVID_{key}", value)
    module = _load_app()
    from chalicelib import wiring

    wiring.reset()
    yield module, sfn, arn
    wiring.reset()


def _h(settings, user="alice", **kw):
    return {"Authorization": f"Bearer {mint_token(settings.home, user, **kw)}", "Content-Type": "application/json"}


def _run_execution(client, sfn, arn, name):
    """Do what Step Functions would: run the definition on the execution's input, each Task
    invoking the app's step Lambda."""
    ex = next(e for e in sfn.list_executions(stateMachineArn=arn)["executions"] if e["name"] == name)
    payload = json.loads(sfn.describe_execution(executionArn=ex["executionArn"])["input"])

    def resolve(resource):
        name = FUNCTIONS[resource.removeprefix("musicvid:")]
        return lambda event: client.lambda_.invoke(name, event).payload

    StateMachine(load_definition(definition_path(), SUBSTITUTIONS), resolve, time_scale=0).run(payload, name=name)


def test_routes_refuse_unverified_and_foreign_requests(stack, settings, tmp_path):
    module, _, _ = stack
    with Client(module.app, project_dir=str(APP_DIR)) as client:
        job_path = f"/jobs/{uuid.uuid4()}"
        bad = {"no token": {}, "expired": _h(settings, ttl_s=-5), "wrong audience": _h(settings, audience="x"),
               "other key": {"Authorization": "Bearer " + mint_token(tmp_path / "k2", "alice")}}
        for why, headers in bad.items():
            for method, path, body in (("post", "/uploads", {"content_type": "video/mp4"}),
                                       ("post", "/jobs", {"s3_url": f"s3://{BUCKET}/uploads/alice/x.mp4", "prompt": "a"}),
                                       ("get", "/jobs", None), ("get", job_path, None)):
                r = getattr(client.http, method)(path, headers={"Content-Type": "application/json", **headers},
                                                 **({"body": json.dumps(body)} if body else {}))
                assert r.status_code == 401, (why, path, r.body)
                assert json.loads(r.body)["error"] == "unauthorized"
                assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"  # errors carry CORS
        h = _h(settings)
        for body, status in (({"s3_url": "s3://other-bucket/uploads/alice/x.mp4", "prompt": "a"}, 400),
                             ({"s3_url": f"s3://{BUCKET}/uploads/bob/x.mp4", "prompt": "a"}, 400),
                             ({"s3_url": f"s3://{BUCKET}/uploads/alice/missing.mp4", "prompt": "a"}, 400),
                             ({"job_id": str(uuid.uuid4()), "prompt": "a"}, 404)):
            r = client.http.post("/jobs", headers=h, body=json.dumps(body))
            assert r.status_code == status, (body, r.body)
        assert client.http.get("/jobs/not-a-uuid", headers=h).status_code == 400
        assert client.http.get(job_path, headers=h).status_code == 404
        r = client.http.post("/uploads", headers=h, body=json.dumps({"content_type": "video/mp4", "size": 10**12}))
        assert r.status_code == 400


def test_upload_form_is_a_bounded_presigned_post(stack, settings):
    module, _, _ = stack
    with Client(module.app, project_dir=str(APP_DIR)) as client:
        r = client.http.post("/uploads", headers=_h(settings), body=json.dumps({"content_type": "video/mp4"}))
        assert r.status_code == 201, r.body
        body = json.loads(r.body)
    key = body["s3_url"].removeprefix(f"s3://{BUCKET}/")
    assert key.startswith("uploads/alice/") and key.endswith(".mp4")
    fields = body["upload"]["fields"]
    assert fields["key"] == key
    policy = json.loads(base64.b64decode(fields["policy"]))
    conds = policy["conditions"]
    assert ["content-length-range", 1, settings.max_input_bytes] in conds
    assert {"x-amz-server-side-encryption": "AES256"} in conds and {"Content-Type": "video/mp4"} in conds
    assert {"key": key} in conds and {"bucket": BUCKET} in conds
    # SigV4 on the bucket's regional virtual host (issue 20): buckets refuse SigV2, and the global
    # host can answer a new bucket with a 307 that a browser's CORS check cannot follow
    assert body["upload"]["url"] == f"https://{BUCKET}.s3.us-east-1.amazonaws.com/"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256" and "signature" not in fields
    assert fields["x-amz-credential"].endswith("/us-east-1/s3/aws4_request")
    assert {"x-amz-algorithm": "AWS4-HMAC-SHA256"} in conds



def test_an_audio_upload_and_the_music_field_on_chalice(stack, settings, aws):
    """Issue 15's HTTP side on AWS: an audio/* presigned POST (an audio key), and submit's music
    checked there as on serve (a video as the music, or the audio as the video: one-line 400s)."""
    module, _, _ = stack
    s3 = aws.client("s3")
    with Client(module.app, project_dir=str(APP_DIR)) as client:
        urls = {}
        for ctype in ("audio/mpeg", "video/mp4"):
            r = client.http.post("/uploads", headers=_h(settings), body=json.dumps({"content_type": ctype}))
            assert r.status_code == 201, r.body
            body = json.loads(r.body)
            policy = json.loads(base64.b64decode(body["upload"]["fields"]["policy"]))
            assert {"Content-Type": ctype} in policy["conditions"]
            urls[ctype] = body["s3_url"]
            s3.put_object(Bucket=BUCKET, Key=body["s3_url"].removeprefix(f"s3://{BUCKET}/"), Body=b"x" * 100)
        assert urls["audio/mpeg"].endswith(".mp3") and urls["video/mp4"].endswith(".mp4")
        video, audio = urls["video/mp4"], urls["audio/mpeg"]

        def submit(body):
            r = client.http.post("/jobs", headers=_h(settings), body=json.dumps({"prompt": "calm", **body}))
            return r.status_code, json.loads(r.body)

        for body in ({"s3_url": audio}, {"s3_url": video, "music": {"source": "track", "s3_url": video}},
                     {"s3_url": video, "music": {"source": "track"}}):
            status, answer = submit(body)
            assert status == 400 and answer["error"] == "bad_input" and "\n" not in answer["message"], answer
        status, answer = submit({"s3_url": video, "music": {"source": "track", "s3_url": audio}})
        assert status == 202, answer
        r = client.http.get(f"/jobs/{answer['job_id']}", headers=_h(settings))
        assert r.status_code == 200 and json.loads(r.body)["plan"] is None
    from musicvid_core.bootstrap import process_services

    music = process_services().jobs.get(answer["job_id"]).options.music
    assert (music.kind, music.track) == ("track", audio.removeprefix(f"s3://{BUCKET}/"))

@pytest.mark.slow
def test_flow_to_completed_and_regeneration_on_step_functions(stack, settings, short_video, tmp_path):
    module, sfn, arn = stack
    h = _h(settings)
    with Client(module.app, project_dir=str(APP_DIR)) as client:
        up = json.loads(client.http.post("/uploads", headers=h, body=json.dumps({"content_type": "video/mp4"})).body)
        with open(short_video.path, "rb") as fh:  # moto answers the presigned POST
            r = requests.post(up["upload"]["url"], data=up["upload"]["fields"], files={"file": ("v.mp4", fh, "video/mp4")})
        assert r.status_code == 204
        r = client.http.post("/jobs", headers=h, body=json.dumps({"s3_url": up["s3_url"], "prompt": "calm piano"}))
        assert r.status_code == 202, r.body
        job_id = json.loads(r.body)["job_id"]
        _run_execution(client, sfn, arn, f"{job_id}-1")
        job = json.loads(client.http.get(f"/jobs/{job_id}", headers=h).body)
        assert job["status"] == "COMPLETED", job["error"]
        assert job["final_url"].startswith(f"https://{BUCKET}.s3.us-east-1.amazonaws.com/jobs/{job_id}/1/output.mp4?")
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in job["final_url"] and "&Signature=" not in job["final_url"]
        out = tmp_path / "out.mp4"
        out.write_bytes(requests.get(job["final_url"]).content)
        assert video_packet_hashes(out) == video_packet_hashes(short_video.path)

        r = client.http.post("/jobs", headers=h, body=json.dumps({"job_id": job_id, "prompt": "darker"}))
        assert r.status_code == 202, r.body
        _run_execution(client, sfn, arn, f"{job_id}-2")
        job = json.loads(client.http.get(f"/jobs/{job_id}", headers=h).body)
        assert job["status"] == "COMPLETED" and job["operation_type"] == "REGENERATE"
        assert job["prompts"] == ["calm piano", "darker"] and f"/jobs/{job_id}/2/" in job["final_url"]
        listed = json.loads(client.http.get("/jobs?limit=1", headers=h).body)
        assert [j["job_id"] for j in listed["jobs"]] == [job_id] and listed["next"] is None
        assert client.http.get(f"/jobs/{job_id}", headers=_h(settings, "bob")).status_code == 404


def test_hostile_requests_on_aws_headers_bounds_and_the_per_user_cap(stack, settings, short_video, monkeypatch):
    """Issue 14 on the deployed path: security headers, deep JSON as 400, the DynamoDB-counted cap
    as 429 with Retry-After, and signed page tokens."""
    monkeypatch.setenv("MUSICVID_MAX_ACTIVE_JOBS", "2")
    from chalicelib import wiring

    wiring.reset()
    module, _, _ = stack
    h = _h(settings)
    with Client(module.app, project_dir=str(APP_DIR)) as client:
        for body in (b"[" * 60_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
            for path in ("/jobs", "/uploads"):
                r = client.http.post(path, headers=h, body=body)
                assert r.status_code == 400 and json.loads(r.body)["error"] == "bad_input", (path, r.body[:200])
                assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Cache-Control"] == "no-store"
        up = json.loads(client.http.post("/uploads", headers=h, body=json.dumps({"content_type": "video/mp4"})).body)
        with open(short_video.path, "rb") as fh:
            assert requests.post(up["upload"]["url"], data=up["upload"]["fields"],
                                 files={"file": ("v.mp4", fh, "video/mp4")}).status_code == 204
        codes = []
        for i in range(3):
            r = client.http.post("/jobs", headers=h, body=json.dumps({"s3_url": up["s3_url"], "prompt": f"p{i}"}))
            codes.append(r.status_code)
        assert codes == [202, 202, 429], codes
        assert json.loads(r.body)["error"] == "too_many_jobs" and int(r.headers["Retry-After"]) > 0
        page = json.loads(client.http.get("/jobs?limit=1", headers=h).body)
        assert page["next"] and "." in page["next"]
        assert client.http.get(f"/jobs?limit=1&next={page['next']}", headers=h).status_code == 200
        body = page["next"].rpartition(".")[0]
        r = client.http.get(f"/jobs?limit=1&next={body}", headers=h)  # the same token without its signature
        assert r.status_code == 400 and r.headers["Cache-Control"] == "no-store"
        r = client.http.get(f"/jobs?limit=1&next={page['next']}", headers=_h(settings, "bob"))
        assert r.status_code == 400


def test_a_manifest_upload_fails_in_the_analyzer_lambda(stack, settings, tmp_path):
    """The Analyzer step Lambda opens the downloaded object under the same allow-lists: a DASH
    manifest pointing at a file on the function's disk fails the job, unread."""
    from tests.test_hostile_media import Canary, _mpd

    module, sfn, arn = stack
    h = _h(settings)
    canary = Canary(tmp_path / "secret.mp4")
    manifest = tmp_path / "movie.mp4"
    manifest.write_bytes(_mpd(f"file://{canary.path}"))
    with Client(module.app, project_dir=str(APP_DIR)) as client:
        up = json.loads(client.http.post("/uploads", headers=h, body=json.dumps({"content_type": "video/mp4"})).body)
        with open(manifest, "rb") as fh:
            assert requests.post(up["upload"]["url"], data=up["upload"]["fields"],
                                 files={"file": ("v.mp4", fh, "video/mp4")}).status_code == 204
        r = client.http.post("/jobs", headers=h, body=json.dumps({"s3_url": up["s3_url"], "prompt": "calm"}))
        job_id = json.loads(r.body)["job_id"]
        from musicvid_core.asl import ExecutionFailed

        with pytest.raises(ExecutionFailed, match="JobFailed"):  # the workflow's Fail state, as on AWS
            _run_execution(client, sfn, arn, f"{job_id}-1")
        job = json.loads(client.http.get(f"/jobs/{job_id}", headers=h).body)
    assert job["status"] == "FAILED" and job["error"]["type"] == "UnsupportedMedia", job
    assert "playlist or manifest" in job["error"]["message"] and not canary.was_opened()
