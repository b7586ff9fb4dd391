"""The web app's static site on AWS: its stack resources, its bundle, and the deploy step that
fills the bundle's ``config.json`` from the stack and uploads it.

Resources (merged into the stack by :mod:`build_template`):

- ``SiteBucket``: private (public access blocked, owner-enforced, SSE AES256, TLS only); only the
  distribution reads it, through origin access control (``SiteOriginAccessControl``, SigV4 always;
  the bucket policy names the distribution's ARN);
- ``SiteDistribution``: CloudFront, https only, default root object ``index.html``, the managed
  CachingOptimized policy, and ``SiteHeadersPolicy``: the page's CSP (api/webapp.py) and
  nosniff, DENY framing, no-referrer and HSTS on every file;
- ``UserPoolDomain``: the Cognito hosted UI (``https://PREFIX-ACCOUNT.auth.REGION.amazoncognito.com``)
  that the page signs in with (the app client's code + PKCE settings are in build_template).

The site's origin (:data:`SITE_ORIGIN`) is the distribution's domain unless the ``CorsOrigin``
parameter names another (a custom domain in front of it, or a developer's local page): the API's
CORS (Lambda responses, Chalice's preflight, the 4XX/5XX gateway responses), the media bucket's
CORS and the app client's callback and sign-out URLs all use it.

The CSP lists the API, the media bucket and the hosted UI. The hosted UI's host is exact; the API
and the bucket are named by their region's wildcard (``https://*.execute-api.REGION...``,
``https://*.s3.REGION...``): their exact names would make the distribution depend on them while
they depend on the distribution's domain (CORS), a cycle CloudFormation refuses.

Usage::

    python infra/static_site.py bundle build/package/web [--outputs OUTPUTS.json]   # make package
    python infra/static_site.py deploy --stack NAME [--bundle build/package/web]    # after sam deploy

``bundle`` copies the files (and writes ``config.json`` from saved stack outputs: ``aws
cloudformation describe-stacks --stack-name NAME --query "Stacks[0].Outputs"``); ``deploy`` reads
the outputs itself (boto3), writes ``config.json``, uploads every file with its type and
``Cache-Control: no-cache``, and invalidates the distribution.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from musicvid_core.api import webapp  # noqa: E402

WEB_DIR = webapp.WEB_DIR
SCOPES = ("openid", "email")
AUTH_DOMAIN = "${AuthDomainPrefix}-${AWS::AccountId}"  # the hosted UI's prefix: unique per account
AUTH_URL = f"https://{AUTH_DOMAIN}.auth.${{AWS::Region}}.amazoncognito.com"
API_URL = "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api"  # Chalice's stage "api"
SITE_ORIGIN = {"Fn::If": ["HasCorsOrigin", {"Ref": "CorsOrigin"},
                          {"Fn::Sub": "https://${SiteDistribution.DomainName}"}]}
SITE_ROOT = {"Fn::If": ["HasCorsOrigin", {"Fn::Sub": "${CorsOrigin}/"},
                        {"Fn::Sub": "https://${SiteDistribution.DomainName}/"}]}
CONDITIONS = {"HasCorsOrigin": {"Fn::Not": [{"Fn::Equals": [{"Ref": "CorsOrigin"}, ""]}]}}
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"  # CloudFront's managed cache policy
PARAMETERS = {
    "CorsOrigin": {"Type": "String", "Default": "", "AllowedPattern": r"^(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?)?$",
                   "Description": "the web origin allowed to call the API, POST uploads and sign in; empty: the "
                                  "site's own CloudFront domain (SiteURL). Set it for a custom domain in front of "
                                  "the site, or to call the API from a page served elsewhere"},
    "AuthDomainPrefix": {"Type": "String", "Default": "musicvid", "AllowedPattern": r"^[a-z0-9](?:[a-z0-9-]{0,40})$",
                         "Description": "the Cognito hosted UI's domain prefix; the account id is appended "
                                        "(PREFIX-ACCOUNT.auth.REGION.amazoncognito.com)"},
}


def origin_expr(quoted: bool = False) -> dict:
    """SITE_ORIGIN as a string expression (``'ORIGIN'`` when ``quoted``: API Gateway's header values)."""
    return {"Fn::Sub": ["'${Origin}'" if quoted else "${Origin}", {"Origin": SITE_ORIGIN}]}


def content_security_policy() -> str:
    """The CSP the distribution sends with every file (``${...}`` for CloudFormation's Fn::Sub)."""
    return webapp.content_security_policy("https://*.execute-api.${AWS::Region}.${AWS::URLSuffix}",
                                          "https://*.s3.${AWS::Region}.${AWS::URLSuffix}", AUTH_URL)


def web_config_template(max_bytes: int) -> str:
    """The ``config.json`` of the deployed page with ``${...}`` for Fn::Sub (output ``WebConfig``)."""
    config = webapp.cognito_config(api=API_URL, domain=AUTH_URL, client_id="${UserPoolClient}",
                                   max_bytes=max_bytes, scopes=SCOPES)
    return json.dumps(config, separators=(",", ":"))


def resources() -> dict:
    """The site's resources (see the module docstring)."""
    bucket = "arn:${AWS::Partition}:s3:::${SiteBucket}"
    distribution = "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${SiteDistribution}"
    return {
        "SiteBucket": {"Type": "AWS::S3::Bucket", "Properties": {
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}}},
        "SiteBucketPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {
            "Bucket": {"Ref": "SiteBucket"},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Sid": "CloudFrontReadsThroughOAC", "Effect": "Allow",
                 "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject",
                 "Resource": {"Fn::Sub": f"{bucket}/*"},
                 "Condition": {"StringEquals": {"AWS:SourceArn": {"Fn::Sub": distribution}}}},
                {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                 "Resource": [{"Fn::Sub": bucket}, {"Fn::Sub": f"{bucket}/*"}],
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}}},
        "SiteOriginAccessControl": {"Type": "AWS::CloudFront::OriginAccessControl", "Properties": {
            "OriginAccessControlConfig": {"Name": {"Fn::Sub": "${AWS::StackName}-site"},
                                          "OriginAccessControlOriginType": "s3",
                                          "SigningBehavior": "always", "SigningProtocol": "sigv4"}}},
        "SiteHeadersPolicy": {"Type": "AWS::CloudFront::ResponseHeadersPolicy", "Properties": {
            "ResponseHeadersPolicyConfig": {
                "Name": {"Fn::Sub": "${AWS::StackName}-site"},
                "SecurityHeadersConfig": {
                    "ContentSecurityPolicy": {"ContentSecurityPolicy": {"Fn::Sub": content_security_policy()},
                                              "Override": True},
                    "ContentTypeOptions": {"Override": True},
                    "FrameOptions": {"FrameOption": "DENY", "Override": True},
                    "ReferrerPolicy": {"ReferrerPolicy": "no-referrer", "Override": True},
                    "StrictTransportSecurity": {"AccessControlMaxAgeSec": 63072000, "IncludeSubdomains": True,
                                                "Override": True}}}}},
        "SiteDistribution": {"Type": "AWS::CloudFront::Distribution", "Properties": {"DistributionConfig": {
            "Enabled": True, "Comment": {"Fn::Sub": "${AWS::StackName} web app"},
            "DefaultRootObject": "index.html", "HttpVersion": "http2and3", "PriceClass": "PriceClass_100",
            "Origins": [{"Id": "site", "DomainName": {"Fn::GetAtt": ["SiteBucket", "RegionalDomainName"]},
                         "OriginAccessControlId": {"Fn::GetAtt": ["SiteOriginAccessControl", "Id"]},
                         "S3OriginConfig": {"OriginAccessIdentity": ""}}],  # empty: OAC, not the legacy OAI
            "DefaultCacheBehavior": {"TargetOriginId": "site", "ViewerProtocolPolicy": "redirect-to-https",
                                     "AllowedMethods": ["GET", "HEAD"], "CachedMethods": ["GET", "HEAD"],
                                     "Compress": True, "CachePolicyId": CACHING_OPTIMIZED,
                                     "ResponseHeadersPolicyId": {"Ref": "SiteHeadersPolicy"}}}}},
        "UserPoolDomain": {"Type": "AWS::Cognito::UserPoolDomain", "Properties": {
            "Domain": {"Fn::Sub": AUTH_DOMAIN}, "UserPoolId": {"Ref": "UserPool"}}},
    }


