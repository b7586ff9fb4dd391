"""A deploy rehearsal without an AWS account (issue 20): the stack the built template describes,
stood up on moto, used as a browser and Step Functions would use it.

- The bucket (with the template's CORS rules), the job table (its keys and index), the Cognito pool
  and app client and the state machine (the template's definition with its substitutions) are
  created on moto from the template's own properties; the step functions run with exactly the
  environment the template gives each of them (tests/awsstack.py evaluates it).
- A user signs in to the pool and calls the Chalice app with moto's Cognito ID token, which the app
  verifies against the pool's JWKS at the URL the template sets.
- The browser's part: the upload form is checked as S3 checks a POST (SigV4 signature over the
  policy, every field covered by a condition, the size range) and then posted to moto from the
  web origin; the bucket's CORS answers it and the download.
- Step Functions' part: moto's execution of the definition is run by our interpreter, each Task
  invoking the real handler of its function (the Chalice app's zip functions, the media image's
  entry points) in that function's environment.
- Every AWS call each function made is held against that function's role in the template (the
  IAM statements evaluated for the deploy's parameters): a call its role would refuse fails here.

What stays unverified without an account is listed in docs/deploy.md ("What the rehearsal does not prove").
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytest.importorskip("chalice")
pytest.importorskip("moto")
requests = pytest.importorskip("requests")

from tests.awsstack import Stack, build_template, cfn, load_chalice_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:CognitoUserPoolAuthorizer:UserWarning")
APP_DIR = Path(__file__).resolve().parents[1] / "chalice_app"
ORIGIN = "https://app.example.com"
BUCKET, TABLE = "musicvid-media-rehearsal", "musicvid-jobs-rehearsal"
ZIP_ENTRY = {"Coordinator": "coordinator", "FailureHandler": "failure_handler"}


# --- S3's POST policy check, as the service applies it to a browser's form ------------------------
def _signing_key(secret: str, date: str, region: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def s3_post_refusal(url: str, fields: dict, size: int, secret: str, now: dt.datetime) -> str | None:
    """Why S3 would refuse this browser POST (a file of ``size`` bytes), or None when it accepts it:
    SigV4 only, the credential scoped to the bucket's Region, the signature over the policy, the
    policy unexpired, every condition met and every form field covered by one."""
    host = urlparse(url).hostname or ""
    bucket, _, rest = host.partition(".s3.")
    region = rest.removesuffix(".amazonaws.com") or "us-east-1"
    if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
        return "InvalidRequest: only AWS4-HMAC-SHA256 is accepted"
    _, date, cred_region, service, terminal = fields["x-amz-credential"].split("/")
    if (cred_region, service, terminal) != (region, "s3", "aws4_request"):
        return f"AuthorizationQueryParametersError: credential scoped to {cred_region}, bucket in {region}"
    expected = hmac.new(_signing_key(secret, date, region), fields["policy"].encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("x-amz-signature", "")):
        return "SignatureDoesNotMatch"
    policy = json.loads(base64.b64decode(fields["policy"]))
    if dt.datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00")) < now:
        return "AccessDenied: policy expired"
    form = {k.lower(): v for k, v in {**fields, "bucket": bucket}.items()}
    covered = {"policy", "x-amz-signature", "file"}
    for cond in policy["conditions"]:
        if isinstance(cond, dict):
            (name, value), = cond.items()
            op, name = "eq", name.lower()
        elif cond[0] == "content-length-range":
            if not cond[1] <= size <= cond[2]:
                return f"EntityTooLarge/Small: {size} bytes outside [{cond[1]}, {cond[2]}]"
            continue
        else:
            op, name, value = cond[0], cond[1].lstrip("$").lower(), cond[2]
        covered.add(name)
        got = form.get(name, "")
        if (op == "eq" and got != value) or (op == "starts-with" and not got.startswith(value)):
            return f"AccessDenied: {name}={got!r} violates the policy"
    extra = [k for k in form if k not in covered and not k.startswith("x-ignore-")]
    return f"AccessDenied: fields {extra} not in the policy" if extra else None


def browser_upload(form: dict, path: Path, size: int | None = None):
    """What a browser on ORIGIN does with the upload form: its XHR's preflight (upload progress
    listeners make one), then the multipart POST; S3's policy check first, as the service would."""
    data = path.read_bytes()
    now = dt.datetime.now(dt.timezone.utc)
    refusal = s3_post_refusal(form["url"], form["fields"], len(data) if size is None else size,
                              os.environ["AWS_SECRET_ACCESS_KEY"], now)
    if refusal:
        return refusal
    pre = requests.options(form["url"], headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200 and pre.headers.get("Access-Control-Allow-Origin") == ORIGIN, pre.headers
    # (S3 puts the matching CORS rule's headers on the POST's answer too; moto only on the preflight
    # and on GETs, so the rule itself is what the preflight above checked.)
    return requests.post(form["url"], data=form["fields"], files={"file": (path.name, data, "video/mp4")},
                         headers={"Origin": ORIGIN})


# --- the stack on moto ---------------------------------------------------------------------------
class Rehearsal:
    def __init__(self, aws, monkeypatch, home: Path, overrides: dict | None = None) -> None:
        self.aws, self.monkeypatch, self.home = aws, monkeypatch, home
        template = build_template.template(ORIGIN)
        res = template["Resources"]
        s3 = aws.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        planned = Stack(template, overrides)  # conditions settled: the site's origin is one of them
        rules = planned.value(planned.concrete["Resources"]["MediaBucket"]["Properties"]["CorsConfiguration"]["CorsRules"])
        s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [
            {"AllowedMethods": r["AllowedMethods"], "AllowedOrigins": r["AllowedOrigins"],
             "AllowedHeaders": r["AllowedHeaders"], "MaxAgeSeconds": r["MaxAge"]} for r in rules]})
        table = res["JobsTable"]["Properties"]
        aws.client("dynamodb").create_table(TableName=TABLE, **{k: table[k] for k in (
            "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")})
        idp = aws.client("cognito-idp")
        pool = res["UserPool"]["Properties"]
        self.pool_id = idp.create_user_pool(PoolName="musicvid-users", UsernameAttributes=pool["UsernameAttributes"],
                                            AutoVerifiedAttributes=pool["AutoVerifiedAttributes"],
                                            Policies=pool["Policies"])["UserPool"]["Id"]
        client = res["UserPoolClient"]["Properties"]
        self.client_id = idp.create_user_pool_client(
            UserPoolId=self.pool_id, ClientName="web", GenerateSecret=client["GenerateSecret"],
            ExplicitAuthFlows=client["ExplicitAuthFlows"])["UserPoolClient"]["ClientId"]
        names = {"MediaBucket": BUCKET, "JobsTable": TABLE, "UserPool": self.pool_id, "UserPoolClient": self.client_id}
        self.stack = Stack(template, overrides, names)
        sm = self.stack.concrete["Resources"]["StateMachine"]["Properties"]
        definition = json.dumps(sm["Definition"])
        for name, arn in self.stack.value(sm["DefinitionSubstitutions"]).items():
            definition = definition.replace("${" + name + "}", arn)
        role = aws.client("iam").create_role(RoleName="states", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        self.sfn = aws.client("stepfunctions")
        self.state_machine = self.sfn.create_state_machine(name="musicvid", roleArn=role,
                                                           definition=definition)["stateMachineArn"]
        self.stack = Stack(template, overrides, {**names, "StateMachine": self.state_machine})
        self.functions = {self.stack.attrs[f"{fn}.Arn"]: fn for fn in build_template.FUNCTIONS}
        self.calls: list[tuple[str, str, str, dict]] = []
        self.current: str | None = None
        aws.setup_default_session()  # every client the functions build records its calls here
        aws.DEFAULT_SESSION.events.register("provide-client-params", self._record)
        with self.function("APIHandler"):
            self.app = _load_app()

    # every AWS call, as IAM sees it ---------------------------------------------------------------
    def _record(self, params, model, **_):
        if self.current is None:
            return
        service, op = model.service_model.signing_name, model.name
        arn = self.stack.bucket_arn
        if service == "s3":
            key = params.get("Key", "")
            if op == "CreateBucket":  # botocore presigns a POST form through CreateBucket's model: not a call
                return
            if op in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
                self.calls.append((self.current, "s3:PutObject", arn(key), {}))
            elif op in ("GetObject", "HeadObject"):
                self.calls.append((self.current, "s3:GetObject", arn(key), {}))
            elif op == "ListObjectsV2":
                self.calls.append((self.current, "s3:ListBucket", arn(), {"s3:prefix": params.get("Prefix", "")}))
            elif op == "DeleteObjects":
                self.calls += [(self.current, "s3:DeleteObject", arn(o["Key"]), {}) for o in params["Delete"]["Objects"]]
            else:
                self.calls.append((self.current, f"s3:{op}", arn(key), {}))
        elif service == "dynamodb":
            if op == "TransactWriteItems":  # IAM checks each write of a transaction
                kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
                for item in params["TransactItems"]:
                    (kind, body), = item.items()
                    self.calls.append((self.current, f"dynamodb:{kinds[kind]}", self._table(body["TableName"]), {}))
            else:
                index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""
                self.calls.append((self.current, f"dynamodb:{op}", self._table(params["TableName"]) + index, {}))
        elif service == "states":
            self.calls.append((self.current, f"states:{op}", params.get("stateMachineArn", ""), {}))
        else:
            self.calls.append((self.current, f"{service}:{op}", "?", {}))

    def _table(self, name: str) -> str:
        return f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}"

    def refused_calls(self) -> list[tuple]:
        return [c for c in self.calls if not self.stack.allows(c[0], c[1], c[2], **c[3])]

    # a function's environment, as Lambda gives it ---------------------------------------------------
    @contextlib.contextmanager
    def function(self, fn: str):
        from musicvid_core import bootstrap

        saved = {k: v for k, v in os.environ.items() if k.startswith("MUSICVID_")}
        for k in saved:
            del os.environ[k]
        os.environ.update({**self.stack.env(fn), "MUSICVID_HOME": str(self.home / fn),
                           "AWS_LAMBDA_FUNCTION_NAME": fn})
        bootstrap.reset()
        _reset_wiring()
        self.current = fn
        try:
            yield
        finally:
            self.current = None
            for k in [k for k in os.environ if k.startswith("MUSICVID_")]:
                del os.environ[k]
            os.environ.update(saved)
            os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
            bootstrap.reset()
            _reset_wiring()

    def invoke(self, arn: str, event: dict) -> dict:
        """Lambda's part: the function at ``arn`` runs its real handler with its own environment."""
        from chalice.test import Client

        from musicvid_core import lambda_handler

        fn = self.functions[arn]
        with self.function(fn):
            if fn in build_template.MEDIA_FUNCTIONS:  # the image's ImageConfig.Command
                step = build_template.MEDIA_FUNCTIONS[fn]["step"]
                return json.loads(json.dumps(getattr(lambda_handler, step)(event, None)))
            with Client(self.app.app, project_dir=str(APP_DIR)) as client:
                return client.lambda_.invoke(ZIP_ENTRY[fn], event).payload

    def api(self, method: str, path: str, token: str | None, body: dict | None = None):
        from chalice.test import Client

        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        with self.function("APIHandler"), Client(self.app.app, project_dir=str(APP_DIR)) as client:
            r = getattr(client.http, method)(path, headers=headers, **({"body": json.dumps(body)} if body else {}))
        return r.status_code, json.loads(r.body or b"null")

    def run_execution(self, name: str) -> None:
        """Step Functions' part: moto's execution, its definition run by our interpreter."""
        from musicvid_core.asl import StateMachine

        ex = next(e for e in self.sfn.list_executions(stateMachineArn=self.state_machine)["executions"]
                  if e["name"] == name)
        payload = json.loads(self.sfn.describe_execution(executionArn=ex["executionArn"])["input"])
        definition = json.loads(self.sfn.describe_state_machine(stateMachineArn=self.state_machine)["definition"])
        StateMachine(definition, lambda arn: lambda event: self.invoke(arn, event), time_scale=0).run(payload, name=name)

    def sign_in(self, email: str) -> str:
        """A user of the pool, signed in: moto's Cognito ID token (RS256, the pool's issuer and key)."""
        idp = self.aws.client("cognito-idp")
        idp.admin_create_user(UserPoolId=self.pool_id, Username=email, TemporaryPassword="Temporary-pass-1")
        idp.admin_set_user_password(UserPoolId=self.pool_id, Username=email, Password="Rehearsal-pass-12",
                                    Permanent=True)
        auth = idp.admin_initiate_auth(UserPoolId=self.pool_id, ClientId=self.client_id,
                                       AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                                       AuthParameters={"USERNAME": email, "PASSWORD": "Rehearsal-pass-12"})
        return auth["AuthenticationResult"]["IdToken"]


