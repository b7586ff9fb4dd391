"""The model backends as stack parameters: which planner, generator and summarizer the functions run,
the IAM statements each choice needs (emitted under a CloudFormation condition, so a role holds them
only when the backend is chosen), and the SageMaker async endpoint's autoscaling.

Switching a backend is a ``sam deploy --parameter-overrides`` away (docs/deploy.md, "Switching a
backend"); nothing is rebuilt. ``build_template.py`` merges what this module returns.

Bedrock, cross-Region inference: a ``us.`` (``eu.``, ``apac.`` ...) inference profile is invoked by
its profile ARN in the stack's Region and served by the foundation model in any of the profile's
destination Regions, so the role needs ``bedrock:InvokeModel`` on the profile ARN *and* on the
foundation-model ARN in every destination Region (AWS's "Prerequisites for inference profiles").
``BedrockProfile`` empty means the model is invoked directly, in the stack's Region only.

SageMaker: the endpoint is created outside the stack (infra/sagemaker/README.md); its name is a
parameter, lower case because SageMaker lower-cases endpoint ARNs and IAM compares them as written.
It writes its outputs and failures under two prefixes of the media bucket; the AudioGenerator reads
and lists them (without ListBucket a HEAD on a not-yet-written output is 403, not 404, and the first
poll would fail the job).
"""

from __future__ import annotations

MAX_BEDROCK_REGIONS = 8  # destination Regions of one profile the template can name (EU profiles: 7)

PARAMETERS: dict[str, dict] = {
    "Planner": {"Type": "String", "Default": "rules", "AllowedValues": ["rules", "bedrock"],
                "Description": "rules (measured features, offline) or bedrock (Converse with the video)"},
    "Generator": {"Type": "String", "Default": "procedural", "AllowedValues": ["procedural", "library", "sagemaker"],
                  "Description": "procedural (SoundFont), library (recordings under LibraryPrefix) or "
                                 "sagemaker (the async MusicGen endpoint SageMakerEndpoint)"},
    "Summarizer": {"Type": "String", "Default": "template", "AllowedValues": ["template", "bedrock"],
                   "Description": "template (offline) or bedrock (a Converse text model)"},
    "BedrockProfile": {"Type": "String", "Default": "us", "AllowedPattern": "^[a-z-]{0,16}$",
                       "Description": "cross-Region inference profile prefix (us, eu, apac ...); empty: invoke "
                                      "the models directly in this Region"},
    "BedrockRegions": {"Type": "CommaDelimitedList", "Default": "us-east-1,us-east-2,us-west-2",
                       "Description": f"the profile's destination Regions (at most {MAX_BEDROCK_REGIONS}; AWS "
                                      "lists them per profile): the roles may invoke the model there"},
    "PlannerModel": {"Type": "String", "Default": "amazon.nova-pro-v1:0", "AllowedPattern": r"^[a-z0-9.:-]+$",
                     "Description": "planner bedrock: the foundation model id (video input: Nova Pro / Lite)"},
    "SummaryModel": {"Type": "String", "Default": "anthropic.claude-sonnet-4-20250514-v1:0",
                     "AllowedPattern": r"^[a-z0-9.:-]+$",
                     "Description": "summarizer bedrock: the foundation model id"},
    "SageMakerEndpoint": {"Type": "String", "Default": "musicvid-musicgen", "AllowedPattern": r"^[a-z0-9](-*[a-z0-9]){0,62}$",
                          "Description": "generator sagemaker: the async endpoint's name (infra/sagemaker/README.md; "
                                         "lower case: SageMaker lower-cases its ARN, which IAM compares as written)"},
    "SageMakerVariant": {"Type": "String", "Default": "AllTraffic", "Description": "the endpoint's production variant"},
    "SageMakerOutputPrefix": {"Type": "String", "Default": "sagemaker/out/",
                              "AllowedPattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/$",
                              "Description": "where the endpoint writes outputs, in the media bucket (its "
                                            "AsyncInferenceConfig OutputPath)"},
    "SageMakerFailurePrefix": {"Type": "String", "Default": "sagemaker/fail/",
                               "AllowedPattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/$",
                               "Description": "where the endpoint writes failures, in the media bucket"},
    "SageMakerMinInstances": {"Type": "Number", "Default": 0, "MinValue": 0,
                              "Description": "autoscaling floor (0: scale to zero when idle)"},
    "SageMakerMaxInstances": {"Type": "Number", "Default": 2, "MinValue": 1},
    "SageMakerBacklogPerInstance": {"Type": "Number", "Default": 2, "MinValue": 1,
                                    "Description": "target tracking: queued requests per instance"},
    "LibraryPrefix": {"Type": "String", "Default": "library/", "AllowedPattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/$",
                      "Description": "generator library: the recordings' prefix in the media bucket"},
}

