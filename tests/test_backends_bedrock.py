"""Planner ``bedrock`` (+ ``bedrock-agent``) and summarizer ``bedrock`` with the botocore Stubber:
plan validation and snapping, the repair round trip, error mapping, retries on the real ASL, and
regeneration continuity through the stored conversation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")

from botocore.stub import Stubber  # noqa: E402

from musicvid_core.adapters.local import FolderObjectStore  # noqa: E402
from musicvid_core.adapters.model.bedrock_planner import (  # noqa: E402
    CONVERSATION,
    BedrockAgentPlanner,
    BedrockPlanner,
    snap_boundaries,
)
from musicvid_core.asl import StateMachine, load_definition  # noqa: E402
from musicvid_core.domain.errors import (  # noqa: E402
    BadInput,
    ConfigurationError,
    PlanValidationError,
    TransientBackendError,
)
from musicvid_core.domain.features import Curve, Cut, MediaInfo, Region, VideoFeatures  # noqa: E402
from musicvid_core.domain.job import Job  # noqa: E402
from musicvid_core.services import PLANNERS, SUMMARIZERS, load_plugin  # noqa: E402

REGION = "us-east-1"
WORKFLOW = Path(__file__).resolve().parents[1] / "musicvid_core" / "workflow" / "workflow.asl.json"


@pytest.fixture
def features():
    return VideoFeatures(
        media=MediaInfo(duration=20.0, width=320, height=180, fps=25, video_codec="h264"),
        cuts=[Cut(time=5.0, strength=0.9), Cut(time=12.0, strength=0.7), Cut(time=16.0, strength=0.4)],
        motion=Curve(times=[i * 0.5 for i in range(40)], values=[0.2 + 0.01 * i for i in range(40)]),
        brightness=Curve(times=[0, 10], values=[0.5, 0.6]),
        speech=[Region(start=1.0, end=3.0)])


def seg(start, end, **kw):
    return {"start": start, "end": end, "prompt": "warm acoustic guitar", "style": "acoustic", "mood": "warm",
            "bpm": 96, "key": "G major", "energy": 0.4, "instruments": ["guitar"], **kw}


def reply(text_or_obj, stop="end_turn"):
    text = text_or_obj if isinstance(text_or_obj, str) else json.dumps(text_or_obj)
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": stop,
            "usage": {"inputTokens": 10, "outputTokens": 10, "totalTokens": 20}, "metrics": {"latencyMs": 5}}


GOOD = {"segments": [seg(0, 5.3), seg(5.3, 11.6, energy=0.7, bpm=110), seg(11.6, 20.0, energy=0.9)],
        "notes": "builds with the cuts"}


@pytest.fixture
def runtime(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("bedrock-runtime", region_name=REGION)
    sent: list[dict] = []
    client.meta.events.register("provide-client-params.bedrock-runtime.Converse",
                                lambda params, **_: sent.append(json.loads(json.dumps(params, default=str))))
    client.sent = sent
    return client


def test_happy_path_snaps_to_cuts_and_keeps_measured_mix_fields(settings, runtime, features):
    planner = BedrockPlanner(settings, client=runtime)
    with Stubber(runtime) as stub:
        stub.add_response("converse", reply(GOOD))
        plan = planner.plan(features, "warm acoustic, builds", 3)
    assert [(s.start, s.end) for s in plan.segments] == [(0, 5.0), (5.0, 12.0), (12.0, 20.0)]  # snapped
    assert plan.segments[2].accents == [16.0] and plan.segments[1].bpm == 110
    assert plan.planner == "bedrock" and plan.understood["notes"] == "builds with the cuts"
    assert plan.speech == features.speech and plan.cuts == [5.0, 12.0, 16.0]
    [request] = runtime.sent
    assert request["modelId"] == settings.bedrock_model_id
    grounding = request["messages"][0]["content"][0]["text"]
    assert '"cuts":[{"t":5.0,"strength":0.9}' in grounding and "speech_regions" in grounding
    assert "warm acoustic, builds" in grounding


@pytest.mark.parametrize("bad,why", [
    ("Sure! Here is a plan: segments from 0 to 20.", "no JSON object"),
    ("{\"segments\": [", "no JSON object"),
    (json.dumps({"segments": [seg(0, 8), seg(10, 20)]}), "gap or overlap"),
    (json.dumps({"segments": [seg(0, 12)]}), "last segment ends at 12.00"),
    (json.dumps({"segments": [seg(0, 5), seg(5, 20, bpm=500)]}), "bpm"),
    (json.dumps({"segments": [seg(0, 20, key="H dorian")]}), "key"),
    (json.dumps({"tracks": []}), "'segments'"),
])
def test_invalid_reply_is_repaired_in_one_round_trip(settings, runtime, features, bad, why):
    planner = BedrockPlanner(settings, client=runtime)
    with Stubber(runtime) as stub:
        stub.add_response("converse", reply(bad))
        stub.add_response("converse", reply("```json\n" + json.dumps(GOOD) + "\n```"))
        plan = planner.plan(features, "warm acoustic", 0)
    assert len(plan.segments) == 3
    first, second = runtime.sent
    repair = second["messages"][-1]["content"][0]["text"]
    assert why in repair and second["messages"][1]["content"][0]["text"] == bad  # same conversation
    assert len(second["messages"]) == 3 and len(first["messages"]) == 1


def test_still_invalid_after_the_repair_is_a_typed_error(settings, runtime, features):
    planner = BedrockPlanner(settings, client=runtime)
    with Stubber(runtime) as stub:
        stub.add_response("converse", reply("no"))
        stub.add_response("converse", reply(json.dumps({"segments": [seg(0, 20, energy=3)]})))
        with pytest.raises(PlanValidationError, match="still invalid after one repair: .*energy"):
            planner.plan(features, "x", 0)
        stub.assert_no_pending_responses()


def test_snapping_merges_boundaries_that_land_on_one_cut():
    out = snap_boundaries([seg(0, 4.6), seg(4.6, 5.4), seg(5.4, 10)], 10.0, [5.0])
    assert [(s["start"], s["end"]) for s in out] == [(0, 5.0), (5.0, 10.0)]
    far = snap_boundaries([seg(0, 7.5), seg(7.5, 10)], 10.0, [5.0])  # no cut nearby: kept
    assert [(s["start"], s["end"]) for s in far] == [(0, 7.5), (7.5, 10.0)]


@pytest.mark.parametrize("code,status,error", [
    ("ThrottlingException", 429, TransientBackendError),
    ("ServiceUnavailableException", 503, TransientBackendError),
    ("ModelTimeoutException", 408, TransientBackendError),
    ("AccessDeniedException", 403, ConfigurationError),
    ("ValidationException", 400, BadInput),
])
def test_aws_errors_map_onto_the_error_tree(settings, runtime, features, code, status, error):
    planner = BedrockPlanner(settings, client=runtime)
    with Stubber(runtime) as stub:
        stub.add_client_error("converse", service_error_code=code, service_message="nope", http_status_code=status)
        with pytest.raises(error, match=code):
            planner.plan(features, "x", 0)


def test_throttling_is_retried_by_the_workflow(settings, runtime, features):
    """The real ASL's Analyze Retry on TransientBackendError: throttled twice, then planned."""
    planner = BedrockPlanner(settings, client=runtime)
    events, sleeps = [], []

    def analyzer(event):
        return {"segments": [s.index for s in planner.plan(features, "x", 0).segments]}

    functions = {"Coordinator": lambda e: {}, "Analyzer": analyzer,
                 "AudioGenerator": lambda e: {"index": e["index"], "pending": False}, "AVOperator": lambda e: {},
                 "FailureHandler": lambda e: {}}
    machine = StateMachine(load_definition(WORKFLOW, {f"{k}FunctionArn": k for k in functions}),
                           functions.__getitem__, sleep=sleeps.append, rng=random.Random(0), on_event=events.append)
    with Stubber(runtime) as stub:
        for _ in range(2):
            stub.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
        stub.add_response("converse", reply(GOOD))
        out = machine.run({"job_id": "j", "attempt": 1})
    assert out["analysis"]["segments"] == [0, 1, 2]
    assert [e["error"] for e in events if e["type"] == "TaskRetry"] == ["TransientBackendError"] * 2