def app_client_oauth() -> dict:
    """The app client's hosted-UI settings: a public client (no secret; the page proves itself with
    PKCE), the authorization-code grant only, scopes openid email, back to the site's root."""
    return {"GenerateSecret": False, "AllowedOAuthFlowsUserPoolClient": True, "AllowedOAuthFlows": ["code"],
            "AllowedOAuthScopes": list(SCOPES), "SupportedIdentityProviders": ["COGNITO"],
            "CallbackURLs": [SITE_ROOT], "LogoutURLs": [SITE_ROOT]}


def outputs(max_bytes: int) -> dict:
    return {"SiteURL": {"Value": SITE_ROOT},
            "SiteBucketName": {"Value": {"Ref": "SiteBucket"}},
            "SiteDistributionId": {"Value": {"Ref": "SiteDistribution"}},
            "ApiUrl": {"Value": {"Fn::Sub": API_URL}},
            "AuthDomain": {"Value": {"Fn::Sub": AUTH_URL}},
            "WebConfig": {"Value": {"Fn::Sub": web_config_template(max_bytes)},
                          "Description": "the page's config.json (python infra/static_site.py deploy writes it)"}}


def preflight_origins(definition: dict) -> int:
    """Point Chalice's CORS preflight (mock OPTIONS integrations in the API definition, which bake
    the origin Chalice saw at package time) at SITE_ORIGIN. Returns how many it rewrote."""
    name = "method.response.header.Access-Control-Allow-Origin"
    count = 0
    for methods in definition.get("paths", {}).values():
        integration = methods.get("options", {}).get("x-amazon-apigateway-integration", {})
        for response in integration.get("responses", {}).values():
            params = response.get("responseParameters", {})
            if name in params:
                params[name] = origin_expr(quoted=True)
                count += 1
    return count