def _load_app():
    return load_chalice_app("musicvid_rehearsal_app")


def _reset_wiring() -> None:
    wiring = sys.modules.get("chalicelib.wiring")
    if wiring is not None:
        wiring.reset()


@pytest.fixture
def jwks_over_requests(monkeypatch):
    """PyJWT fetches the JWKS with urllib, which moto does not intercept: the same GET through
    requests, which it does (moto serves each pool's JWKS at the Cognito URL)."""
    import jwt.jwks_client

    class Opener:
        def open(self, request, timeout=None):
            r = requests.get(request.full_url, timeout=timeout)
            r.raise_for_status()
            return contextlib.closing(io.BytesIO(r.content))

    monkeypatch.setattr(jwt.jwks_client.urllib.request, "build_opener", lambda *handlers: Opener())


@pytest.fixture
def rehearsal(settings, aws, monkeypatch, tmp_path, jwks_over_requests):
    return Rehearsal(aws, monkeypatch, tmp_path / "lambda")


@pytest.mark.slow
def test_one_job_end_to_end_on_the_rehearsed_stack(rehearsal, short_video, tmp_path):
    r = rehearsal
    token = r.sign_in("alice@example.com")
    assert r.api("get", "/jobs", None)[0] == 401  # the app verifies tokens itself
    status, up = r.api("post", "/uploads", token, {"content_type": "video/mp4"})
    assert status == 201, up
    form = up["upload"]
    # the form: SigV4 on the regional host, bounded by the stack's upload limit
    assert urlparse(form["url"]).hostname == f"{BUCKET}.s3.us-east-1.amazonaws.com"
    assert form["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256" and "x-amz-security-token" in form["fields"]
    limit = build_template.LIMITS["MUSICVID_MAX_INPUT_BYTES"]
    assert up["max_bytes"] == limit
    assert ["content-length-range", 1, limit] in json.loads(base64.b64decode(form["fields"]["policy"]))["conditions"]
    key = up["s3_url"].removeprefix(f"s3://{BUCKET}/")
    assert r.stack.allows("APIHandler", "s3:PutObject", r.stack.bucket_arn(key))  # what the form grants

    # S3 refuses what the form does not allow; then the browser's upload goes through
    assert browser_upload(form, short_video.path, size=limit + 1).startswith("EntityTooLarge")
    tampered = {**form, "fields": {**form["fields"], "key": key.replace("uploads/", "uploads/x")}}
    assert browser_upload(tampered, short_video.path).startswith("AccessDenied")
    assert browser_upload(form, short_video.path).status_code == 204
    assert r.api("post", "/uploads", token, {"content_type": "video/mp4", "size": limit + 1})[0] == 400

    status, job = r.api("post", "/jobs", token, {"s3_url": up["s3_url"], "prompt": "calm piano"})
    assert status == 202, job
    r.run_execution(f"{job['job_id']}-1")
    status, view = r.api("get", f"/jobs/{job['job_id']}", token)
    assert status == 200 and view["status"] == "COMPLETED", view
    url = view["final_url"]
    assert urlparse(url).hostname == f"{BUCKET}.s3.us-east-1.amazonaws.com" and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    got = requests.get(url, headers={"Origin": ORIGIN})
    assert got.status_code == 200 and got.headers.get("Access-Control-Allow-Origin") == ORIGIN
    out = tmp_path / "out.mp4"
    out.write_bytes(got.content)
    from musicvid_core.metrics import video_packet_hashes

    assert video_packet_hashes(out) == video_packet_hashes(short_video.path)

    # every call each function made, against its role in the template
    made = {fn for fn, *_ in r.calls}
    assert made == set(build_template.FUNCTIONS) - {"FailureHandler"}, made
    assert r.refused_calls() == []
    assert ("APIHandler", "states:StartExecution", r.state_machine, {}) in r.calls
    # the check can fail: the Coordinator's role does not let it write objects
    assert not r.stack.allows("Coordinator", "s3:PutObject", r.stack.bucket_arn(f"jobs/{job['job_id']}/1/x"))


@pytest.mark.slow
def test_a_failing_job_is_rolled_back_by_the_failure_handler_within_its_role(rehearsal, tmp_path):
    r = rehearsal
    token = r.sign_in("bob@example.com")
    status, up = r.api("post", "/uploads", token, {"content_type": "video/mp4"})
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    assert browser_upload(up["upload"], junk).status_code == 204
    status, job = r.api("post", "/jobs", token, {"s3_url": up["s3_url"], "prompt": "calm"})
    from musicvid_core.asl import ExecutionFailed

    with pytest.raises(ExecutionFailed):
        r.run_execution(f"{job['job_id']}-1")
    status, view = r.api("get", f"/jobs/{job['job_id']}", token)
    assert view["status"] == "FAILED" and view["error"]["stage"] == "analyze", view
    assert "FailureHandler" in {fn for fn, *_ in r.calls} and r.refused_calls() == []


def test_s3_clients_sign_v4_on_the_regional_virtual_host(settings):
    pytest.importorskip("boto3")
    from musicvid_core.adapters.aws.client import s3_client

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    for region in ("us-east-1", "eu-west-1"):
        client = s3_client(settings.model_copy(update={"region": region}))
        post = client.generate_presigned_post("media-b", "uploads/u/v.mp4", ExpiresIn=60)
        assert post["url"] == f"https://media-b.s3.{region}.amazonaws.com/"
        assert post["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
        get = client.generate_presigned_url("get_object", Params={"Bucket": "media-b", "Key": "k"}, ExpiresIn=60)
        assert get.startswith(f"https://media-b.s3.{region}.amazonaws.com/k?") and "X-Amz-Signature=" in get
    # a moto server or LocalStack: path style (BUCKET.localhost would not resolve)
    local = s3_client(settings.model_copy(update={"aws_endpoint_url": "http://127.0.0.1:5000"}))
    assert local.generate_presigned_post("media-b", "k")["url"] == "http://127.0.0.1:5000/media-b"


def test_the_s3_post_check_refuses_what_s3_refuses(settings, aws):
    from musicvid_core.adapters.aws.client import s3_client

    client = s3_client(settings)
    now = dt.datetime.now(dt.timezone.utc)
    post = client.generate_presigned_post("media-b", "uploads/u/v.mp4", Fields={"Content-Type": "video/mp4"},
                                          Conditions=[{"Content-Type": "video/mp4"}, ["content-length-range", 1, 10]],
                                          ExpiresIn=60)
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert s3_post_refusal(post["url"], post["fields"], 10, secret, now) is None
    assert s3_post_refusal(post["url"], post["fields"], 11, secret, now).startswith("EntityTooLarge")
    assert s3_post_refusal(post["url"], post["fields"], 5, "other-secret", now) == "SignatureDoesNotMatch"
    assert "expired" in s3_post_refusal(post["url"], post["fields"], 5, secret, now + dt.timedelta(hours=1))
    extra = {**post["fields"], "acl": "public-read"}
    assert "not in the policy" in s3_post_refusal(post["url"], extra, 5, secret, now)
    v2 = aws.client("s3", region_name="us-east-1").generate_presigned_post("media-b", "k")  # boto3's defaults: SigV2
    assert s3_post_refusal(v2["url"], v2["fields"], 1, secret, now).startswith("InvalidRequest")
    other_region = {**post["fields"], "x-amz-credential": post["fields"]["x-amz-credential"].replace("us-east-1", "eu-west-1")}
    assert "scoped" in s3_post_refusal(post["url"], other_region, 5, secret, now)


def test_cfn_evaluator_settles_conditions_and_refuses_the_unknown():
    t = build_template.template()
    with pytest.raises(ValueError, match="Planner"):
        cfn.apply_conditions(t, {"MediaImageUri": "x.dkr.ecr.y/z:1", "Planner": "gpt"})
    with pytest.raises(ValueError, match="unsupported function"):
        cfn.evaluate({"Fn::Base64": "x"}, {}, {})
    assert not cfn.allows([{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
                            "Condition": {"StringLike": {"s3:prefix": "jobs/*"}}}],
                          "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "uploads/x"})