# --- regeneration continuity -------------------------------------------------------------------------
def test_regeneration_continues_the_stored_conversation(settings, runtime, features, tmp_path):
    store = FolderObjectStore(tmp_path / "store")
    video = b"\x00\x00\x00\x18ftypmp42 a small local video"
    uri = store.put_bytes("uploads/tester/v.mp4", video)
    job = Job(user_id="tester", s3_url=uri, prompts=["warm acoustic"])
    planner = BedrockPlanner(settings, client=runtime)
    darker = {"segments": [seg(0, 5, mood="dark", key="E minor"), seg(5, 20, mood="dark", key="E minor")]}
    with Stubber(runtime) as stub:
        stub.add_response("converse", reply(GOOD))
        stub.add_response("converse", reply(darker))
        first = planner.plan_for_job(job, features, store)
        # attempt 2 failed and was rolled back (nothing stored); attempt 3 continues attempt 1's conversation
        job3 = job.model_copy(update={"prompts": [*job.prompts, "same but darker"], "attempt": 3})
        second = planner.plan_for_job(job3, features, store)
    assert first.segments[0].mood == "warm" and [s.mood for s in second.segments] == ["dark", "dark"]
    one, three = runtime.sent
    # the video itself goes first in the conversation (inline: the embedded store is not S3)
    assert one["messages"][0]["content"][0]["video"]["format"] == "mp4"
    assert three["messages"][0]["content"][0]["video"]["source"]["bytes"]
    assert three["messages"][1]["content"][0]["text"] == json.dumps(GOOD)  # the earlier answer, replayed
    turn = three["messages"][2]["content"][0]["text"]
    assert "same but darker" in turn and '"bpm":110' in turn  # the new prompt and the previous plan
    stored = store.get_json(f"jobs/{job.job_id}/3/{CONVERSATION}")
    assert len(stored["messages"]) == 4 and stored["prompts"] == ["warm acoustic", "same but darker"]
    assert [list(block) for block in stored["messages"][0]["content"]] == [["text"]]  # re-attached each time
    assert stored["plan"]["segments"][0]["mood"] == "dark"