CONDITIONS: dict[str, dict] = {
    "BedrockPlanner": {"Fn::Equals": [{"Ref": "Planner"}, "bedrock"]},
    "BedrockSummarizer": {"Fn::Equals": [{"Ref": "Summarizer"}, "bedrock"]},
    "SageMakerGenerator": {"Fn::Equals": [{"Ref": "Generator"}, "sagemaker"]},
    "LibraryGenerator": {"Fn::Equals": [{"Ref": "Generator"}, "library"]},
    "CrossRegionProfile": {"Fn::Not": [{"Fn::Equals": [{"Ref": "BedrockProfile"}, ""]}]},
    "BedrockPlannerViaProfile": {"Fn::And": [{"Condition": "BedrockPlanner"}, {"Condition": "CrossRegionProfile"}]},
    "BedrockSummarizerViaProfile": {"Fn::And": [{"Condition": "BedrockSummarizer"}, {"Condition": "CrossRegionProfile"}]},
}


def _when(condition: str, statement: dict) -> dict:
    """``statement`` only where ``condition`` holds (an IAM statement list element)."""
    return {"Fn::If": [condition, statement, {"Ref": "AWS::NoValue"}]}


def _bucket(suffix: str) -> dict:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{MediaBucket}}{suffix}"}


def model_id(model_param: str) -> dict:
    """What the functions pass as ``modelId``: ``PROFILE.MODEL`` or the bare model id."""
    return {"Fn::If": ["CrossRegionProfile", {"Fn::Sub": f"${{BedrockProfile}}.${{{model_param}}}"},
                       {"Ref": model_param}]}


def _bedrock_invoke(model_param: str, chosen: str) -> list[dict]:
    """Under condition ``chosen``: InvokeModel on the profile (in this Region) and the foundation
    model in each destination Region, or on the foundation model in this Region without a profile."""
    profile = {"Fn::Sub": f"arn:${{AWS::Partition}}:bedrock:${{AWS::Region}}:${{AWS::AccountId}}:"
                          f"inference-profile/${{BedrockProfile}}.${{{model_param}}}"}
    # The list padded with this Region, so that Select never runs past a short list.
    padded = {"Fn::Split": [",", {"Fn::Join": [",", [{"Fn::Join": [",", {"Ref": "BedrockRegions"}]},
                                                     *[{"Ref": "AWS::Region"}] * MAX_BEDROCK_REGIONS]]}]}
    model_arn = f"arn:${{AWS::Partition}}:bedrock:${{R}}::foundation-model/${{{model_param}}}"
    destinations = [{"Fn::Sub": [model_arn, {"R": {"Fn::Select": [i, padded]}}]} for i in range(MAX_BEDROCK_REGIONS)]
    here = {"Fn::Sub": f"arn:${{AWS::Partition}}:bedrock:${{AWS::Region}}::foundation-model/${{{model_param}}}"}
    return [
        _when(f"{chosen}ViaProfile", {"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": profile}),
        _when(chosen, {"Effect": "Allow", "Action": "bedrock:InvokeModel",
                       "Resource": {"Fn::If": ["CrossRegionProfile", destinations, [here]]}}),
    ]


def _sagemaker_invoke() -> dict:
    return {"Effect": "Allow", "Action": "sagemaker:InvokeEndpointAsync",
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:"
                                    "endpoint/${SageMakerEndpoint}"}}


def _read_prefixes(*params: str) -> list[dict]:
    """GetObject under the prefixes named by ``params`` and ListBucket limited to them."""
    return [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": [_bucket(f"/${{{p}}}*") for p in params]},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": _bucket(""),
             "Condition": {"StringLike": {"s3:prefix": [{"Fn::Sub": f"${{{p}}}*"} for p in params]}}}]


