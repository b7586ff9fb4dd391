"""The web app's static site on AWS (issue 19): a private bucket behind CloudFront with origin access
control and security headers, the Cognito hosted UI as a public code + PKCE client back to the site,
the site's origin as the API's and the media bucket's one CORS origin, no dependency cycle, and the
bundle (files + config.json) that infra/static_site.py makes and deploys."""

from __future__ import annotations

import json
import re

import pytest

from musicvid_core.api import webapp
from tests.awsstack import SITE_DOMAIN, Stack, build_template

static_site = build_template.static_site  # infra/static_site.py, as build_template imported it
SITE = f"https://{SITE_DOMAIN}"


@pytest.fixture(scope="module")
def template():
    return build_template.template()


def _refs(node) -> set[str]:
    """Logical ids (and parameters) a template node refers to: Ref, Fn::GetAtt, ${X} / ${X.Attr}."""
    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref":
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else v.split(".")[0])
            elif k == "Fn::Sub":
                text, local = (v, {}) if isinstance(v, str) else (v[0], v[1])
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([\w:.]+)\}", text) if m not in local}
                found |= _refs(local)
            else:
                found |= _refs(v)
    elif isinstance(node, list):
        for v in node:
            found |= _refs(v)
    return found


@pytest.mark.parametrize("overrides", [{}, {"CorsOrigin": "https://app.example"}])
def test_the_stack_has_no_dependency_cycle(template, overrides):
    """CloudFormation refuses a cycle; the site's origin feeds the API and the buckets' CORS, so
    nothing the distribution depends on may depend on them."""
    resources = Stack(template, overrides).concrete["Resources"]
    deps = {n: _refs(r) & set(resources) - {n} for n, r in resources.items()}
    done: set[str] = set()
    while len(done) < len(deps):
        ready = {n for n, d in deps.items() if n not in done and d <= done}
        assert ready, f"dependency cycle among {sorted(set(deps) - done)}"
        done |= ready