def test_an_s3_input_is_shown_by_location(settings, runtime, features, tmp_path):
    job = Job(user_id="u", s3_url="s3://bucket/uploads/u/clip.mov", prompts=["x"])
    store = FolderObjectStore(tmp_path / "s")
    with Stubber(runtime) as stub:
        stub.add_response("converse", reply(GOOD))
        BedrockPlanner(settings, client=runtime).plan_for_job(job, features, store)
    [request] = runtime.sent
    assert request["messages"][0]["content"][0]["video"] == {
        "format": "mov", "source": {"s3Location": {"uri": "s3://bucket/uploads/u/clip.mov"}}}


class FakeAgentRuntime:
    """bedrock-agent-runtime's invoke_agent answers with an event stream of chunks."""

    def __init__(self, replies) -> None:
        self.replies = list(replies)
        self.calls = []

    def invoke_agent(self, **kwargs):
        self.calls.append(kwargs)
        text = self.replies.pop(0)
        return {"completion": [{"chunk": {"bytes": text[:7].encode()}}, {"trace": {}},
                               {"chunk": {"bytes": text[7:].encode()}}], "sessionId": kwargs["sessionId"]}


def test_agent_variant_uses_the_job_id_as_session(settings, features, tmp_path):
    agent_settings = settings.model_copy(update={"bedrock_agent_id": "AG1", "bedrock_agent_alias_id": "AL1"})
    client = FakeAgentRuntime(["not json", json.dumps(GOOD), json.dumps(GOOD)])
    planner = BedrockAgentPlanner(agent_settings, client=client)
    store = FolderObjectStore(tmp_path / "s")
    job = Job(user_id="u", s3_url="s3://b/uploads/u/v.mp4", prompts=["calm"])
    plan = planner.plan_for_job(job, features, store)
    assert plan.planner == "bedrock-agent" and len(plan.segments) == 3
    assert [c["sessionId"] for c in client.calls] == [job.job_id] * 2  # the repair, in the same session
    assert client.calls[0]["inputText"].startswith("The video is at s3://b/uploads/u/v.mp4")
    job2 = job.model_copy(update={"prompts": ["calm", "faster"], "attempt": 2})
    planner.plan_for_job(job2, features, store)
    assert client.calls[2]["sessionId"] == job.job_id and "faster" in client.calls[2]["inputText"]
    with pytest.raises(ConfigurationError, match="AGENT_ID"):
        BedrockAgentPlanner(settings, client=client)


