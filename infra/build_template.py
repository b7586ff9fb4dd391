"""Write the CloudFormation merge template for ``chalice package --merge-template`` (``make package``).

Chalice generates the REST API and six zip functions (APIHandler + five step Lambdas); this adds
what the app runs on, and wires it in by merging into Chalice's own resources:

- S3 bucket (SSE AES256, public access blocked, TLS only, CORS for browser POST uploads, lifecycle),
- DynamoDB job table (``job_id`` key, GSI ``by_user`` = user_id + created_key, PITR, conditional writes
  are the adapter's), Cognito user pool + app client (the API's authorizer and the app's JWT check),
- the Step Functions state machine *from musicvid_core/workflow/workflow.asl.json* with DefinitionSubstitutions to
  the step functions' ARNs (the one definition, embedded at build time),
- one least-privilege IAM role per function,
- API Gateway DEFAULT_4XX/5XX responses with CORS headers and a JSON ``{"error", "message"}`` body,
- the three media steps (analyzer, audio_generator, av_operator) as **container-image** functions
  (PackageType Image, ``ImageUri`` = the ``MediaImageUri`` parameter, one image built from
  infra/lambda-media/Dockerfile, the step chosen by ImageConfig.Command): their media stack is over
  Lambda's 250 MB zip limit, and Chalice builds zips only. A merge cannot delete Chalice's zip
  properties (CodeUri, Handler, Runtime), so ``--finalize`` replaces those three resources in the
  packaged template wholesale, keeping their logical ids (roles, state machine unchanged).

Usage (``make package`` runs both)::

    MUSICVID_CORS_ORIGIN=https://app.example python infra/build_template.py MERGE.json
    python infra/build_template.py --finalize build/package/sam.json   # after chalice package
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parent
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
        "EphemeralStorage": {"Size": spec["EphemeralStorage"]},
        "Tracing": "PassThrough", "Role": _arn(f"{fn}Role"), "Environment": {"Variables": env}}}


def template(cors_origin: str = "http://localhost:3000") -> dict:
    issuer = {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"}
    env = {"MUSICVID_BUCKET": {"Ref": "MediaBucket"}, "MUSICVID_TABLE": {"Ref": "JobsTable"},
           "MUSICVID_REGION": {"Ref": "AWS::Region"}, "MUSICVID_AUTH_ISSUER": issuer,
           "MUSICVID_AUTH_AUDIENCE": {"Ref": "UserPoolClient"},
           "MUSICVID_AUTH_JWKS_URL": {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}/.well-known/jwks.json"},
           "MUSICVID_CORS_ORIGIN": {"Ref": "CorsOrigin"},
           "MUSICVID_OBJECT_STORE": "s3", "MUSICVID_JOB_STORE": "dynamodb", "MUSICVID_LAUNCHER": "stepfunctions",
           "MUSICVID_MAX_ACTIVE_JOBS": {"Ref": "MaxActiveJobs"}}
    resources: dict = {
        "MediaBucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                        "Properties": {
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "CorsConfiguration": {"CorsRules": [{"AllowedMethods": ["POST", "GET"], "AllowedOrigins": [{"Ref": "CorsOrigin"}],
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
            "UserPoolId": {"Ref": "UserPool"}, "GenerateSecret": False,
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
        "GatewayDefault4XX": _gateway_response("DEFAULT_4XX"),
        "GatewayDefault5XX": _gateway_response("DEFAULT_5XX"),
        "RestAPI": {"Properties": {
            "DefinitionBody": {"securityDefinitions": {"MusicvidUsers": {
                "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": [_arn("UserPool")]}}}},
            # Stage throttling: past it API Gateway answers 429 (THROTTLED, a DEFAULT_4XX: JSON with
            # CORS below) before any Lambda runs. Per user, the app caps active jobs (MaxActiveJobs).
            "MethodSettings": [{"ResourcePath": "/*", "HttpMethod": "*",
                                "ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
                                "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}}]}},
    }
    step_env = {k: v for k, v in env.items() if "AUTH" not in k and "CORS" not in k}
    for fn in FUNCTIONS:
        resources[f"{fn}Role"] = _role(fn, POLICIES[fn])
        if fn in MEDIA_FUNCTIONS:  # complete definitions; --finalize drops Chalice's zip properties
            resources[fn] = media_function(fn, dict(step_env))
        else:  # merged into Chalice's zip functions
            resources[fn] = {"Properties": {"Role": _arn(f"{fn}Role"),
                                            "Environment": {"Variables": dict(env if fn == "APIHandler" else step_env)}}}
    resources["APIHandler"]["Properties"]["Environment"]["Variables"]["MUSICVID_STATE_MACHINE_ARN"] = {"Ref": "StateMachine"}
    return {
        "Parameters": {
            "MediaImageUri": {"Type": "String", "AllowedPattern": r"^\S+\.dkr\.ecr\.\S+/\S+(:|@)\S+$",
                              "Description": "the media image (infra/lambda-media/Dockerfile) pushed to ECR in this "
                                             "account and region, as REPO_URI:TAG or REPO_URI@sha256:DIGEST; a new "
                                             "tag per build, or CloudFormation sees no change (docs/deploy.md)"},
            "CorsOrigin": {"Type": "String", "Default": cors_origin,
                           "Description": "the web origin allowed to call the API and POST uploads (keep it equal "
                                          "to MUSICVID_CORS_ORIGIN at `make package`: Chalice bakes preflight in)"},
            "UploadRetentionDays": {"Type": "Number", "Default": 30, "MinValue": 1},
            "OutputRetentionDays": {"Type": "Number", "Default": 90, "MinValue": 1},
            "ApiRateLimit": {"Type": "Number", "Default": 50, "MinValue": 1,
                             "Description": "API Gateway stage: requests per second, all users (429 beyond)"},
            "ApiBurstLimit": {"Type": "Number", "Default": 100, "MinValue": 1,
                              "Description": "API Gateway stage: requests in one burst, all users"},
            "MaxActiveJobs": {"Type": "Number", "Default": 20, "MinValue": 1,
                              "Description": "a user's jobs SCHEDULED + PROCESSING at once (429 too_many_jobs beyond)"},
        },
        "Resources": resources,
        "Outputs": {"UserPoolId": {"Value": {"Ref": "UserPool"}},
                    "UserPoolClientId": {"Value": {"Ref": "UserPoolClient"}},
                    "BucketName": {"Value": {"Ref": "MediaBucket"}},
                    "StateMachineArn": {"Value": {"Ref": "StateMachine"}}},
    }


def _gateway_response(kind: str) -> dict:
    return {"Type": "AWS::ApiGateway::GatewayResponse", "Properties": {
        "RestApiId": {"Ref": "RestAPI"}, "ResponseType": kind,
        "ResponseParameters": {"gatewayresponse.header.Access-Control-Allow-Origin": {"Fn::Sub": "'${CorsOrigin}'"},
                               "gatewayresponse.header.Access-Control-Allow-Headers": "'Authorization,Content-Type'"},
        "ResponseTemplates": {"application/json":
                              '{"error": "$context.error.responseType", "message": $context.error.messageString}'}}}


def finalize(sam: dict) -> dict:
    """Turn Chalice's zip versions of the media functions in packaged template ``sam`` into the
    image functions, keeping each logical id and the role and environment the merge gave it.
    Raises ValueError if ``sam`` lacks one of them (not a ``chalice package`` output of this app)."""
    resources = sam["Resources"]
    for fn in MEDIA_FUNCTIONS:
        props = resources.get(fn, {}).get("Properties", {})
        if "Role" not in props or "Environment" not in props:
            raise ValueError(f"{fn} is not in the packaged template with the merge template's Role and Environment")
        resources[fn] = media_function(fn, props["Environment"]["Variables"])
    return sam


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "--finalize":
        path = Path(argv[1])
        path.write_text(json.dumps(finalize(json.loads(path.read_text())), indent=2) + "\n")
        return
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: build_template.py MERGE.json | build_template.py --finalize SAM.json")
    origin = os.environ.get("MUSICVID_CORS_ORIGIN", "http://localhost:3000")
    Path(argv[0]).write_text(json.dumps(template(origin), indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
