"""The one AWS error mapping (adapters/aws/errors.py): every AWS adapter turns a dropped connection
into the error the workflow retries, and nothing escapes as a raw botocore exception.

The adapters get a fake client whose calls fail the way botocore does when the peer closes the
connection (``ConnectionClosedError``, which carries no ``response``: the case a drifted guard once
let through the summarizer, failing jobs whose mix had succeeded).
"""

from __future__ import annotations

import json

import pytest

botocore = pytest.importorskip("botocore")

from botocore.exceptions import ClientError, ConnectionClosedError, EventStreamError  # noqa: E402

from musicvid_core.adapters.aws.dynamodb import DynamoDBJobStore  # noqa: E402
from musicvid_core.adapters.aws.errors import aws_call  # noqa: E402
from musicvid_core.adapters.aws.links import S3Links  # noqa: E402
from musicvid_core.adapters.aws.s3 import S3ObjectStore  # noqa: E402
from musicvid_core.adapters.aws.stepfunctions import StepFunctionsLauncher  # noqa: E402
from musicvid_core.adapters.model.bedrock_planner import BedrockAgentPlanner, BedrockPlanner  # noqa: E402
from musicvid_core.adapters.model.bedrock_summary import BedrockSummarizer  # noqa: E402
from musicvid_core.adapters.model.sagemaker import SageMakerGenerator  # noqa: E402
from musicvid_core.domain.errors import (  # noqa: E402
    BadInput,
    ConfigurationError,
    MusicVidError,
    NotFound,
    TransientBackendError,
)
from musicvid_core.domain.features import Curve, Cut, MediaInfo, VideoFeatures  # noqa: E402
from musicvid_core.domain.job import Job  # noqa: E402
from musicvid_core.workflow.runner import PACKAGED_DEFINITION  # noqa: E402


class Unreachable:
    """A boto3 client whose calls (except those named in ``ok``, which answer ``{}``) fail with a
    closed connection."""

    def __init__(self, *ok: str) -> None:
        self.ok = set(ok)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            if name in self.ok:
                return {}
            raise ConnectionClosedError(endpoint_url=f"https://aws.invalid/{name}")

        return call


class ClosedStream:
    """InvokeAgent's answer whose completion stream drops mid-read."""

    def invoke_agent(self, **kwargs):
        def completion():
            yield {"chunk": {"bytes": b"{"}}
            raise ConnectionClosedError(endpoint_url="https://aws.invalid/stream")

        return {"completion": completion()}


@pytest.fixture
def aws_settings(settings):
    return settings.model_copy(update={
        "bucket": "mv-bucket", "sagemaker_endpoint": "musicgen-async", "bedrock_model_id": "m",
        "bedrock_summary_model_id": "s", "bedrock_agent_id": "a", "bedrock_agent_alias_id": "b"})


def _features() -> VideoFeatures:
    return VideoFeatures(media=MediaInfo(duration=8.0, width=320, height=180, fps=25, video_codec="h264"),
                         cuts=[Cut(time=4.0, strength=0.9)],
                         motion=Curve(times=[0, 8], values=[0.2, 0.4]), brightness=Curve(times=[0, 8], values=[0.5, 0.5]))


def _plan(settings):
    from musicvid_core.stages.plan.planner import RulePlanner

    return RulePlanner(settings).plan(_features(), "warm acoustic", 0)


JOB = Job(user_id="u", s3_url="s3://mv-bucket/uploads/u/v.mp4", prompts=["warm acoustic"])
RECORD = {"index": 0, "deadline": 1e12, "requests": [{"part": 0, "offset_s": 0.0, "length_s": 4.0,
                                                      "output": "s3://mv-bucket/out/0.json", "failure": None}]}