# --- the bundle and the deploy ------------------------------------------------------------------
def _outputs_dict(raw) -> dict[str, str]:
    """Stack outputs as {key: value}, from describe-stacks' list or an already flat dict."""
    if isinstance(raw, dict) and "Stacks" in raw:
        raw = raw["Stacks"][0].get("Outputs", [])
    if isinstance(raw, list):
        return {o["OutputKey"]: o["OutputValue"] for o in raw}
    return dict(raw)


def config_from_outputs(raw) -> dict:
    """The page's config.json from the stack's outputs (``WebConfig``), checked by
    :func:`webapp.cognito_config`. ValueError when the outputs lack it (not this stack)."""
    out = _outputs_dict(raw)
    if "WebConfig" not in out:
        raise ValueError("the stack outputs have no WebConfig: is this the musicvid stack?")
    cfg = json.loads(out["WebConfig"])
    auth = cfg["auth"]
    return webapp.cognito_config(api=cfg["api"], domain=auth["domain"], client_id=auth["client_id"],
                                 max_bytes=cfg["max_bytes"], scopes=tuple(auth["scopes"]))


def bundle(dest: Path, config: dict | None = None) -> list[Path]:
    """Copy the app's files (api/web/) to ``dest`` (emptied first), plus ``config.json`` when
    ``config`` is given. Returns the files written, sorted."""
    dest = Path(dest)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(WEB_DIR, dest, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    if config is not None:
        (dest / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    return sorted(p for p in dest.rglob("*") if p.is_file())


def content_type(path: Path) -> str:
    ext = path.suffix.lstrip(".")
    if ext in webapp.TYPES:
        return webapp.TYPES[ext]
    return "application/json" if ext == "json" else (mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def upload(s3, bucket: str, folder: Path) -> list[str]:
    """Put every file of ``folder`` into ``bucket`` with its type, ``no-cache`` (the page checks
    for a new version on each load) and SSE; returns the keys."""
    keys = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        key = path.relative_to(folder).as_posix()
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=content_type(path),
                      CacheControl="no-cache", ServerSideEncryption="AES256")
        keys.append(key)
    return keys


def deploy(stack: str, folder: Path, session=None) -> dict:
    """Write ``folder``/config.json from stack ``stack``'s outputs, upload ``folder`` to its
    SiteBucket and invalidate its distribution. Returns the outputs used."""
    import time

    import boto3

    session = session or boto3.session.Session()
    raw = session.client("cloudformation").describe_stacks(StackName=stack)
    out = _outputs_dict(raw)
    config = config_from_outputs(out)
    if Path(folder).is_dir():  # `make package` made it: only the config is new
        (Path(folder) / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    else:
        bundle(folder, config)
    upload(session.client("s3"), out["SiteBucketName"], Path(folder))
    session.client("cloudfront").create_invalidation(
        DistributionId=out["SiteDistributionId"],
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": str(time.time_ns())})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python infra/static_site.py")
    sub = parser.add_subparsers(dest="what", required=True)
    b = sub.add_parser("bundle", help="the static files (and config.json from saved stack outputs)")
    b.add_argument("dest")
    b.add_argument("--outputs", help="describe-stacks output (JSON) of the deployed stack")
    d = sub.add_parser("deploy", help="config.json from the stack, upload to its SiteBucket, invalidate")
    d.add_argument("--stack", required=True)
    d.add_argument("--bundle", default=str(ROOT / "build" / "package" / "web"))
    args = parser.parse_args(argv)
    try:
        if args.what == "bundle":
            config = config_from_outputs(json.loads(Path(args.outputs).read_text())) if args.outputs else None
            files = bundle(Path(args.dest), config)
            print(f"{args.dest}: {len(files)} files" + ("" if config else
                  "; config.json comes at deploy (python infra/static_site.py deploy --stack NAME)"))
        else:
            out = deploy(args.stack, Path(args.bundle))
            print(f"deployed to {out['SiteURL']}")
    except (ValueError, KeyError, OSError) as exc:
        parser.exit(2, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
