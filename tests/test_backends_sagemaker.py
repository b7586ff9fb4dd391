"""Generator ``sagemaker`` (async MusicGen endpoint) against moto's S3 and SageMaker runtime, the
botocore Stubber for AWS errors, and the workflow's Wait/Choice polling on the real ASL."""

from __future__ import annotations

import base64
import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

from botocore.stub import Stubber  # noqa: E402

from musicvid_core.adapters.model import musicgen_common as mc  # noqa: E402
from musicvid_core.adapters.model.sagemaker import SageMakerGenerator  # noqa: E402
from musicvid_core.asl import ExecutionFailed, StateMachine, load_definition  # noqa: E402
from musicvid_core.domain.errors import BadInput, GenerationError, TransientBackendError  # noqa: E402
from musicvid_core.domain.plan import Plan, Segment  # noqa: E402

REGION = "us-east-1"
WORKFLOW = Path(__file__).resolve().parents[1] / "musicvid_core" / "workflow" / "workflow.asl.json"


def make_plan(durations, bpm=120.0) -> Plan:
    t, segs = 0.0, []
    for i, d in enumerate(durations):
        segs.append(Segment(index=i, start=t, end=t + d, prompt=f"lofi beat {i}", style="lofi", mood="calm",
                            bpm=bpm, key="C major", energy=0.5))
        t += d
    return Plan(duration=t, prompt="lofi", segments=segs)


def wav_b64(seconds=0.5, rate=32000, freq=330.0) -> str:
    t = np.arange(int(seconds * rate)) / rate
    return base64.b64encode(mc.encode_wav(0.3 * np.sin(2 * np.pi * freq * t), rate)).decode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def aws(monkeypatch):
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(var, value)
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="mv-bucket")
        yield {"s3": s3, "runtime": boto3.client("sagemaker-runtime", region_name=REGION)}


