"""Write the CloudFormation merge template for ``chalice package --merge-template`` (``make package``).

Chalice generates the REST API and six zip functions (APIHandler + five step Lambdas); this adds
what the app runs on, and wires it in by merging into Chalice's own resources:

- S3 bucket (SSE AES256, public access blocked, TLS only, CORS for browser POST uploads, lifecycle),
- DynamoDB job table (``job_id`` key, GSI ``by_user`` = user_id + created_key, PITR, conditional writes
  are the adapter's), Cognito user pool + app client (the API's authorizer and the app's JWT check),
- the Step Functions state machine *from musicvid_core/workflow/workflow.asl.json* with DefinitionSubstitutions to
  the step functions' ARNs (the one definition, embedded at build time),
- one least-privilege IAM role per function, plus the model backends' statements only where the
  ``Planner`` / ``Generator`` / ``Summarizer`` parameters choose them (infra/stack_backends.py), and the
  SageMaker async endpoint's autoscaling when the generator is ``sagemaker``,
- API Gateway DEFAULT_4XX/5XX responses with CORS headers and a JSON ``{"error", "message"}`` body,
  inside the API definition (``x-amazon-apigateway-gateway-responses``: SAM can drop separate
  GatewayResponse resources beside a DefinitionBody on redeploy),
- the size limits (LIMITS) in every function's environment, the media functions' /tmp sized from them,
  and the model clients' timeouts fitted inside each function's timeout (MODEL_CALLS),
- the three media steps (analyzer, audio_generator, av_operator) as **container-image** functions
  (PackageType Image, ``ImageUri`` = the ``MediaImageUri`` parameter, one image built from
  infra/lambda-media/Dockerfile, the step chosen by ImageConfig.Command): their media stack is over
  Lambda's 250 MB zip limit, and Chalice builds zips only. A merge cannot delete Chalice's zip
  properties (CodeUri, Handler, Runtime), so ``--finalize`` replaces those three resources in the
  packaged template wholesale, keeping their logical ids (roles, state machine unchanged),
- the web app's static site (infra/static_site.py): a private S3 bucket behind CloudFront with
  origin access control and security headers, the Cognito hosted UI domain, the app client as a
  public code + PKCE client back to the site, and the site's origin as the one CORS origin of the
  API (Lambda, Chalice's preflight, which ``--finalize`` rewrites, the gateway responses) and of
  the media bucket; the ``WebConfig`` output is the page's config.json.

Usage (``make package`` runs both)::

    python infra/build_template.py MERGE.json   # MUSICVID_CORS_ORIGIN=https://app.example: another origin
    python infra/build_template.py --finalize build/package/sam.json   # after chalice package
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import static_site
from stack_backends import CONDITIONS, PARAMETERS, autoscaling, environment, statements

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent
if str(ROOT) not in sys.path:  # musicvid_core's Settings: the limits below must be valid settings
    sys.path.insert(0, str(ROOT))
from musicvid_core.adapters.aws.client import CONNECT_TIMEOUT_S  # noqa: E402
from musicvid_core.settings import Settings  # noqa: E402

# The Lambda runtime of the zip functions and the media image's base: the newest Python that Lambda,
# Chalice (1.34 maps it to cp314 wheels), every dependency's manylinux wheels and AWS's base images
# offer. `make package` runs infra/chalice_package.py, which makes Chalice package for it whatever
# Python runs the build; the Dockerfile's FROM must name it too (tests/test_aws_infra.py).
RUNTIME = "python3.14"
STEPS = {"Coordinator": "Coordinator", "Analyzer": "Analyzer", "AudioGenerator": "AudioGenerator",
         "AVOperator": "AvOperator", "FailureHandler": "FailureHandler"}  # ASL step -> Chalice logical id
FUNCTIONS = ["APIHandler", *STEPS.values()]
HANDLER_MODULE = "musicvid_core.lambda_handler"  # the image's entry points
# Chalice logical id -> the image function's step, and what it gets. Memory buys CPU too (1769 MB
# = 1 vCPU, 10240 MB = 6); timeouts are Lambda's maximum, as the ASL's TimeoutSeconds; /tmp holds
# the downloaded input and what the step writes before uploading it. See docs/deploy.md.
MEDIA_FUNCTIONS: dict[str, dict] = {
    # probe + OpenCV decode (scenes, motion) + audio features; a preview also encodes the 360p proxy
    "Analyzer": {"step": "analyzer", "MemorySize": 4096, "Timeout": 900, "EphemeralStorage": 4096},
    # one segment per invocation (the ASL's Map, 4 at a time): MIDI + SoundFont render + fx, one WAV
    "AudioGenerator": {"step": "audio_generator", "MemorySize": 2048, "Timeout": 900, "EphemeralStorage": 1024},
    # input video + every clip + the output (+ stems) on /tmp; ffmpeg's encoder threads use the vCPUs
    "AvOperator": {"step": "av_operator", "MemorySize": 6144, "Timeout": 900, "EphemeralStorage": 10240},
}
ZIP_FUNCTIONS = [fn for fn in FUNCTIONS if fn not in MEDIA_FUNCTIONS]  # Chalice's deployment.zip
CHALICE_NAMES = {"APIHandler": "api_handler", "Coordinator": "coordinator", "FailureHandler": "failure_handler"}

# The stack's size limits, in one place: every function's environment (Settings: the API signs the
# upload form's content-length-range from MUSICVID_MAX_INPUT_BYTES, the Analyzer refuses a longer
# video) and the media functions' /tmp, computed from them by tmp_bytes(). Lambda's /tmp is at most
# 10240 MB: 2 GiB and 30 min is what the AvOperator's input + output + float WAVs fit in.
LIMITS = {"MUSICVID_MAX_INPUT_BYTES": 2 * 1024**3, "MUSICVID_MAX_DURATION_S": 1800}
MAX_TMP_MB = 10240
WAV_BYTES_PER_S = Settings.model_fields["sample_rate"].default * 2 * 4  # the float32 stereo WAVs the steps write
PROXY_BYTES_PER_S = 375_000  # the 360p proxy (x264 ultrafast, CRF 30): under 3 Mbit/s
SPEECH_BYTES_PER_S = 32_000  # the analysis' 16 kHz mono s16 extract for speech detection
TMP_MARGIN = 256 * 2**20

# Model calls a function makes in one invocation (Bedrock Converse: the plan and at most one repair;
# the summary; SageMaker InvokeEndpointAsync of a segment's pieces) and the seconds it keeps for its
# own work. model_timeouts() fits every attempt of every call in what is left of the timeout.
MODEL_CALLS = {"Analyzer": {"calls": 2, "reserve_s": 360}, "AudioGenerator": {"calls": 4, "reserve_s": 300},
               "Coordinator": {"calls": 1, "reserve_s": 60}}
MODEL_ATTEMPTS = 2  # botocore standard mode: the first try and one retry
RETRY_BACKOFF_S = 20  # botocore standard mode's longest backoff between attempts


def limits(env: dict | None = None) -> Settings:
    """LIMITS as Settings read them (ValueError if Settings would refuse them)."""
    return Settings(**{k.removeprefix("MUSICVID_").lower(): v for k, v in {**LIMITS, **(env or {})}.items()})


def tmp_bytes(fn: str, settings: Settings | None = None) -> int:
    """Bytes of /tmp media function ``fn`` needs at the stack's limits: the Analyzer the input, the
    proxy and the speech extract; the AvOperator the input, the output (the video stream copied: as
    large as the input) and eight float WAVs as long as the video (clips, pre-master, master, up to
    four stems, the unducked music); the AudioGenerator one clip."""
    s = settings or limits()
    size, duration = s.max_input_bytes, s.max_duration_s
    need = {"Analyzer": size + (PROXY_BYTES_PER_S + SPEECH_BYTES_PER_S) * duration,
            "AvOperator": 2 * size + 8 * WAV_BYTES_PER_S * duration,
            "AudioGenerator": WAV_BYTES_PER_S * duration}[fn]
    return int(need + TMP_MARGIN)


def ephemeral_mb(fn: str) -> int:
    """/tmp (MB) of media function ``fn``: what tmp_bytes needs, at least the configured floor.
    ValueError when the limits need more than Lambda's 10240 MB."""
    mb = max(MEDIA_FUNCTIONS[fn]["EphemeralStorage"], math.ceil(tmp_bytes(fn) / 2**20))
    if mb > MAX_TMP_MB:
        raise ValueError(f"{fn} would need {mb} MB of /tmp for LIMITS {LIMITS}; Lambda allows {MAX_TMP_MB}")
    return mb


