"""infra/: the merge template wires the one ASL definition to Chalice's functions with least
privilege; the media steps are container-image functions built from infra/lambda-media/ (same extras
as the Makefile, an entry point per step); the packaged stack passes cfn-lint; the definition passes
asl-validator; the API handler runs without the media stack."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from musicvid_core import lambda_handler
from musicvid_core.domain.errors import ConfigurationError
from musicvid_core.workflow import steps

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "infra" / "lambda-media" / "Dockerfile"
MEDIA = {"Analyzer": "analyzer", "AudioGenerator": "audio_generator", "AvOperator": "av_operator"}
ZIP = {"APIHandler", "Coordinator", "FailureHandler"}
sys.path.insert(0, str(ROOT / "infra"))
import build_template  # noqa: E402
import cfn  # noqa: E402

sys.path.remove(str(ROOT / "infra"))


def _actions(template: dict, role: str) -> set[str]:
    """Every action the role may ever hold: a backend's statements under Fn::If count too."""
    stmts = template["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    stmts = [s["Fn::If"][1] if "Fn::If" in s else s for s in stmts]
    return {a for s in stmts for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def test_state_machine_is_the_one_definition_with_every_placeholder_bound():
    t = build_template.template()
    asl_text = (ROOT / "musicvid_core" / "workflow" / "workflow.asl.json").read_text()
    sm = t["Resources"]["StateMachine"]["Properties"]
    assert sm["Definition"] == json.loads(asl_text)
    placeholders = set(re.findall(r"\$\{(\w+)\}", asl_text))
    assert placeholders == set(sm["DefinitionSubstitutions"])
    assert _actions(t, "StateMachineRole") == {"lambda:InvokeFunction"}


def test_each_function_gets_only_what_it_needs():
    t = build_template.template()
    api = _actions(t, "APIHandlerRole")
    assert "states:StartExecution" in api and not any("Delete" in a for a in api)
    assert "dynamodb:Scan" not in api and "dynamodb:DeleteItem" not in api
    for role in ("CoordinatorRole", "AnalyzerRole", "AudioGeneratorRole", "AvOperatorRole", "FailureHandlerRole"):
        acts = _actions(t, role)
        assert "states:StartExecution" not in acts and not any(a.endswith("*") for a in acts), role
    assert all("s3:PutObject" not in _actions(t, r) for r in ("CoordinatorRole", "FailureHandlerRole"))
    # ffmpeg comes inside the media image (imageio-ffmpeg): no layer left anywhere
    assert not [name for name, res in t["Resources"].items() if "Layers" in res.get("Properties", {})]
    assert "FfmpegLayer" not in t["Resources"]
    env = t["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert {"MUSICVID_AUTH_JWKS_URL", "MUSICVID_AUTH_AUDIENCE", "MUSICVID_STATE_MACHINE_ARN"} <= set(env)
    bucket = t["Resources"]["MediaBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == \
        {"SSEAlgorithm": "AES256"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())


def _image_functions(resources: dict) -> dict:
    return {name: res["Properties"] for name, res in resources.items()
            if res.get("Properties", {}).get("PackageType") == "Image"}


def test_merge_template_defines_the_media_steps_as_image_functions():
    t = build_template.template()
    images = _image_functions(t["Resources"])
    assert set(images) == set(MEDIA)
    assert "MediaImageUri" in t["Parameters"]
    for name, props in images.items():
        assert props["ImageUri"] == {"Ref": "MediaImageUri"}
        assert props["ImageConfig"]["Command"] == [f"musicvid_core.lambda_handler.{MEDIA[name]}"]
        assert props["Role"] == {"Fn::Sub": f"${{{name}Role.Arn}}"}
        assert 1024 <= props["MemorySize"] <= 10240 and props["Timeout"] == 900
        assert 512 <= props["EphemeralStorage"]["Size"] <= 10240
        env = props["Environment"]["Variables"]
        assert env["MUSICVID_OBJECT_STORE"] == "s3" and not any("AUTH" in k or "CORS" in k for k in env)
        assert not {"CodeUri", "Handler", "Runtime", "Layers"} & set(props)
    pattern = t["Parameters"]["MediaImageUri"]["AllowedPattern"]
    assert re.match(pattern, "123456789012.dkr.ecr.us-east-1.amazonaws.com/musicvid-media:1eaf2239d41e")
    assert not re.match(pattern, "musicvid-media:latest")  # Lambda pulls from ECR only


def test_finalize_replaces_chalice_zip_media_functions_keeping_ids_roles_env():
    package = pytest.importorskip("chalice.package")
    chalice = {"Resources": {fn: {"Type": "AWS::Serverless::Function", "Properties": {
        "Runtime": "python3.11", "Handler": f"app.{fn.lower()}", "CodeUri": "./deployment.zip", "MemorySize": 3008}}
        for fn in build_template.FUNCTIONS}}
    sam = package.TemplateDeepMerger().merge(build_template.template(), chalice)  # what --merge-template does
    sam["Resources"]["Analyzer"]["Properties"]["Environment"]["Variables"]["FROM_CHALICE_CONFIG"] = "kept"
    out = build_template.finalize(sam)
    assert set(_image_functions(out["Resources"])) == set(MEDIA)
    assert out["Resources"]["Analyzer"]["Properties"]["Environment"]["Variables"]["FROM_CHALICE_CONFIG"] == "kept"
    assert out["Resources"]["APIHandler"]["Properties"]["CodeUri"] == "./deployment.zip"
    del sam["Resources"]["AvOperator"]
    with pytest.raises(ValueError):
        build_template.finalize(sam)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """`chalice package` of the app with the merge template, then --finalize: as `make package`."""
    pytest.importorskip("chalice")
    tmp = tmp_path_factory.mktemp("package")
    app = tmp / "app"
    app.mkdir()
    # requirements.txt is left out so packaging stays offline (make package bundles them).
    for name in ("app.py", "chalicelib", ".chalice"):
        src = ROOT / "chalice_app" / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, app / name)
    shutil.rmtree(app / ".chalice" / "deployments", ignore_errors=True)
    build_template.main([str(tmp / "merge.json")])
    bindir = Path(sys.executable).parent
    env = {"AWS_DEFAULT_REGION": "us-east-1", "PATH": f"{bindir}:/usr/bin:/bin"}
    subprocess.run([sys.executable, str(ROOT / "infra" / "chalice_package.py"), "--merge-template",
                    str(tmp / "merge.json"), str(tmp / "out")], cwd=app, env=env, check=True, capture_output=True,
                   timeout=300)
    build_template.main(["--finalize", str(tmp / "out" / "sam.json")])
    return tmp / "out"


@pytest.mark.slow
def test_packaged_stack_has_three_image_functions_and_three_zip_functions(packaged):
    sam = json.loads((packaged / "sam.json").read_text())
    resources = sam["Resources"]
    functions = {n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    images = _image_functions(resources)
    assert set(images) == set(MEDIA)
    for name, props in images.items():
        assert props["ImageUri"] == {"Ref": "MediaImageUri"} and "MediaImageUri" in sam["Parameters"]
        assert props["ImageConfig"]["Command"] == [f"musicvid_core.lambda_handler.{MEDIA[name]}"]
        assert props["Role"] == {"Fn::Sub": f"${{{name}Role.Arn}}"}
        assert not {"CodeUri", "Handler", "Runtime", "Layers"} & set(props)  # nothing left of Chalice's zip
    zips = {n for n, p in functions.items() if p.get("PackageType", "Zip") == "Zip"}
    assert zips == ZIP
    assert all(functions[n]["CodeUri"] == "./deployment.zip" for n in zips)
    # packaged for the stack's runtime, not for the Python that ran the build (issue 20)
    assert {functions[n]["Runtime"] for n in zips} == {build_template.RUNTIME}
    assert all(functions[n]["Role"] == {"Fn::Sub": f"${{{n}Role.Arn}}"} for n in zips)
    # every ${…FunctionArn} of the definition resolves to one of the five step functions
    subs = resources["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    targets = {re.fullmatch(r"\$\{(\w+)\.Arn\}", v["Fn::Sub"]).group(1) for v in subs.values()}
    assert targets == set(MEDIA) | {"Coordinator", "FailureHandler"} and targets <= set(functions)
    assert len(subs) == 5
    assert resources["APIHandler"]["Properties"]["Role"] == {"Fn::Sub": "${APIHandlerRole.Arn}"}
    assert resources["RestAPI"]["Properties"]["DefinitionBody"]["securityDefinitions"]["MusicvidUsers"][
        "x-amazon-apigateway-authorizer"]["providerARNs"] == [{"Fn::Sub": "${UserPool.Arn}"}]
    assert "FfmpegLayer" not in resources
    names = zipfile.ZipFile(packaged / "deployment.zip").namelist()
    assert "app.py" in names and not any(n.startswith(("numpy/", "cv2/", "librosa/", "scipy/")) for n in names)


@pytest.mark.slow
def test_packaged_stack_passes_cfn_lint(packaged):
    pytest.importorskip("cfnlint")
    bindir = Path(sys.executable).parent
    lint = subprocess.run([str(bindir / "cfn-lint"), str(packaged / "sam.json")], capture_output=True,
                          text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr


# --- the media image: infra/lambda-media/ --------------------------------------------------------
def _pip_installs(text: str) -> list[list[str]]:
    """The arguments of every `pip install` / `$(PIP) install` command in a Makefile or Dockerfile."""
    text = text.replace("\\\n", " ")
    commands = re.findall(r"(?:\bpip|\$\(PIP\)) install ([^\n&;|]+)", text)
    return [[a for a in shlex.split(cmd) if a not in ("-q", "--quiet", "--no-cache-dir", "--upgrade")]
            for cmd in commands]


def _project_extras(installs: list[list[str]]) -> list[set[str]]:
    """The extras of each install of the project itself, in order."""
    extras = [m.group(1) for args in installs for a in args if (m := re.fullmatch(r"(?:\.|/tmp/src)\[([\w,]+)\]", a))]
    return [set(e.split(",")) for e in extras]


def _no_deps(installs: list[list[str]]) -> set[str]:
    return {a for args in installs if "--no-deps" in args for a in args if not a.startswith("-")}


def test_media_image_installs_the_same_media_stack_as_the_makefile():
    make = _pip_installs((ROOT / "Makefile").read_text())
    docker = _pip_installs(DOCKERFILE.read_text())
    assert _project_extras(docker) == [{"local"}]  # the media stack, nothing for notebooks or dev
    full, demo = _project_extras(make)  # `make install` (everything), `make demo` (the embedded default)
    assert "local" in full and {"dev", "musicgen", "notebooks"} <= full and demo == {"local"}
    # tinysoundfont (without its pyaudio dependency), with the very same specifier
    assert _no_deps(docker) == _no_deps(make) and any(r.startswith("tinysoundfont") for r in _no_deps(make))


def test_media_image_dockerfile_base_context_and_entry_point():
    text = DOCKERFILE.read_text()
    version = build_template.RUNTIME.removeprefix("python")
    assert re.search(rf"^FROM public\.ecr\.aws/lambda/python:{re.escape(version)}\s*$", text, re.M)
    assert "microdnf install" in text  # the python3.12+ base images are Amazon Linux 2023 minimal
    cmd = json.loads(re.search(r"^CMD (\[.*\])\s*$", text, re.M).group(1))
    module, _, func = cmd[0].rpartition(".")
    assert module == "musicvid_core.lambda_handler" and callable(getattr(lambda_handler, func))
    # the build context is the repository root: the allowlist must let in every COPY source, no more
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split("\n")
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {src.rstrip("/") for line in re.findall(r"^COPY (.+)$", text, re.M) for src in line.split()[:-1]}
    assert "*" in ignore and copied == allowed and all((ROOT / c).exists() for c in copied)
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"docker build [^\n]*-f infra/lambda-media/Dockerfile", make)
    assert "docker info" in make  # `make image` says so when there is no Docker daemon


def test_image_entry_points_dispatch_every_step_to_its_handler(monkeypatch):
    # one entry point per Task of the workflow, each named after a real step handler
    assert len(lambda_handler.STEPS) == len(build_template.STEPS)
    assert all(callable(getattr(steps, step)) for step in lambda_handler.STEPS)
    assert set(lambda_handler.MEDIA_STEPS) == set(MEDIA.values())
    calls = []
    for step in lambda_handler.STEPS:
        monkeypatch.setattr(steps, step, lambda event, services, _step=step: calls.append((_step, event)) or {"ran": _step})
    for step in lambda_handler.STEPS:
        event = {"job_id": "j1", "attempt": 1, "step": step}
        assert getattr(lambda_handler, step)(event, None) == {"ran": step}
        monkeypatch.setenv("MUSICVID_STEP", step)
        assert lambda_handler.handler(event, object()) == {"ran": step}
    assert calls == [(s, {"job_id": "j1", "attempt": 1, "step": s}) for s in lambda_handler.STEPS for _ in (1, 2)]
    for props in _image_functions(build_template.template()["Resources"]).values():
        assert props["ImageConfig"]["Command"][0].rpartition(".")[2] in lambda_handler.MEDIA_STEPS
    monkeypatch.setenv("MUSICVID_STEP", "mixer")
    with pytest.raises(ConfigurationError):
        lambda_handler.handler({"job_id": "j1"}, None)
    monkeypatch.delenv("MUSICVID_STEP")
    with pytest.raises(ConfigurationError):
        lambda_handler.handler({"job_id": "j1"}, None)


def test_definition_passes_asl_validator():
    exe = ROOT / "infra" / "node_modules" / ".bin" / "asl-validator"
    if not exe.exists():
        pytest.skip("asl-validator not installed (make install runs npm ci --prefix infra)")
    out = subprocess.run([str(exe), "--json-path", str(ROOT / "musicvid_core" / "workflow" / "workflow.asl.json")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    bad = subprocess.run([str(exe), "--json-definition", '{"StartAt": "A", "States": {"A": {"Type": "Nope"}}}'],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0  # the validator really validates


API_WITHOUT_MEDIA = """
import json, sys
for name in ("numpy", "scipy", "cv2", "librosa", "scenedetect", "soundfile", "pedalboard", "tinysoundfont"):
    sys.modules[name] = None  # importing any of them now raises ImportError
import boto3, moto
sys.path.insert(0, "chalice_app")
with moto.mock_aws():
    boto3.client("s3").create_bucket(Bucket="musicvid-media-test")
    from musicvid_core.adapters.aws.dynamodb import create_table
    create_table(boto3.client("dynamodb"), "musicvid-jobs")
    from chalice.test import Client
    import app
    from musicvid_core.api.auth import mint_token
    from musicvid_core.settings import Settings
    h = {"Authorization": "Bearer " + mint_token(Settings().home, "alice"), "Content-Type": "application/json"}
    with Client(app.app, project_dir="chalice_app") as client:
        jobs = client.http.get("/jobs", headers=h)
        up = client.http.post("/uploads", headers=h, body=json.dumps({"content_type": "video/mp4"}))
    print(jobs.status_code, jobs.body.decode(), up.status_code)
"""


def test_api_handler_runs_without_the_media_stack(tmp_path):
    pytest.importorskip("chalice")
    pytest.importorskip("moto")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MUSICVID_HOME": str(tmp_path),
           "MUSICVID_BUCKET": "musicvid-media-test",
           "MUSICVID_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:m",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", API_WITHOUT_MEDIA], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == '200 {"jobs":[],"next":null} 201'


def test_the_stage_is_throttled_and_the_per_user_cap_is_configured():
    """Issue 14 on AWS: API Gateway stage throttling (429 before any Lambda), the per-user cap's
    setting, and the rights its DynamoDB counter needs (a transaction needs each write's right)."""
    t = build_template.template()
    api = t["Resources"]["RestAPI"]["Properties"]
    assert api["MethodSettings"] == [{"ResourcePath": "/*", "HttpMethod": "*",
                                      "ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
                                      "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}}]
    assert {"ApiRateLimit", "ApiBurstLimit", "MaxActiveJobs"} <= set(t["Parameters"])
    env = t["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert env["MUSICVID_MAX_ACTIVE_JOBS"] == {"Ref": "MaxActiveJobs"}
    for fn in build_template.FUNCTIONS:
        assert {"dynamodb:PutItem", "dynamodb:UpdateItem"} <= _actions(t, f"{fn}Role"), fn


# --- issue 20: what a first real deploy needs ------------------------------------------------------
from tests.awsstack import COMBINATIONS, SITE_DOMAIN, Stack, combo_id  # noqa: E402


def _fill(template: str) -> dict:
    """A gateway response's body once API Gateway fills in its variables (messageString is quoted)."""
    return json.loads(template.replace("$context.error.responseType", "UNAUTHORIZED")
                      .replace("$context.error.messageString", '"Unauthorized"'))


def _check_gateway_responses(template: dict, origin: str, overrides: dict | None = None) -> None:
    """The 4XX/5XX gateway responses of ``template`` (deployed with ``overrides``) allow ``origin``."""
    stack = Stack(template, overrides)
    body = stack.concrete["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    assert set(responses) == {"DEFAULT_4XX", "DEFAULT_5XX"}
    for resp in responses.values():
        headers = resp["responseParameters"]
        allow = stack.value(headers["gatewayresponse.header.Access-Control-Allow-Origin"])
        assert allow == f"'{origin}'"
        assert "Authorization" in headers["gatewayresponse.header.Access-Control-Allow-Headers"]
        assert _fill(resp["responseTemplates"]["application/json"]) == {"error": "UNAUTHORIZED",
                                                                         "message": "Unauthorized"}


def test_gateway_responses_are_inside_the_api_definition_with_cors_and_a_json_body():
    t = build_template.template("https://app.example")
    _check_gateway_responses(t, "https://app.example")
    _check_gateway_responses(build_template.template(), f"https://{SITE_DOMAIN}")  # default: the web app's site
    # not as separate resources beside the DefinitionBody, which SAM can drop on redeploy
    assert not [n for n, r in t["Resources"].items() if r.get("Type") == "AWS::ApiGateway::GatewayResponse"]


@pytest.mark.slow
def test_packaged_api_definition_keeps_chalice_routes_and_the_gateway_responses(packaged):
    sam = json.loads((packaged / "sam.json").read_text())
    body = sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    assert {"/uploads", "/jobs", "/jobs/{job_id}"} <= set(body["paths"])
    _check_gateway_responses(sam, f"https://{SITE_DOMAIN}")
    _check_gateway_responses(sam, "https://app.example", {"CorsOrigin": "https://app.example"})


def test_bucket_cors_lets_the_web_origin_post_uploads_and_get_results():
    t = build_template.template()
    [rule] = t["Resources"]["MediaBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert {"POST", "GET"} <= set(rule["AllowedMethods"])
    for overrides, origin in (({"CorsOrigin": "https://app.example"}, "https://app.example"),
                              ({}, f"https://{SITE_DOMAIN}")):  # default: the web app's site
        stack = Stack(t, overrides)
        [rule] = stack.concrete["Resources"]["MediaBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
        assert stack.value(rule["AllowedOrigins"]) == [origin]


def test_the_stack_limits_agree_with_settings_and_size_tmp():
    t = build_template.template()
    stack = Stack(t)
    for fn in build_template.FUNCTIONS:
        env = stack.env(fn)
        assert {k: env[k] for k in build_template.LIMITS} == {k: str(v) for k, v in build_template.LIMITS.items()}
        settings = build_template.limits({k: env[k] for k in build_template.LIMITS})
        assert settings.max_input_bytes == build_template.LIMITS["MUSICVID_MAX_INPUT_BYTES"]
    for fn in MEDIA:
        props = t["Resources"][fn]["Properties"]
        assert build_template.tmp_bytes(fn) <= props["EphemeralStorage"]["Size"] * 2**20 <= 10240 * 2**20, fn
    # the AvOperator holds the input and the output: twice the upload limit, plus the WAVs
    assert build_template.tmp_bytes("AvOperator") > 2 * build_template.LIMITS["MUSICVID_MAX_INPUT_BYTES"]
    bigger = {**build_template.LIMITS, "MUSICVID_MAX_INPUT_BYTES": 5 * 1024**3}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build_template, "LIMITS", bigger)
        with pytest.raises(ValueError, match="AvOperator would need"):
            build_template.template()


def test_model_clients_time_out_inside_each_functions_timeout():
    from musicvid_core.adapters.aws.client import CONNECT_TIMEOUT_S, model_client

    stack = Stack(build_template.template())
    for fn, spec in build_template.MODEL_CALLS.items():
        env = stack.env(fn)
        read, attempts = float(env["MUSICVID_MODEL_READ_TIMEOUT_S"]), int(env["MUSICVID_MODEL_MAX_ATTEMPTS"])
        worst = spec["calls"] * (attempts * (CONNECT_TIMEOUT_S + read) + (attempts - 1) * build_template.RETRY_BACKOFF_S)
        assert worst + spec["reserve_s"] <= build_template.function_timeout(fn), fn
        if fn in ("Analyzer", "Coordinator"):  # Bedrock Converse: longer than boto3's 60 s default
            assert read > 60, fn
        settings = build_template.Settings(model_read_timeout_s=read, model_max_attempts=attempts)
        client = model_client(settings, "bedrock-runtime")
        assert client.meta.config.read_timeout == read and client.meta.config.connect_timeout == CONNECT_TIMEOUT_S
        assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": attempts}


def _lint(paths: list[Path]) -> dict[str, str]:
    bindir = Path(sys.executable).parent
    out = subprocess.run([str(bindir / "cfn-lint"), "--format", "parseable", *map(str, paths)],
                         capture_output=True, text=True, timeout=600)
    problems: dict[str, str] = {str(p): "" for p in paths}
    for line in out.stdout.splitlines():
        path = line.split(":", 1)[0]
        problems[path] = problems.get(path, "") + line + "\n"
    assert out.returncode == 0 or any(problems.values()), out.stderr
    return problems


@pytest.fixture(scope="module")
def linted_combinations(packaged, tmp_path_factory):
    """Every backend combination's concrete template (conditions applied), linted in one cfn-lint run."""
    pytest.importorskip("cfnlint")
    sam = json.loads((packaged / "sam.json").read_text())
    folder = tmp_path_factory.mktemp("combinations")
    paths = []
    for choice in COMBINATIONS:
        path = folder / f"{combo_id(choice)}.json"
        path.write_text(json.dumps(Stack(sam, choice).concrete))
        paths.append(path)
    return sam, _lint(paths)


def _bedrock_arns(model: str, regions=("us-east-1", "us-east-2", "us-west-2")) -> list[str]:
    return [f"arn:aws:bedrock:{r}::foundation-model/{model}" for r in regions]


@pytest.mark.slow
@pytest.mark.parametrize("choice", COMBINATIONS, ids=combo_id)
def test_each_backend_combination_is_lint_clean_with_exactly_its_statements(linted_combinations, choice):
    sam, problems = linted_combinations
    assert problems[next(p for p in problems if p.endswith(f"{combo_id(choice)}.json"))] == ""
    stack = Stack(sam, choice)
    every = {fn: stack.statements(fn) for fn in build_template.FUNCTIONS}
    actions = {fn: {a for s in st for a in cfn._as_list(s["Action"])} for fn, st in every.items()}
    for fn, statements in every.items():  # scoped: no wildcard action, no resource "*"
        assert not any("*" in a for a in actions[fn]), fn
        assert not any(r == "*" for s in statements for r in cfn._as_list(s["Resource"])), fn
    for fn in build_template.FUNCTIONS:
        if fn not in MEDIA and fn != "Coordinator":
            assert not any(a.startswith(("bedrock:", "sagemaker:")) for a in actions[fn]), fn
        env = stack.env(fn)
        if fn != "APIHandler":
            assert {k: env[f"MUSICVID_{k.upper()}"] for k in choice} == choice
    assert "bedrock:InvokeModel" not in actions["AvOperator"] | actions["AudioGenerator"]

    # planner bedrock: the us. profile here and Nova Pro in each destination Region, nothing more
    planner = choice["Planner"] == "bedrock"
    profile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0"
    assert stack.allows("Analyzer", "bedrock:InvokeModel", profile) is planner
    assert all(stack.allows("Analyzer", "bedrock:InvokeModel", arn) is planner
               for arn in _bedrock_arns("amazon.nova-pro-v1:0"))
    assert not stack.allows("Analyzer", "bedrock:InvokeModel", _bedrock_arns("amazon.nova-pro-v1:0", ["eu-west-1"])[0])
    assert not stack.allows("Analyzer", "bedrock:InvokeModel", _bedrock_arns("amazon.nova-premier-v1:0")[0])
    assert stack.env("Analyzer")["MUSICVID_BEDROCK_MODEL_ID"] == "us.amazon.nova-pro-v1:0"

    summarizer = choice["Summarizer"] == "bedrock"
    claude = "anthropic.claude-sonnet-4-20250514-v1:0"
    assert stack.allows("Coordinator", "bedrock:InvokeModel",
                        f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{claude}") is summarizer
    assert all(stack.allows("Coordinator", "bedrock:InvokeModel", arn) is summarizer for arn in _bedrock_arns(claude))
    assert not stack.allows("Coordinator", "bedrock:InvokeModel", profile)  # the planner's model is not its

    sagemaker = choice["Generator"] == "sagemaker"
    endpoint = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/musicvid-musicgen"
    for fn in ("Analyzer", "AudioGenerator"):
        assert stack.allows(fn, "sagemaker:InvokeEndpointAsync", endpoint) is sagemaker, fn
        assert not stack.allows(fn, "sagemaker:InvokeEndpointAsync", endpoint + "-other")
    for key in ("sagemaker/out/abc.out", "sagemaker/fail/abc.err"):
        assert stack.allows("AudioGenerator", "s3:GetObject", stack.bucket_arn(key)) is sagemaker
        assert stack.allows("AudioGenerator", "s3:ListBucket", stack.bucket_arn(), **{"s3:prefix": key}) is sagemaker
    assert not stack.allows("AudioGenerator", "s3:GetObject", stack.bucket_arn("uploads/alice/v.mp4"))
    scaling = {n for n, r in stack.concrete["Resources"].items() if r["Type"].startswith(("AWS::ApplicationAutoScaling",
                                                                                          "AWS::CloudWatch"))}
    assert bool(scaling) is sagemaker

    library = choice["Generator"] == "library"
    assert stack.allows("AudioGenerator", "s3:GetObject", stack.bucket_arn("library/calm/track.opus")) is library
    assert stack.allows("AudioGenerator", "s3:ListBucket", stack.bucket_arn(), **{"s3:prefix": "library/"}) is library
    assert not stack.allows("AudioGenerator", "s3:PutObject", stack.bucket_arn("library/x"))


def test_a_bedrock_model_without_a_profile_is_invoked_in_this_region_only():
    stack = Stack(build_template.template(), {"Planner": "bedrock", "BedrockProfile": ""})
    assert stack.env("Analyzer")["MUSICVID_BEDROCK_MODEL_ID"] == "amazon.nova-pro-v1:0"
    arns = [s["Resource"] for s in stack.statements("Analyzer") if s["Action"] == "bedrock:InvokeModel"]
    assert arns == [_bedrock_arns("amazon.nova-pro-v1:0", ["us-east-1"])]
    eu = Stack(build_template.template(), {"Planner": "bedrock", "BedrockProfile": "eu",
                                           "BedrockRegions": "eu-central-1,eu-west-1,eu-west-3,eu-north-1"})
    for arn in _bedrock_arns("amazon.nova-pro-v1:0", ["eu-central-1", "eu-west-1", "eu-west-3", "eu-north-1"]):
        assert eu.allows("Analyzer", "bedrock:InvokeModel", arn)
    assert eu.allows("Analyzer", "bedrock:InvokeModel",
                     "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.amazon.nova-pro-v1:0")
    with pytest.raises(ValueError, match="SageMakerEndpoint"):  # SageMaker lower-cases endpoint ARNs
        Stack(build_template.template(), {"Generator": "sagemaker", "SageMakerEndpoint": "MusicGen"})


def test_the_async_endpoint_scales_from_zero_with_a_step_policy_on_backlog_without_capacity():
    stack = Stack(build_template.template(), {"Generator": "sagemaker", "SageMakerEndpoint": "mg"})
    res = stack.concrete["Resources"]
    target = stack.value(res["SageMakerScalableTarget"]["Properties"])
    assert target["ResourceId"] == "endpoint/mg/variant/AllTraffic" and target["MinCapacity"] == 0
    tracking = stack.value(res["SageMakerBacklogTracking"]["Properties"])["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["CustomizedMetricSpecification"]["MetricName"] == "ApproximateBacklogSizePerInstance"
    step = res["SageMakerWakeFromZero"]["Properties"]
    assert step["PolicyType"] == "StepScaling"
    assert step["StepScalingPolicyConfiguration"]["StepAdjustments"] == [{"MetricIntervalLowerBound": 0,
                                                                          "ScalingAdjustment": 1}]
    alarm = stack.value(res["SageMakerBacklogWithoutCapacityAlarm"]["Properties"])
    assert alarm["MetricName"] == "HasBacklogWithoutCapacity" and alarm["Dimensions"][0]["Value"] == "mg"
    assert res["SageMakerBacklogWithoutCapacityAlarm"]["Properties"]["AlarmActions"] == [{"Ref": "SageMakerWakeFromZero"}]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["Threshold"] == 1


def test_chalice_packages_for_the_stack_runtime_whatever_python_runs_it(monkeypatch):
    """infra/chalice_package.py: the template's Runtime and the wheels' ABI are RUNTIME's, and pip
    is told the target Python (else it matches cp314 wheels against the Python running it)."""
    pytest.importorskip("chalice")
    from chalice import config
    from chalice.deploy import packager

    monkeypatch.setattr(config.Config, "lambda_python_version", config.Config.lambda_python_version)
    monkeypatch.setattr(packager.PipRunner, "_execute", packager.PipRunner._execute)
    sys.path.insert(0, str(ROOT / "infra"))
    try:
        import chalice_package
    finally:
        sys.path.remove(str(ROOT / "infra"))
    chalice_package.patch_chalice()
    assert config.Config().lambda_python_version == build_template.RUNTIME

    class Pip:
        def __init__(self):
            self.calls = []

        def main(self, args, env_vars=None, shim=None):
            self.calls.append(args)
            return 0, b"", b""

    pip = Pip()
    runner = packager.PipRunner(pip=pip, osutils=None)
    runner.download_manylinux_wheels("cp314", ["pydantic-core==2.0"], "/tmp/x", ["manylinux2014_x86_64"])
    runner.download_all_dependencies("requirements.txt", "/tmp/x")
    [wheels, closure] = pip.calls
    assert wheels[:3] == ["download", "--python-version", build_template.RUNTIME.removeprefix("python")]
    assert "--python-version" not in closure  # resolving the closure stays the local pip's business