def test_registries_name_the_model_backends():
    assert load_plugin(PLANNERS, "planner", "bedrock") is BedrockPlanner
    assert load_plugin(PLANNERS, "planner", "bedrock-agent") is BedrockAgentPlanner
    assert load_plugin(SUMMARIZERS, "summarizer", "bedrock").__name__ == "BedrockSummarizer"


# --- summarizer --------------------------------------------------------------------------------------
def test_summarizer_writes_the_models_text_and_falls_back_to_the_template(settings, runtime, features):
    from musicvid_core.adapters.model.bedrock_summary import BedrockSummarizer
    from musicvid_core.stages.plan.planner import RulePlanner

    plan = RulePlanner(settings).plan(features, "warm acoustic", 0)
    job = Job(user_id="u", s3_url="local://uploads/u/v.mp4", prompts=["warm acoustic"])
    summarizer = BedrockSummarizer(settings, client=runtime)
    with Stubber(runtime) as stub:
        stub.add_response("converse", reply("Warm acoustic guitar\n builds over 0:20."))
        stub.add_response("converse", reply(""))
        stub.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
        assert summarizer.summarize(job, plan, {"integrated_lufs": -14.0}) == "Warm acoustic guitar builds over 0:20."
        fallback = summarizer.summarize(job, plan, {"integrated_lufs": -14.0})
        with pytest.raises(TransientBackendError):
            summarizer.summarize(job, plan, {})
    assert fallback.startswith("0:20.0 of music for") and "-14.0 LUFS" in fallback
    facts = json.loads(runtime.sent[0]["messages"][0]["content"][0]["text"].split("\n", 1)[1])
    assert runtime.sent[0]["modelId"] == settings.bedrock_summary_model_id
    assert facts["prompts_oldest_first"] == ["warm acoustic"] and facts["integrated_lufs"] == -14.0