# adapter call -> a function of (settings) that makes the call against an unreachable client
CALLS = {
    "S3ObjectStore.put_bytes": lambda s: S3ObjectStore(Unreachable(), s.bucket).put_bytes("a/b.json", b"{}"),
    "S3ObjectStore.exists": lambda s: S3ObjectStore(Unreachable(), s.bucket).exists("a/b.json"),
    "S3ObjectStore.get_bytes": lambda s: S3ObjectStore(Unreachable("head_object"), s.bucket).get_bytes("a/b.json"),
    "S3ObjectStore.put_file": lambda s: S3ObjectStore(Unreachable(), s.bucket).put_file("a/b.bin", s.home),
    "S3ObjectStore.list": lambda s: S3ObjectStore(Unreachable(), s.bucket).list("a"),
    "S3ObjectStore.delete_prefix": lambda s: S3ObjectStore(Unreachable(), s.bucket).delete_prefix("a"),
    "DynamoDBJobStore.create": lambda s: DynamoDBJobStore(Unreachable(), "t").create(JOB),
    "DynamoDBJobStore.get": lambda s: DynamoDBJobStore(Unreachable(), "t").get(JOB.job_id),
    "DynamoDBJobStore.list_for_user": lambda s: DynamoDBJobStore(Unreachable(), "t").list_for_user("u"),
    "DynamoDBJobStore.unfinished": lambda s: DynamoDBJobStore(Unreachable(), "t").unfinished(),
    "StepFunctionsLauncher.start": lambda s: StepFunctionsLauncher(Unreachable(), "arn:sm").start(JOB),
    "S3Links.upload": lambda s: S3Links(S3ObjectStore(Unreachable(), s.bucket)).upload("a/b.mp4", "video/mp4", 10, 60),
    "S3Links.download": lambda s: S3Links(S3ObjectStore(Unreachable(), s.bucket)).download("a/b.mp4", 60),
    "SageMakerGenerator.submit (S3)": lambda s: SageMakerGenerator(s, runtime=Unreachable(), s3=Unreachable())
    .submit(_plan(s), 0, "p/", [0]),
    "SageMakerGenerator.submit (endpoint)": lambda s: SageMakerGenerator(s, runtime=Unreachable(),
                                                                         s3=Unreachable("put_object"))
    .submit(_plan(s), 0, "p/", [0]),
    "SageMakerGenerator.check": lambda s: SageMakerGenerator(s, runtime=Unreachable(), s3=Unreachable()).check(RECORD),
    "SageMakerGenerator.fetch": lambda s: SageMakerGenerator(s, runtime=Unreachable(), s3=Unreachable())
    .fetch(_plan(s), RECORD),
    "BedrockPlanner.plan": lambda s: BedrockPlanner(s, client=Unreachable()).plan(_features(), "warm", 0),
    "BedrockAgentPlanner.plan": lambda s: BedrockAgentPlanner(s, client=Unreachable()).plan(_features(), "warm", 0),
    "BedrockAgentPlanner.plan (stream)": lambda s: BedrockAgentPlanner(s, client=ClosedStream())
    .plan(_features(), "warm", 0),
    "BedrockSummarizer.summarize": lambda s: BedrockSummarizer(s, client=Unreachable()).summarize(JOB, _plan(s), {}),
}


def _retried_names() -> set[str]:
    """Error names that every pipeline Task of the packaged workflow retries (the failure handler,
    which retries States.ALL, aside)."""
    definition = json.loads(PACKAGED_DEFINITION.read_text())

    def tasks(machine):
        for state in machine["States"].values():
            if state["Type"] == "Task" and state.get("Retry"):
                yield state
            for key in ("ItemProcessor", "Iterator"):
                if key in state:
                    yield from tasks(state[key])

    per_task = [{n for r in t["Retry"] for n in r["ErrorEquals"]} for t in tasks(definition)]
    per_task = [names for names in per_task if "States.ALL" not in names]
    assert len(per_task) >= 5  # Start, Analyze, GenerateSegment, Mix, Summarize
    return set.intersection(*per_task)


@pytest.mark.parametrize("call", list(CALLS), ids=list(CALLS))
def test_a_closed_connection_is_the_error_the_workflow_retries(call, aws_settings):
    with pytest.raises(MusicVidError) as info:
        CALLS[call](aws_settings)
    assert type(info.value) is TransientBackendError, repr(info.value)
    assert isinstance(info.value.__cause__, ConnectionClosedError)  # the original kept for the logs
    assert "ConnectionClosedError" in str(info.value)
    assert type(info.value).__name__ in _retried_names()


def test_the_mapping_sorts_aws_answers_and_leaves_bugs_alone():
    def client_error(code, status, cls=ClientError):
        return cls({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    cases = [(client_error("NoSuchKey", 404), NotFound), (client_error("ValidationException", 400), BadInput),
             (client_error("AccessDeniedException", 403), ConfigurationError),
             (client_error("ProvisionedThroughputExceededException", 400), TransientBackendError),
             # event streams spell their codes with a lower-case first letter
             (client_error("throttlingException", 400, EventStreamError), TransientBackendError)]
    for raised, expected in cases:
        with pytest.raises(MusicVidError) as info, aws_call("op"):
            raise raised
        assert type(info.value) is expected, raised
    # boto3's upload manager re-raises a ClientError without its response: the wrapped one decides
    from boto3.exceptions import S3UploadFailedError

    with pytest.raises(TransientBackendError), aws_call("S3 upload"):
        try:
            raise client_error("SlowDown", 503)
        except ClientError:
            raise S3UploadFailedError("Failed to upload: SlowDown") from None
    with pytest.raises(KeyError), aws_call("op"):  # our own bug keeps its type and traceback
        raise KeyError("Body")
    with pytest.raises(NotFound, match="mine"), aws_call("op"):  # the error tree passes as it is
        raise NotFound("mine")
