"""infra/: the merge template wires the one ASL definition to Chalice's functions with least
privilege; the packaged stack passes cfn-lint; the definition passes asl-validator; the API
handler runs without the media stack."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "infra"))
import build_template  # noqa: E402

sys.path.remove(str(ROOT / "infra"))


def _actions(template: dict, role: str) -> set[str]:
    stmts = template["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    return {a for s in stmts for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def test_state_machine_is_the_one_definition_with_every_placeholder_bound():
    t = build_template.template()
    asl_text = (ROOT / "infra" / "workflow.asl.json").read_text()
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
    layered = [name for name, res in t["Resources"].items() if "Layers" in res.get("Properties", {})]
    assert layered == ["AvOperator"]  # the ffmpeg layer goes to av_operator only
    env = t["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert {"MUSICVID_AUTH_JWKS_URL", "MUSICVID_AUTH_AUDIENCE", "MUSICVID_STATE_MACHINE_ARN"} <= set(env)
    bucket = t["Resources"]["MediaBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == \
        {"SSEAlgorithm": "AES256"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())


@pytest.mark.slow
def test_packaged_stack_passes_cfn_lint(tmp_path):
    pytest.importorskip("chalice")
    pytest.importorskip("cfnlint")
    app = tmp_path / "app"
    app.mkdir()
    # requirements.txt is left out so packaging stays offline (make package bundles them).
    for name in ("app.py", "chalicelib", ".chalice"):
        src = ROOT / "chalice_app" / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, app / name)
    shutil.rmtree(app / ".chalice" / "deployments", ignore_errors=True)
    build_template.main([str(tmp_path / "merge.json"), "--no-ffmpeg-layer"])
    bindir = Path(sys.executable).parent
    env = {"AWS_DEFAULT_REGION": "us-east-1", "PATH": f"{bindir}:/usr/bin:/bin"}
    subprocess.run([str(bindir / "chalice"), "package", "--merge-template", str(tmp_path / "merge.json"),
                    str(tmp_path / "out")], cwd=app, env=env, check=True, capture_output=True, timeout=300)
    sam = json.loads((tmp_path / "out" / "sam.json").read_text())
    assert sam["Resources"]["APIHandler"]["Properties"]["Role"] == {"Fn::Sub": "${APIHandlerRole.Arn}"}
    assert sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["securityDefinitions"]["MusicvidUsers"][
        "x-amazon-apigateway-authorizer"]["providerARNs"] == [{"Fn::Sub": "${UserPool.Arn}"}]
    names = zipfile.ZipFile(tmp_path / "out" / "deployment.zip").namelist()
    assert "app.py" in names and not any(n.startswith(("numpy/", "cv2/", "librosa/", "scipy/")) for n in names)
    lint = subprocess.run([str(bindir / "cfn-lint"), str(tmp_path / "out" / "sam.json")], capture_output=True,
                          text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_definition_passes_asl_validator():
    exe = ROOT / "infra" / "node_modules" / ".bin" / "asl-validator"
    if not exe.exists():
        pytest.skip("asl-validator not installed (make install runs npm ci --prefix infra)")
    out = subprocess.run([str(exe), "--json-path", str(ROOT / "infra" / "workflow.asl.json")],
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
    from musicvid_core.config import Settings
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