@pytest.mark.parametrize("flag", ["--planner", "--generator"])
def test_cli_refuses_an_unknown_backend_name_in_one_line(settings, tmp_path, capsys, flag):
    from musicvid_core.cli import main

    video = tmp_path / "v.mp4"
    video.write_bytes(b"not even a video")
    with pytest.raises(SystemExit) as info:
        main(["run", str(video), "-p", "calm", flag, "nope"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown" in err and "choose one of" in err


def test_cli_passes_the_backend_names_to_the_settings(settings, monkeypatch):
    from musicvid_core import cli

    services = cli._services("bedrock", "sagemaker")
    assert services.settings.planner == "bedrock" and services.settings.generator == "sagemaker"
    assert cli._services().settings.planner == "rules"


# --- issue 20: Nova's limits, the clients' timeouts ---------------------------------------------------
def test_past_novas_limits_the_planner_shows_the_proxy_or_features_only(aws, settings, runtime, features):
    from musicvid_core.adapters.aws.s3 import S3ObjectStore

    s3 = aws.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="media-bucket")
    store = S3ObjectStore(s3, "media-bucket")
    small = settings.model_copy(update={"bedrock_s3_video_bytes": 1000, "bedrock_inline_video_bytes": 100})
    planner = BedrockPlanner(small, client=runtime)
    big = Job(user_id="u", s3_url=store.put_bytes("uploads/u/big.mp4", b"x" * 1001), prompts=["calm"])
    fits = Job(user_id="u", s3_url=store.put_bytes("uploads/u/fits.mp4", b"x" * 1000), prompts=["calm"])
    assert planner.max_video_bytes(big.s3_url) == 1000 and planner.max_video_bytes("local://uploads/v.mp4") == 100
    with Stubber(runtime) as stub:
        for _ in range(3):
            stub.add_response("converse", reply(GOOD))
        planner.plan_for_job(big, features, store)  # too large, no proxy: the features alone
        store.put_bytes(big.layout.proxy, b"p" * 500)
        planner.plan_for_job(big.model_copy(update={"attempt": 2}), features, store)  # its 360p proxy instead
        planner.plan_for_job(fits, features, store)
    first, second, third = (request["messages"][0]["content"][0] for request in runtime.sent)
    assert "video" not in first and first["text"].startswith("Measurements")
    assert second["video"]["source"] == {"s3Location": {"uri": store.uri(big.layout.proxy)}}
    assert third["video"]["source"] == {"s3Location": {"uri": fits.s3_url}}


def test_the_inline_default_keeps_the_base64_under_novas_25_mb(settings):
    assert settings.bedrock_inline_video_bytes * 4 / 3 < 25_000_000  # base64 is 4/3 of the bytes
    assert settings.bedrock_s3_video_bytes <= 1_000_000_000


def test_the_analyzer_makes_the_proxy_a_watching_planner_is_shown(services, short_video):
    """A planner that watches the video (max_video_bytes) gets the 360p proxy when the input is past
    its limit; an input past the stack's upload limit is refused before anything is downloaded."""
    from musicvid_core.domain.errors import BadInput
    from musicvid_core.stages.plan.planner import RulePlanner
    from musicvid_core.workflow import steps
    from musicvid_core.workflow.submit import submit_new

    class Watching(RulePlanner):
        def max_video_bytes(self, uri: str) -> int:
            return 1000

    services._cache[("planner", services.settings.planner)] = Watching(services.settings)
    uri = services.objects.put_file("uploads/tester/v.mp4", short_video.path, "video/mp4")
    job = submit_new(services, uri, "calm", "tester")
    steps.coordinator({"job_id": job.job_id, "attempt": 1, "action": "start"}, services)
    steps.analyzer({"job_id": job.job_id, "attempt": 1}, services)
    assert services.objects.size(job.layout.proxy) > 0
    job2 = submit_new(services, uri, "calm", "tester")
    steps.coordinator({"job_id": job2.job_id, "attempt": 1, "action": "start"}, services)
    services.settings = services.settings.model_copy(update={"max_input_bytes": 1000})
    with pytest.raises(BadInput, match="the limit is 1000"):
        steps.analyzer({"job_id": job2.job_id, "attempt": 1}, services)


def test_bedrock_clients_get_the_settings_timeouts(settings):
    settings = settings.model_copy(update={"model_read_timeout_s": 115.0, "model_max_attempts": 2})
    for cls in (BedrockPlanner, load_plugin(SUMMARIZERS, "summarizer", "bedrock")):
        config = cls(settings).client.meta.config
        assert config.read_timeout == 115.0 and config.retries == {"mode": "standard", "total_max_attempts": 2}