def statements(fn: str) -> list[dict]:
    """The conditional IAM statements function ``fn`` (a Chalice logical id) gets for the backends."""
    out: list[dict] = []
    if fn == "Analyzer":  # plans (bedrock), queues every segment at the endpoint (sagemaker)
        out += _bedrock_invoke("PlannerModel", "BedrockPlanner")
        out.append(_when("SageMakerGenerator", _sagemaker_invoke()))
        out += [_when("LibraryGenerator", s) for s in _read_prefixes("LibraryPrefix")]
    elif fn == "AudioGenerator":  # submits what the Analyzer could not, polls and reads the outputs
        out.append(_when("SageMakerGenerator", _sagemaker_invoke()))
        out += [_when("SageMakerGenerator", s) for s in _read_prefixes("SageMakerOutputPrefix", "SageMakerFailurePrefix")]
        out += [_when("LibraryGenerator", s) for s in _read_prefixes("LibraryPrefix")]
    elif fn == "Coordinator":  # writes the summary
        out += _bedrock_invoke("SummaryModel", "BedrockSummarizer")
    return out


def environment() -> dict:
    """What every step function is told about the backends (Settings fields, MUSICVID_*)."""
    return {"MUSICVID_PLANNER": {"Ref": "Planner"}, "MUSICVID_GENERATOR": {"Ref": "Generator"},
            "MUSICVID_SUMMARIZER": {"Ref": "Summarizer"},
            "MUSICVID_BEDROCK_MODEL_ID": model_id("PlannerModel"),
            "MUSICVID_BEDROCK_SUMMARY_MODEL_ID": model_id("SummaryModel"),
            "MUSICVID_SAGEMAKER_ENDPOINT": {"Ref": "SageMakerEndpoint"},
            # the library generator's recordings (the track editor's generator reads this name)
            "MUSICVID_LIBRARY_URI": {"Fn::Sub": "s3://${MediaBucket}/${LibraryPrefix}"}}


def autoscaling() -> dict:
    """The async endpoint's autoscaling, AWS's recipe for asynchronous endpoints: target tracking on
    ``ApproximateBacklogSizePerInstance`` (scales out with the queue and back in to
    SageMakerMinInstances, 0 by default), plus a step-scaling policy woken by an alarm on
    ``HasBacklogWithoutCapacity``: target tracking alone cannot leave zero instances, where the
    per-instance backlog is undefined, so a small job would wait until its deadline. Created only
    with Generator=sagemaker; the endpoint must exist first (registering its variant checks it)."""
    endpoint = [{"Name": "EndpointName", "Value": {"Ref": "SageMakerEndpoint"}}]
    return {
        "SageMakerScalableTarget": {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Condition": "SageMakerGenerator",
                                    "Properties": {
            "ServiceNamespace": "sagemaker", "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "ResourceId": {"Fn::Sub": "endpoint/${SageMakerEndpoint}/variant/${SageMakerVariant}"},
            "MinCapacity": {"Ref": "SageMakerMinInstances"}, "MaxCapacity": {"Ref": "SageMakerMaxInstances"}}},
        "SageMakerBacklogTracking": {"Type": "AWS::ApplicationAutoScaling::ScalingPolicy", "Condition": "SageMakerGenerator",
                                     "Properties": {
            "PolicyName": {"Fn::Sub": "${AWS::StackName}-backlog-per-instance"}, "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": {"Ref": "SageMakerScalableTarget"},
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": {"Ref": "SageMakerBacklogPerInstance"},
                "CustomizedMetricSpecification": {"MetricName": "ApproximateBacklogSizePerInstance",
                                                  "Namespace": "AWS/SageMaker", "Dimensions": endpoint,
                                                  "Statistic": "Average"},
                "ScaleInCooldown": 600, "ScaleOutCooldown": 300}}},
        "SageMakerWakeFromZero": {"Type": "AWS::ApplicationAutoScaling::ScalingPolicy", "Condition": "SageMakerGenerator",
                                  "Properties": {
            "PolicyName": {"Fn::Sub": "${AWS::StackName}-backlog-without-capacity"}, "PolicyType": "StepScaling",
            "ScalingTargetId": {"Ref": "SageMakerScalableTarget"},
            "StepScalingPolicyConfiguration": {"AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Average",
                                               "Cooldown": 300,
                                               "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]}}},
        "SageMakerBacklogWithoutCapacityAlarm": {"Type": "AWS::CloudWatch::Alarm", "Condition": "SageMakerGenerator",
                                                 "Properties": {
            "AlarmDescription": "requests queued at the async endpoint while it has no instance: add one",
            "Namespace": "AWS/SageMaker", "MetricName": "HasBacklogWithoutCapacity", "Dimensions": endpoint,
            "Statistic": "Average", "Period": 60, "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "missing",
            "AlarmActions": [{"Ref": "SageMakerWakeFromZero"}]}},
    }
