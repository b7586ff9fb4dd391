"""The deploy template as a deploy would make it, for the infra and rehearsal tests: parameter
values per backend combination, physical names for the resources, and each function's evaluated
role statements and environment (infra/cfn.py does the CloudFormation part)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "infra"))
import build_template  # noqa: E402
import cfn  # noqa: E402

sys.path.remove(str(ROOT / "infra"))
__all__ = ["COMBINATIONS", "MEDIA_IMAGE", "SITE_DOMAIN", "Stack", "build_template", "cfn", "combo_id"]

REGION, ACCOUNT = "us-east-1", "123456789012"
SITE_DOMAIN = "d111111abcdef8.cloudfront.net"
MEDIA_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/musicvid-media:1eaf2239d41e"
COMBINATIONS = [{"Planner": p, "Generator": g, "Summarizer": s} for p in ("rules", "bedrock")
                for g in ("procedural", "library", "sagemaker") for s in ("template", "bedrock")]


def combo_id(choice: dict) -> str:
    return "-".join(choice.values())


class Stack:
    """The stack a deploy with parameter ``overrides`` creates from template ``template``, named as
    ``names`` says (logical id -> physical id: bucket, table, pool, client, state machine)."""

    def __init__(self, template: dict, overrides: dict | None = None, names: dict | None = None) -> None:
        self.overrides = {"MediaImageUri": MEDIA_IMAGE, **(overrides or {})}
        self.concrete = cfn.apply_conditions(template, self.overrides)
        self.params = cfn.parameter_values(self.concrete, self.overrides)
        names = names or {}
        self.refs = {n: names.get(n, f"{n.lower()}-id") for n in self.concrete["Resources"]}
        self.refs["StateMachine"] = names.get("StateMachine",
                                              f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:musicvid")
        self.attrs = {f"{n}.Arn": self._arn(n) for n in self.concrete["Resources"]}
        self.attrs.update({"SiteDistribution.DomainName": SITE_DOMAIN,  # the web app's static site
                           "SiteBucket.RegionalDomainName": f"{self.refs.get('SiteBucket')}.s3.{REGION}.amazonaws.com",
                           "SiteOriginAccessControl.Id": "E2OACEXAMPLE"})

    def _arn(self, name: str) -> str:
        kind, ref = self.concrete["Resources"][name].get("Type", ""), self.refs[name]
        return {"AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{ref}",
                "AWS::Cognito::UserPool": f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{ref}",
                "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{ref}"}.get(
            kind, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{ref}")

    def value(self, node):
        return cfn.evaluate(node, self.params, self.refs, self.attrs)

    def statements(self, fn: str) -> list[dict]:
        """Function ``fn``'s role statements, every intrinsic resolved."""
        return self.value(cfn.role_statements(self.concrete, f"{fn}Role"))

    def allows(self, fn: str, action: str, resource: str, **context) -> bool:
        return cfn.allows(self.statements(fn), action, resource, context)

    def env(self, fn: str) -> dict[str, str]:
        """The environment variables function ``fn`` runs with (Lambda passes strings)."""
        variables = self.concrete["Resources"][fn]["Properties"]["Environment"]["Variables"]
        return {k: str(v) for k, v in self.value(variables).items()}

    def bucket_arn(self, key: str = "") -> str:
        return f"arn:aws:s3:::{self.refs['MediaBucket']}" + (f"/{key}" if key else "")


CHALICE_DIR = ROOT / "chalice_app"


def load_chalice_app(name: str):
    """chalice_app/app.py imported as module ``name`` (its ``chalicelib`` found beside it), fresh each call."""
    import importlib.util

    sys.path.insert(0, str(CHALICE_DIR))
    try:
        spec = importlib.util.spec_from_file_location(name, CHALICE_DIR / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(CHALICE_DIR))