def function_timeout(fn: str) -> int:
    """The timeout (s) function ``fn`` runs with: MEDIA_FUNCTIONS, or .chalice/config.json's."""
    if fn in MEDIA_FUNCTIONS:
        return MEDIA_FUNCTIONS[fn]["Timeout"]
    config = json.loads((ROOT / "chalice_app" / ".chalice" / "config.json").read_text())
    stage = config["stages"]["dev"]
    return int(stage["lambda_functions"].get(CHALICE_NAMES[fn], {}).get("lambda_timeout", stage["lambda_timeout"]))


def model_timeouts(fn: str) -> dict:
    """MUSICVID_MODEL_READ_TIMEOUT_S / _MAX_ATTEMPTS for function ``fn``: the longest read timeout
    with which ``calls`` x (attempts x (connect + read) + backoffs) + ``reserve_s`` <= its timeout."""
    spec = MODEL_CALLS[fn]
    per_call = (function_timeout(fn) - spec["reserve_s"]) / spec["calls"] - (MODEL_ATTEMPTS - 1) * RETRY_BACKOFF_S
    read = math.floor(per_call / MODEL_ATTEMPTS - CONNECT_TIMEOUT_S)
    if read < 30:
        raise ValueError(f"{fn}: {read} s is too short a model read timeout; give it a longer timeout")
    return {"MUSICVID_MODEL_READ_TIMEOUT_S": str(read), "MUSICVID_MODEL_MAX_ATTEMPTS": str(MODEL_ATTEMPTS)}


