"""What the stack will be with given parameter values, computed offline: CloudFormation's condition
and intrinsic-function evaluation for the subset our template uses, and an IAM check of one request
against a role's statements. For the tests (one per backend combination) and for a look before a
deploy::

    python infra/cfn.py build/package/sam.json Planner=bedrock Generator=sagemaker   # each role's statements

- :func:`apply_conditions` keeps the template's intrinsics but settles every ``Fn::If`` and
  ``Condition``: the concrete template a deploy with those values creates (cfn-lint can lint it).
- :func:`evaluate` also resolves ``Ref``, ``Fn::Sub``, ``Fn::Join``, ``Fn::Split``, ``Fn::Select``
  and ``Fn::GetAtt`` (``.Arn``) against parameter values and the physical names of resources.
- :func:`allows`: whether Allow statements grant ``action`` on ``resource`` (wildcards ``*`` and
  ``?``; the ``StringLike`` / ``StringEquals`` conditions the template uses; no Deny, which the
  roles do not have). Unknown intrinsics or conditions raise ValueError: nothing is guessed.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import sys
from pathlib import Path

NO_VALUE = object()


def _condition(name: str, conditions: dict, params: dict, seen: dict) -> bool:
    if name not in seen:
        if name not in conditions:
            raise ValueError(f"unknown condition {name!r}")
        seen[name] = _truth(conditions[name], conditions, params, seen)
    return seen[name]


def _truth(expr, conditions: dict, params: dict, seen: dict) -> bool:
    (fn, arg), = expr.items()
    if fn == "Condition":
        return _condition(arg, conditions, params, seen)
    if fn == "Fn::Equals":
        a, b = (evaluate(x, params, {}) for x in arg)
        return str(a) == str(b)
    if fn == "Fn::Not":
        return not _truth(arg[0], conditions, params, seen)
    if fn == "Fn::And":
        return all(_truth(x, conditions, params, seen) for x in arg)
    if fn == "Fn::Or":
        return any(_truth(x, conditions, params, seen) for x in arg)
    raise ValueError(f"unsupported condition function {fn}")


def parameter_values(template: dict, overrides: dict | None = None) -> dict:
    """Each parameter's value: the override, else the default (lists split like CloudFormation's
    CommaDelimitedList); ValueError for one without either or outside AllowedValues."""
    values = {}
    for name, spec in template.get("Parameters", {}).items():
        value = (overrides or {}).get(name, spec.get("Default"))
        if value is None:
            raise ValueError(f"parameter {name} needs a value")
        if spec.get("AllowedValues") and str(value) not in map(str, spec["AllowedValues"]):
            raise ValueError(f"{name}={value!r} is not one of {spec['AllowedValues']}")
        if spec.get("AllowedPattern") and not re.fullmatch(spec["AllowedPattern"], str(value)):
            raise ValueError(f"{name}={value!r} does not match {spec['AllowedPattern']}")
        if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
            value = value.split(",")
        values[name] = value
    return values


def apply_conditions(template: dict, overrides: dict | None = None) -> dict:
    """A copy of ``template`` as a deploy with parameter ``overrides`` creates it: resources and
    outputs whose Condition is false removed, every ``Fn::If`` replaced by its branch (``AWS::NoValue``
    dropped), the Conditions section gone and the parameters' defaults set to the values used."""
    out = copy.deepcopy(template)
    params = parameter_values(out, overrides)
    conditions, seen = out.pop("Conditions", {}), {}

    def settle(node):
        if isinstance(node, dict):
            if set(node) == {"Fn::If"}:
                name, yes, no = node["Fn::If"]
                return settle(yes if _condition(name, conditions, params, seen) else no)
            if node == {"Ref": "AWS::NoValue"}:
                return NO_VALUE
            return {k: v for k, v in ((k, settle(v)) for k, v in node.items()) if v is not NO_VALUE}
        if isinstance(node, list):
            return [v for v in (settle(x) for x in node) if v is not NO_VALUE]
        return node

    for section in ("Resources", "Outputs"):
        for name in list(out.get(section, {})):
            cond = out[section][name].pop("Condition", None)
            if cond is not None and not _condition(cond, conditions, params, seen):
                del out[section][name]
    for section in ("Resources", "Outputs"):
        out[section] = settle(out.get(section, {}))
    for name, value in params.items():
        out["Parameters"][name]["Default"] = ",".join(value) if isinstance(value, list) else value
    return out


PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
          "AWS::StackName": "musicvid", "AWS::URLSuffix": "amazonaws.com"}


def evaluate(node, params: dict, refs: dict, attrs: dict | None = None):
    """``node`` with every intrinsic function resolved: ``Ref`` of a parameter (``params``), a
    pseudo parameter (PSEUDO, overridable in ``params``) or a resource (``refs``: logical id ->
    physical id), ``Fn::GetAtt``/``${X.Arn}`` from ``attrs`` ("X.Arn" -> value)."""
    attrs = {} if attrs is None else attrs
    scope = {**PSEUDO, **refs, **params}

    def look(name: str):
        if "." in name:
            if name not in attrs:
                raise ValueError(f"no value for {name}")
            return attrs[name]
        if name not in scope:
            raise ValueError(f"no value for Ref {name}")
        return scope[name]

    def ev(x):
        if isinstance(x, list):
            return [ev(v) for v in x]
        if not isinstance(x, dict):
            return x
        if len(x) != 1 or not next(iter(x)).startswith(("Fn::", "Ref")):
            return {k: ev(v) for k, v in x.items()}
        (fn, arg), = x.items()
        if fn == "Ref":
            return look(arg)
        if fn == "Fn::GetAtt":
            return look(".".join(arg) if isinstance(arg, list) else arg)
        if fn == "Fn::Sub":
            text, local = (arg, {}) if isinstance(arg, str) else (arg[0], {k: ev(v) for k, v in arg[1].items()})
            return re.sub(r"\$\{([\w:.]+)\}", lambda m: str(local[m.group(1)] if m.group(1) in local
                                                          else look(m.group(1))), text)
        if fn == "Fn::Join":
            sep, items = arg
            return sep.join(str(v) for v in ev(items))
        if fn == "Fn::Split":
            return ev(arg[1]).split(arg[0])
        if fn == "Fn::Select":
            return ev(arg[1])[int(ev(arg[0]))]
        raise ValueError(f"unsupported function {fn}")

    return ev(node)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _conditions_hold(condition: dict | None, context: dict) -> bool:
    for op, tests in (condition or {}).items():
        if op not in ("StringLike", "StringEquals"):
            raise ValueError(f"unsupported condition operator {op}")
        for key, wanted in tests.items():
            if key not in context:
                return False
            match = fnmatch.fnmatchcase if op == "StringLike" else str.__eq__
            if not any(match(str(context[key]), str(w)) for w in _as_list(wanted)):
                return False
    return True


def allows(statements: list[dict], action: str, resource: str, context: dict | None = None) -> bool:
    """Whether one of the (evaluated) Allow ``statements`` grants ``action`` on ``resource`` given the
    request's condition keys ``context`` (e.g. ``{"s3:prefix": "jobs/x/"}``)."""
    for s in statements:
        if s.get("Effect") != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action, a) for a in _as_list(s["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in _as_list(s["Resource"])):
            continue
        if _conditions_hold(s.get("Condition"), context or {}):
            return True
    return False


def role_statements(template: dict, role: str) -> list[dict]:
    """The statements of IAM role ``role`` (one inline policy) in a condition-applied template."""
    return [s for p in template["Resources"][role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: cfn.py TEMPLATE.json [Name=value ...]")
    template = json.loads(Path(argv[0]).read_text())
    overrides = {"MediaImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/musicvid-media:tag",
                 **dict(arg.split("=", 1) for arg in argv[1:])}
    concrete = apply_conditions(template, overrides)
    params = parameter_values(concrete, overrides)
    refs = {name: f"{name.lower()}-physical-id" for name in concrete["Resources"]}
    for name, res in concrete["Resources"].items():
        if res["Type"] == "AWS::IAM::Role":
            print(f"{name}:")
            for s in evaluate(role_statements(concrete, name), params, refs, _AnyAttr()):
                print("  " + json.dumps(s))


class _AnyAttr(dict):
    """Attribute values for a printout: ``X.Arn`` stands for itself."""

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key):
        return f"<{key}>"


if __name__ == "__main__":
    main(sys.argv[1:])