def endpoint_results(*results) -> None:
    """Queue what moto's async endpoint writes for the next invocations: (is_failure, text)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    sagemakerruntime_backends[DEFAULT_ACCOUNT_ID][REGION].async_results_queue.extend(results)


def ok(seconds=0.5) -> tuple[bool, str]:
    return False, json.dumps({"sample_rate": 32000, "outputs": [wav_b64(seconds)]})


@pytest.fixture
def sm_settings(settings):
    return settings.model_copy(update={"sagemaker_endpoint": "musicgen-async", "bucket": "mv-bucket",
                                       "sagemaker_deadline_s": 600.0, "sagemaker_poll_s": 20})


def make_gen(sm_settings, aws, clock=None) -> SageMakerGenerator:
    return SageMakerGenerator(sm_settings, runtime=aws["runtime"], s3=aws["s3"], clock=clock or Clock())


def test_happy_path_one_request_per_segment_and_exact_clips(sm_settings, aws):
    endpoint_results(ok(0.5), ok(2.0))
    gen = make_gen(sm_settings, aws)
    plan = make_plan([1.0, 1.5])
    records = gen.submit(plan, 4, "jobs/j/1/", [0, 1], tag="job-1")
    assert [r["index"] for r in records] == [0, 1] and all(len(r["requests"]) == 1 for r in records)
    body = json.loads(aws["s3"].get_object(Bucket="mv-bucket", Key="jobs/j/1/music/requests/000-0.json")["Body"].read())
    # 1.0 s segment + 0.35 s release tail at 50 tokens per second, plus the delay pattern
    assert body["parameters"]["max_new_tokens"] == 68 + 3 and body["inputs"] == ["lofi beat 0, 120 bpm, C major"]
    for record in records:
        assert gen.check(record) is True
        clip = gen.fetch(plan, record)
        # padded (0.5 s returned) or trimmed (2.0 s returned) to exactly the clip length, 48 kHz stereo
        assert clip.shape == (plan.clip_samples(record["index"], 48000), 2)
        assert np.isfinite(clip).all() and 0 < np.abs(clip).max() <= 1.0
    assert not np.abs(gen.fetch(plan, records[0])[30000:]).any()  # the padding is silence


def test_pending_until_the_output_exists_then_the_deadline(sm_settings, aws):
    endpoint_results(ok())
    clock = Clock()
    gen = make_gen(sm_settings, aws, clock)
    [record] = gen.submit(make_plan([1.0]), 0, "jobs/j/1/", [0])
    out_bucket, out_key = record["requests"][0]["output"][5:].split("/", 1)
    body = aws["s3"].get_object(Bucket=out_bucket, Key=out_key)["Body"].read()
    aws["s3"].delete_object(Bucket=out_bucket, Key=out_key)  # the endpoint has not answered yet
    assert gen.check(record) is False
    clock.now += 599
    assert gen.check(record) is False
    aws["s3"].put_object(Bucket=out_bucket, Key=out_key, Body=body)
    assert gen.check(record) is True
    aws["s3"].delete_object(Bucket=out_bucket, Key=out_key)
    clock.now += 2  # past submission + 600 s, and still no output
    with pytest.raises(GenerationError, match="deadline"):
        gen.check(record)


def test_failure_location_fails_the_segment_with_its_reason(sm_settings, aws):
    endpoint_results((True, "CUDA out of memory. Tried to allocate 2.00 GiB"))
    gen = make_gen(sm_settings, aws)
    [record] = gen.submit(make_plan([1.0]), 0, "p/", [0])
    with pytest.raises(GenerationError, match="endpoint failed: CUDA out of memory"):
        gen.check(record)


@pytest.mark.parametrize("result,where,message", [
    ((False, ""), "check", "empty output"),
    ((False, json.dumps({"sample_rate": 32000, "outputs": []})), "fetch", "empty output list"),
    ((False, json.dumps({"generated_outputs_s3": []})), "fetch", "empty output list"),
    ((False, json.dumps({"outputs": ["bm90IGF1ZGlv"]})), "fetch", "not audio"),
    ((False, "<html>oops</html>"), "fetch", "neither audio nor JSON"),
])
def test_empty_or_unusable_outputs_are_failures(sm_settings, aws, result, where, message):
    endpoint_results(result)
    gen = make_gen(sm_settings, aws)
    plan = make_plan([1.0])
    [record] = gen.submit(plan, 0, "p/", [0])
    with pytest.raises(GenerationError, match=message):
        gen.check(record)
        gen.fetch(plan, record)


def test_outputs_listed_as_s3_uris_are_fetched(sm_settings, aws):
    aws["s3"].put_object(Bucket="mv-bucket", Key="gen/a.wav", Body=base64.b64decode(wav_b64(1.0)))
    endpoint_results((False, json.dumps({"generated_outputs_s3": ["s3://mv-bucket/gen/a.wav"]})))
    gen = make_gen(sm_settings, aws)
    plan = make_plan([0.8])
    [record] = gen.submit(plan, 0, "p/", [0])
    assert gen.check(record) and gen.fetch(plan, record).shape == (plan.clip_samples(0, 48000), 2)


def test_long_segments_are_requested_in_windows_and_crossfaded(sm_settings, aws):
    plan = make_plan([47.0, 5.0])  # clip 0: 47.35 s -> two pieces of <= 30 s
    pieces = mc.plan_pieces(plan, [0])
    assert len(pieces) == 2 and all(p.max_new_tokens <= 1503 for p in pieces)
    endpoint_results(*[ok(1.0) for _ in pieces])
    gen = make_gen(sm_settings, aws)
    [record] = gen.submit(plan, 0, "p/", [0])
    assert [r["part"] for r in record["requests"]] == [0, 1]
    assert record["requests"][1]["offset_s"] == pytest.approx(pieces[1].offset_s)
    clip = gen.fetch(plan, record)
    assert clip.shape == (plan.clip_samples(0, 48000), 2)
    second = round(pieces[1].offset_s * 48000)
    assert np.abs(clip[second + 1000:second + 40000]).max() > 0  # the second piece sounds at its offset


def test_throttling_is_transient_and_validation_is_not(sm_settings, aws):
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    gen = SageMakerGenerator(sm_settings, runtime=runtime, s3=aws["s3"], clock=Clock())
    with Stubber(runtime) as stub:
        stub.add_client_error("invoke_endpoint_async", service_error_code="ThrottlingException",
                              service_message="Rate exceeded", http_status_code=400)
        stub.add_client_error("invoke_endpoint_async", service_error_code="ServiceUnavailable", http_status_code=503)
        stub.add_client_error("invoke_endpoint_async", service_error_code="ValidationError",
                              service_message="Endpoint musicgen-async of account 123 not found.",
                              http_status_code=400)
        with pytest.raises(TransientBackendError, match="ThrottlingException"):
            gen.submit(make_plan([1.0]), 0, "p/", [0])
        with pytest.raises(TransientBackendError):
            gen.submit(make_plan([1.0]), 0, "p/", [0])
        with pytest.raises(BadInput, match="ValidationError"):
            gen.submit(make_plan([1.0]), 0, "p/", [0])


def test_missing_settings_are_configuration_errors(settings):
    from musicvid_core.domain.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="SAGEMAKER_ENDPOINT"):
        SageMakerGenerator(settings, runtime=object(), s3=object())
    with pytest.raises(ConfigurationError, match="BUCKET"):
        SageMakerGenerator(settings.model_copy(update={"sagemaker_endpoint": "e"}), runtime=object(), s3=object())


# --- the workflow's polling, on the real definition -------------------------------------------------
class Workflow:
    """musicvid_core/workflow/workflow.asl.json with fake steps; records events and Wait sleeps."""

    def __init__(self, generator) -> None:
        self.calls = defaultdict(list)
        self.sleeps: list[float] = []
        self.events: list[dict] = []
        functions = {"Coordinator": lambda e: {}, "Analyzer": lambda e: {"segments": [0, 1]},
                     "AudioGenerator": generator, "AVOperator": lambda e: {"clips": e["clips"]},
                     "FailureHandler": lambda e: {"status": "FAILED"}}

        def recorded(name):
            def call(event):
                self.calls[name].append(event)
                return functions[name](event)
            return call

        steps = list(functions)
        definition = load_definition(WORKFLOW, {f"{s}FunctionArn": s for s in steps})
        self.machine = StateMachine(definition, {s: recorded(s) for s in steps}.__getitem__,
                                    sleep=self.sleeps.append, rng=random.Random(1), on_event=self.events.append)

    def run(self):
        return self.machine.run({"job_id": "j", "attempt": 1})


def test_async_segments_wait_in_the_asl_and_the_sync_path_never_waits():
    polls = defaultdict(int)

    def async_generator(event):
        polls[event["index"]] += 1
        if polls[event["index"]] <= 1 + event["index"]:  # segment 1 takes one poll longer
            return {"job_id": event["job_id"], "attempt": event["attempt"], "index": event["index"],
                    "pending": True, "wait_s": 20}
        return {"index": event["index"], "clip_url": f"clip-{event['index']}", "pending": False}

    wf = Workflow(async_generator)
    out = wf.run()
    assert out["mix"]["clips"] == [{"index": 0, "clip_url": "clip-0", "pending": False},
                                   {"index": 1, "clip_url": "clip-1", "pending": False}]
    assert dict(polls) == {0: 2, 1: 3} and sorted(wf.sleeps) == [20, 20, 20]  # Wait states, not sleeps in a Task
    # a pending answer goes back in as the next call's event (job, attempt and index kept)
    assert all({"job_id", "attempt", "index"} <= set(e) for e in wf.calls["AudioGenerator"])

    sync = Workflow(lambda e: {"index": e["index"], "clip_url": "c", "pending": False})
    sync.run()
    assert len(sync.calls["AudioGenerator"]) == 2 and sync.sleeps == []
    assert not any(e.get("state") == "WaitForSegment" for e in sync.events)


def test_a_failed_poll_goes_to_the_failure_handler():
    def generator(event):
        if event.get("pending"):
            raise GenerationError("segment 0: the endpoint failed: out of memory")
        return {**event, "pending": True, "wait_s": 5}

    wf = Workflow(generator)
    with pytest.raises(ExecutionFailed):
        wf.run()
    [failure] = wf.calls["FailureHandler"]
    assert failure["error"]["Error"] == "GenerationError"


# --- end to end through the steps (moto for AWS, the embedded stores for the job) --------------------
@pytest.mark.slow
def test_pipeline_with_the_sagemaker_generator(services, short_video, aws, monkeypatch):
    from musicvid_core.domain import Status
    from musicvid_core.metrics import measure_loudness
    from musicvid_core.workflow import submit as service

    settings = services.settings.model_copy(update={"generator": "sagemaker", "sagemaker_endpoint": "musicgen-async",
                                                    "bucket": "mv-bucket"})
    services.settings = settings
    gen = SageMakerGenerator(settings, runtime=aws["runtime"], s3=aws["s3"], clock=Clock())
    services._cache[("generator", "sagemaker")] = gen
    endpoint_results(*[ok(3.0) for _ in range(8)])
    checks = defaultdict(int)
    real_check = gen.check

    def slow_check(record):  # every segment is pending on its first check
        checks[record["index"]] += 1
        return checks[record["index"]] > 1 and real_check(record)

    monkeypatch.setattr(gen, "check", slow_check)
    uri = service.upload_file(services, short_video.path, "tester")
    job = service.submit_new(services, uri, "lofi hip hop", "tester")
    events = []
    job = service.run(services, job, events.append)
    assert job.status == Status.COMPLETED, job.error
    n = len(services.objects.get_json(services.objects.key_from_uri(job.plan_url))["segments"])
    assert dict(checks) == {i: 2 for i in range(n)}
    assert sum(e["type"] == "StateEntered" and e["state"] == "WaitForSegment" for e in events) == n
    # all requests were submitted by the Analyzer, before any segment was polled
    records = [services.objects.get_json(f"{job.prefix}music/{i:03d}.json") for i in range(n)]
    assert all(r["requests"][0]["input"].startswith(f"s3://mv-bucket/{job.prefix}music/requests/") for r in records)
    assert abs(measure_loudness(service.output_path(services, job)).integrated_lufs + 14) <= 1.0


def test_clients_built_from_settings_time_out_and_retry_inside_the_lambda(sm_settings, aws):
    """Issue 20: an explicit read timeout and botocore's standard retries (the template sets both per
    function); the S3 client signs SigV4 on the regional host like every other."""
    gen = SageMakerGenerator(sm_settings.model_copy(update={"model_read_timeout_s": 45.0, "model_max_attempts": 3}))
    config = gen.runtime.meta.config
    assert config.read_timeout == 45.0 and config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert gen.s3.meta.config.signature_version == "s3v4"
    assert gen.s3.meta.config.s3["us_east_1_regional_endpoint"] == "regional"