def _arn(resource: str, suffix: str = "") -> dict:
    return {"Fn::Sub": f"${{{resource}.Arn}}{suffix}"}


def _bucket(suffix: str) -> dict:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{MediaBucket}}{suffix}"}


TABLE = _arn("JobsTable")
INDEX = _arn("JobsTable", "/index/*")
# UpdateItem: the per-user count of active jobs changes in the same TransactWriteItems as the job
# (adapters/aws/dynamodb.py); a transaction needs the rights of each of its writes.
JOBS_RW = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
# Without ListBucket, S3 answers a read of a missing key with 403 instead of 404: every "is it
# there yet?" (cached features, the preview proxy, a previous attempt's files) would fail the job.
LIST_JOBS = {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": _bucket(""),
             "Condition": {"StringLike": {"s3:prefix": "jobs/*"}}}
LIST_ALL = {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": _bucket(""),
            "Condition": {"StringLike": {"s3:prefix": ["jobs/*", "uploads/*"]}}}

# What each function may do, and nothing more.
POLICIES: dict[str, list[dict]] = {
    "APIHandler": [
        # presigned POST/GET are signed with this role: it must itself be allowed what they grant
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": _bucket("/uploads/*")},
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [_bucket("/uploads/*"), _bucket("/jobs/*")]},
        LIST_ALL,
        {"Effect": "Allow", "Action": [*JOBS_RW, "dynamodb:Query"], "Resource": [TABLE, INDEX]},
        {"Effect": "Allow", "Action": ["states:StartExecution"], "Resource": {"Ref": "StateMachine"}},
    ],
    "Coordinator": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:DeleteObject"], "Resource": _bucket("/jobs/*")},
        LIST_JOBS,
        {"Effect": "Allow", "Action": JOBS_RW, "Resource": TABLE},
    ],
    "Analyzer": [  # reads the upload, and the job's cache and earlier attempts (re-roll, conversation)
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [_bucket("/uploads/*"), _bucket("/jobs/*")]},
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": _bucket("/jobs/*")},
        LIST_ALL,
        {"Effect": "Allow", "Action": JOBS_RW, "Resource": TABLE},
    ],
    "AudioGenerator": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": _bucket("/jobs/*")},
        LIST_JOBS,
        {"Effect": "Allow", "Action": JOBS_RW, "Resource": TABLE},
    ],
    "AvOperator": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [_bucket("/uploads/*"), _bucket("/jobs/*")]},
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": _bucket("/jobs/*")},
        LIST_ALL,
        {"Effect": "Allow", "Action": JOBS_RW, "Resource": TABLE},
    ],
    "FailureHandler": [
        {"Effect": "Allow", "Action": ["s3:DeleteObject"], "Resource": _bucket("/jobs/*")},
        LIST_JOBS,
        {"Effect": "Allow", "Action": JOBS_RW, "Resource": TABLE},
    ],
}


def _role(name: str, statements: list[dict], service: str = "lambda.amazonaws.com") -> dict:
    role = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": f"musicvid-{name}",
                      "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}]}}
    if service == "lambda.amazonaws.com":
        role["Properties"]["ManagedPolicyArns"] = [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}]
    return role


def media_function(fn: str, env: dict) -> dict:
    """The container-image definition of media function ``fn`` (a key of MEDIA_FUNCTIONS)."""
    spec = MEDIA_FUNCTIONS[fn]
    return {"Type": "AWS::Serverless::Function", "Properties": {
        "PackageType": "Image", "ImageUri": {"Ref": "MediaImageUri"},
        "ImageConfig": {"Command": [f"{HANDLER_MODULE}.{spec['step']}"]},
        "Architectures": ["x86_64"],  # the image is built --platform linux/amd64
        "MemorySize": spec["MemorySize"], "Timeout": spec["Timeout"],
        "EphemeralStorage": {"Size": ephemeral_mb(fn)},
        "Tracing": "PassThrough", "Role": _arn(f"{fn}Role"), "Environment": {"Variables": env}}}


def template(cors_origin: str = "") -> dict:
    """The merge template; ``cors_origin`` is the CorsOrigin parameter's default (empty: the web
    app's own CloudFront domain, static_site.SITE_ORIGIN)."""
    issuer = {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"}
    env = {"MUSICVID_BUCKET": {"Ref": "MediaBucket"}, "MUSICVID_TABLE": {"Ref": "JobsTable"},
           "MUSICVID_REGION": {"Ref": "AWS::Region"}, "MUSICVID_AUTH_ISSUER": issuer,
           "MUSICVID_AUTH_AUDIENCE": {"Ref": "UserPoolClient"},
           "MUSICVID_AUTH_JWKS_URL": {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}/.well-known/jwks.json"},
           "MUSICVID_CORS_ORIGIN": static_site.origin_expr(),
           "MUSICVID_OBJECT_STORE": "s3", "MUSICVID_JOB_STORE": "dynamodb", "MUSICVID_LAUNCHER": "stepfunctions",
           "MUSICVID_MAX_ACTIVE_JOBS": {"Ref": "MaxActiveJobs"},
           "MUSICVID_HOME": "/tmp/musicvid",  # only /tmp is writable on Lambda (the image sets the same)
           **{k: str(v) for k, v in LIMITS.items()}}
    resources: dict = {
        "MediaBucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                        "Properties": {
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "CorsConfiguration": {"CorsRules": [{"AllowedMethods": ["POST", "GET"], "AllowedOrigins": [static_site.origin_expr()],
                                                 "AllowedHeaders": ["*"], "MaxAge": 600}]},
            "LifecycleConfiguration": {"Rules": [
                {"Id": "abort-incomplete-uploads", "Status": "Enabled",
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
                {"Id": "expire-uploads", "Status": "Enabled", "Prefix": "uploads/",
                 "ExpirationInDays": {"Ref": "UploadRetentionDays"}},
                {"Id": "expire-job-outputs", "Status": "Enabled", "Prefix": "jobs/",
                 "ExpirationInDays": {"Ref": "OutputRetentionDays"}},
            ]}}},
        "MediaBucketPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {
            "Bucket": {"Ref": "MediaBucket"},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                 "Resource": [_bucket(""), _bucket("/*")], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}}},
        "JobsTable": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                      "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in ("job_id", "user_id", "created_key")],
            "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
            "GlobalSecondaryIndexes": [{"IndexName": "by_user", "Projection": {"ProjectionType": "ALL"},
                                        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                                                      {"AttributeName": "created_key", "KeyType": "RANGE"}]}],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True}}},
        "UserPool": {"Type": "AWS::Cognito::UserPool", "Properties": {
            "UserPoolName": {"Fn::Sub": "${AWS::StackName}-users"},
            "UsernameAttributes": ["email"], "AutoVerifiedAttributes": ["email"],
            "Policies": {"PasswordPolicy": {"MinimumLength": 12, "RequireLowercase": True, "RequireNumbers": True,
                                            "RequireUppercase": True, "RequireSymbols": False}}}},
        "UserPoolClient": {"Type": "AWS::Cognito::UserPoolClient", "Properties": {
            "UserPoolId": {"Ref": "UserPool"}, **static_site.app_client_oauth(),
            "ExplicitAuthFlows": ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            "PreventUserExistenceErrors": "ENABLED", "IdTokenValidity": 60, "AccessTokenValidity": 60,
            "TokenValidityUnits": {"IdToken": "minutes", "AccessToken": "minutes"}}},
        "StateMachineRole": _role("states", [
            {"Effect": "Allow", "Action": "lambda:InvokeFunction",
             "Resource": [_arn(f) for f in STEPS.values()] + [_arn(f, ":*") for f in STEPS.values()]}],
            service="states.amazonaws.com"),
        "StateMachine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
            "RoleArn": _arn("StateMachineRole"),
            "Definition": json.loads((INFRA.parent / "musicvid_core" / "workflow" / "workflow.asl.json").read_text()),
            "DefinitionSubstitutions": {f"{step}FunctionArn": _arn(fn) for step, fn in STEPS.items()}}},
        "RestAPI": {"Properties": {
            "DefinitionBody": {
                "securityDefinitions": {"MusicvidUsers": {
                    "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": [_arn("UserPool")]}}},
                # In the definition, not as separate GatewayResponse resources, which SAM can drop or
                # lose on redeploy beside a DefinitionBody: a 401 from the authorizer must reach the
                # browser with CORS headers, or the web app sees an opaque network error.
                "x-amazon-apigateway-gateway-responses": {kind: _gateway_response() for kind in
                                                          ("DEFAULT_4XX", "DEFAULT_5XX")}},
            # Stage throttling: past it API Gateway answers 429 (THROTTLED, a DEFAULT_4XX: JSON with
            # CORS below) before any Lambda runs. Per user, the app caps active jobs (MaxActiveJobs).
            "MethodSettings": [{"ResourcePath": "/*", "HttpMethod": "*",
                                "ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
                                "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}}]}},
    }
    step_env = {**{k: v for k, v in env.items() if "AUTH" not in k and "CORS" not in k}, **environment()}
    for fn in FUNCTIONS:
        resources[f"{fn}Role"] = _role(fn, POLICIES[fn] + statements(fn))
        fn_env = dict(env if fn == "APIHandler" else step_env)
        if fn in MODEL_CALLS:
            fn_env.update(model_timeouts(fn))
        if fn in MEDIA_FUNCTIONS:  # complete definitions; --finalize drops Chalice's zip properties
            resources[fn] = media_function(fn, fn_env)
        else:  # merged into Chalice's zip functions
            resources[fn] = {"Properties": {"Role": _arn(f"{fn}Role"), "Environment": {"Variables": fn_env}}}
    resources.update(autoscaling())
    resources.update(static_site.resources())
    resources["APIHandler"]["Properties"]["Environment"]["Variables"]["MUSICVID_STATE_MACHINE_ARN"] = {"Ref": "StateMachine"}
    return {
        "Conditions": {**CONDITIONS, **static_site.CONDITIONS},
        "Parameters": {
            "MediaImageUri": {"Type": "String", "AllowedPattern": r"^\S+\.dkr\.ecr\.\S+/\S+(:|@)\S+$",
                              "Description": "the media image (infra/lambda-media/Dockerfile) pushed to ECR in this "
                                             "account and region, as REPO_URI:TAG or REPO_URI@sha256:DIGEST; a new "
                                             "tag per build, or CloudFormation sees no change (docs/deploy.md)"},
            **static_site.PARAMETERS,
            "CorsOrigin": {**static_site.PARAMETERS["CorsOrigin"], "Default": cors_origin},
            "UploadRetentionDays": {"Type": "Number", "Default": 30, "MinValue": 1},
            "OutputRetentionDays": {"Type": "Number", "Default": 90, "MinValue": 1},
            "ApiRateLimit": {"Type": "Number", "Default": 50, "MinValue": 1,
                             "Description": "API Gateway stage: requests per second, all users (429 beyond)"},
            "ApiBurstLimit": {"Type": "Number", "Default": 100, "MinValue": 1,
                              "Description": "API Gateway stage: requests in one burst, all users"},
            "MaxActiveJobs": {"Type": "Number", "Default": 20, "MinValue": 1,
                              "Description": "a user's jobs SCHEDULED + PROCESSING at once (429 too_many_jobs beyond)"},
            **PARAMETERS,
        },
        "Resources": resources,
        "Outputs": {"UserPoolId": {"Value": {"Ref": "UserPool"}},
                    "UserPoolClientId": {"Value": {"Ref": "UserPoolClient"}},
                    "BucketName": {"Value": {"Ref": "MediaBucket"}},
                    "StateMachineArn": {"Value": {"Ref": "StateMachine"}},
                    **static_site.outputs(LIMITS["MUSICVID_MAX_INPUT_BYTES"])},
    }


def _gateway_response() -> dict:
    """An API Gateway response (authorizer 401/403, throttling 429, integration 5xx) with CORS
    headers and the API's JSON error shape."""
    return {"responseParameters": {
                "gatewayresponse.header.Access-Control-Allow-Origin": static_site.origin_expr(quoted=True),
                "gatewayresponse.header.Access-Control-Allow-Headers": "'Authorization,Content-Type'",
                "gatewayresponse.header.Vary": "'Origin'"},
            "responseTemplates": {"application/json":
                                  '{"error": "$context.error.responseType", "message": $context.error.messageString}'}}


def finalize(sam: dict) -> dict:
    """Turn Chalice's zip versions of the media functions in packaged template ``sam`` into the
    image functions, keeping each logical id and the role and environment the merge gave it, and
    point Chalice's CORS preflight at the site's origin.
    Raises ValueError if ``sam`` lacks one of them (not a ``chalice package`` output of this app)."""
    resources = sam["Resources"]
    for fn in MEDIA_FUNCTIONS:
        props = resources.get(fn, {}).get("Properties", {})
        if "Role" not in props or "Environment" not in props:
            raise ValueError(f"{fn} is not in the packaged template with the merge template's Role and Environment")
        resources[fn] = media_function(fn, props["Environment"]["Variables"])
    # Chalice baked the origin it saw at package time into the preflight: the stack's, instead
    static_site.preflight_origins(resources.get("RestAPI", {}).get("Properties", {}).get("DefinitionBody", {}))
    return sam


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "--finalize":
        path = Path(argv[1])
        path.write_text(json.dumps(finalize(json.loads(path.read_text())), indent=2) + "\n")
        return
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: build_template.py MERGE.json | build_template.py --finalize SAM.json")
    origin = os.environ.get("MUSICVID_CORS_ORIGIN", "")  # empty: the site's CloudFront domain
    Path(argv[0]).write_text(json.dumps(template(origin), indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