def test_the_site_bucket_is_private_and_read_only_by_the_distribution(template):
    stack = Stack(template)
    res = stack.concrete["Resources"]
    bucket = res["SiteBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert "WebsiteConfiguration" not in bucket  # served through CloudFront only, never as a website
    allow, deny = stack.value(res["SiteBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"])
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"} and allow["Action"] == "s3:GetObject"
    assert allow["Resource"] == f"arn:aws:s3:::{stack.refs['SiteBucket']}/*"
    assert allow["Condition"] == {"StringEquals": {
        "AWS:SourceArn": f"arn:aws:cloudfront::123456789012:distribution/{stack.refs['SiteDistribution']}"}}
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    oac = res["SiteOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == ("s3", "always", "sigv4")


def test_the_distribution_serves_the_app_with_its_security_headers(template):
    stack = Stack(template)
    res = stack.concrete["Resources"]
    dist = res["SiteDistribution"]["Properties"]["DistributionConfig"]
    assert dist["DefaultRootObject"] == "index.html" and dist["Enabled"] is True
    [origin] = dist["Origins"]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["SiteOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert stack.value(origin["DomainName"]).startswith(stack.refs["SiteBucket"] + ".s3.")
    behaviour = dist["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https" and behaviour["TargetOriginId"] == origin["Id"]
    assert set(behaviour["AllowedMethods"]) == {"GET", "HEAD"}
    assert behaviour["ResponseHeadersPolicyId"] == {"Ref": "SiteHeadersPolicy"}
    headers = stack.value(res["SiteHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"])
    assert headers["FrameOptions"]["FrameOption"] == "DENY" and headers["ReferrerPolicy"]["ReferrerPolicy"] == "no-referrer"
    assert headers["ContentTypeOptions"]["Override"] and headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] > 0
    csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    connect = directives["connect-src"].split()
    assert "https://musicvid-123456789012.auth.us-east-1.amazoncognito.com" in connect  # the hosted UI's token call
    assert "https://*.execute-api.us-east-1.amazonaws.com" in connect  # the API
    assert "https://*.s3.us-east-1.amazonaws.com" in connect  # the presigned upload
    assert "https://*.s3.us-east-1.amazonaws.com" in directives["media-src"].split()  # presigned downloads play


@pytest.mark.parametrize("overrides,origin", [({}, SITE), ({"CorsOrigin": "https://app.example"}, "https://app.example")])
def test_the_sites_origin_is_the_one_cors_origin_and_the_sign_in_callback(template, overrides, origin):
    stack = Stack(template, overrides)
    res = stack.concrete["Resources"]
    client = stack.value(res["UserPoolClient"]["Properties"])
    assert client["GenerateSecret"] is False  # a public client: the page proves itself with PKCE
    assert client["AllowedOAuthFlowsUserPoolClient"] is True and client["AllowedOAuthFlows"] == ["code"]
    assert sorted(client["AllowedOAuthScopes"]) == ["email", "openid"]
    assert client["CallbackURLs"] == client["LogoutURLs"] == [f"{origin}/"]  # auth.js: origin + pathname
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    assert stack.value(res["UserPoolDomain"]["Properties"]) == {"Domain": "musicvid-123456789012",
                                                                "UserPoolId": stack.refs["UserPool"]}
    assert stack.env("APIHandler")["MUSICVID_CORS_ORIGIN"] == origin  # Chalice's CORS on every response
    [rule] = stack.value(res["MediaBucket"]["Properties"]["CorsConfiguration"]["CorsRules"])
    assert rule["AllowedOrigins"] == [origin]
    assert stack.value(stack.concrete["Outputs"]["SiteURL"]["Value"]) == f"{origin}/"


def test_finalize_points_chalices_baked_preflight_at_the_site():
    baked = "'http://localhost:3000'"
    options = {"x-amazon-apigateway-integration": {"type": "mock", "responses": {"default": {
        "statusCode": "200", "responseParameters": {"method.response.header.Access-Control-Allow-Origin": baked,
                                                    "method.response.header.Access-Control-Max-Age": "'600'"}}}}}
    sam = build_template.template()
    for fn in ("Analyzer", "AudioGenerator", "AvOperator"):  # as Chalice's package leaves them
        sam["Resources"][fn] = {"Properties": {"Role": "r", "Environment": {"Variables": {}}}}
    body = sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    body["paths"] = {"/jobs": {"options": json.loads(json.dumps(options)), "get": {}},
                     "/uploads": {"options": json.loads(json.dumps(options))}}
    out = build_template.finalize(sam)
    for overrides, origin in (({}, SITE), ({"CorsOrigin": "https://app.example"}, "https://app.example")):
        paths = Stack(out, overrides).concrete["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
        for path in ("/jobs", "/uploads"):
            params = paths[path]["options"]["x-amazon-apigateway-integration"]["responses"]["default"][
                "responseParameters"]
            assert Stack(out, overrides).value(params["method.response.header.Access-Control-Allow-Origin"]) == f"'{origin}'"
            assert params["method.response.header.Access-Control-Max-Age"] == "'600'"


def _outputs(template, overrides=None) -> dict[str, str]:
    stack = Stack(template, overrides)
    return {k: str(stack.value(v["Value"])) for k, v in stack.concrete["Outputs"].items()}


def test_the_web_config_output_is_the_pages_config(template):
    out = _outputs(template)
    config = static_site.config_from_outputs(out)
    assert config == {"api": f"https://{Stack(template).refs['RestAPI']}.execute-api.us-east-1.amazonaws.com/api",
                      "max_bytes": build_template.LIMITS["MUSICVID_MAX_INPUT_BYTES"],
                      "auth": {"kind": "cognito", "domain": "https://musicvid-123456789012.auth.us-east-1.amazoncognito.com",
                               "client_id": Stack(template).refs["UserPoolClient"], "scopes": ["openid", "email"]}}
    # describe-stacks' own shape is taken too; another stack's outputs are refused
    listed = {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in out.items()]}]}
    assert static_site.config_from_outputs(listed) == config
    with pytest.raises(ValueError, match="WebConfig"):
        static_site.config_from_outputs({"BucketName": "x"})


def test_the_bundle_holds_every_file_of_the_app_and_its_config(template, tmp_path):
    config = static_site.config_from_outputs(_outputs(template))
    files = static_site.bundle(tmp_path / "web", config)
    names = {p.name for p in files}
    assert names == {p.name for p in webapp.WEB_DIR.iterdir() if p.is_file()} | {"config.json"}
    assert {"index.html", "app.js", "auth.js", "api.js", "style.css"} <= names
    assert json.loads((tmp_path / "web" / "config.json").read_text()) == config
    assert (tmp_path / "web" / "app.js").read_bytes() == (webapp.WEB_DIR / "app.js").read_bytes()
    # without outputs (make package, before the first deploy): the files, no config yet
    assert "config.json" not in {p.name for p in static_site.bundle(tmp_path / "web", None)}
    assert static_site.main(["bundle", str(tmp_path / "cli")]) == 0 and (tmp_path / "cli" / "index.html").is_file()


class _Recorder:
    def __init__(self, **answers):
        self.calls, self.answers = [], answers

    def __getattr__(self, name):
        def call(**kw):
            self.calls.append((name, kw))
            return self.answers.get(name, {})
        return call


def test_deploy_writes_the_config_uploads_typed_files_and_invalidates(template, tmp_path):
    out = _outputs(template)
    listed = {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in out.items()]}]}
    clients = {"cloudformation": _Recorder(describe_stacks=listed), "s3": _Recorder(), "cloudfront": _Recorder()}

    class Session:
        def client(self, name):
            return clients[name]

    static_site.bundle(tmp_path / "web")
    static_site.deploy("musicvid", tmp_path / "web", Session())
    puts = {kw["Key"]: kw for name, kw in clients["s3"].calls if name == "put_object"}
    assert {kw["Bucket"] for kw in puts.values()} == {out["SiteBucketName"]}
    assert json.loads(puts["config.json"]["Body"]) == static_site.config_from_outputs(out)
    assert puts["index.html"]["ContentType"].startswith("text/html")
    assert puts["app.js"]["ContentType"].startswith("text/javascript")  # a module script needs a JS type
    assert all(kw["CacheControl"] == "no-cache" for kw in puts.values())
    [(name, kw)] = clients["cloudfront"].calls
    assert name == "create_invalidation" and kw["DistributionId"] == out["SiteDistributionId"]
