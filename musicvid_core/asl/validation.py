"""Reading and checking a definition before anything runs.

:func:`load_definition` takes an ASL file and DefinitionSubstitutions and gives the definition dict;
:func:`validate_definition` raises :class:`~musicvid_core.asl.errors.InvalidDefinition` for a malformed
definition or one that uses ASL outside the supported subset (listed in the package docstring), so the
local run never silently differs from the one on AWS.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from musicvid_core.asl.choice import COMPARISONS, is_number
from musicvid_core.asl.errors import InvalidDefinition
from musicvid_core.asl.intrinsics import parse_intrinsic
from musicvid_core.asl.paths import parse_path

__all__ = ["load_definition", "validate_definition"]


def load_definition(path: str | Path, substitutions: dict[str, str] | None = None) -> dict:
    """Read an ASL file, replacing ``${Name}`` in every string as Step Functions'
    DefinitionSubstitutions do. Unknown placeholders stay as they are; they fail when resolved."""
    with open(path, encoding="utf-8") as fh:
        definition = json.load(fh)
    return _substitute(definition, substitutions or {})


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def _substitute(value: Any, substitutions: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: substitutions.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {key: _substitute(item, substitutions) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, substitutions) for item in value]
    return value



def validate_definition(definition: Any) -> None:
    """Check a whole definition; InvalidDefinition names the first problem and where it is."""
    _validate_machine(definition, "")


_COMMON = frozenset({"Type", "Comment"})
_IO = frozenset({"InputPath", "OutputPath"})
_FLOW = frozenset({"Next", "End"})
_FIELDS = {
    "Task": _COMMON | _IO | _FLOW | {"Resource", "Parameters", "ResultSelector", "ResultPath",
                                     "TimeoutSeconds", "Retry", "Catch"},
    "Map": _COMMON | _IO | _FLOW | {"ItemsPath", "ItemSelector", "Parameters", "ItemProcessor", "Iterator",
                                    "MaxConcurrency", "ResultSelector", "ResultPath", "Retry", "Catch"},
    "Pass": _COMMON | _IO | _FLOW | {"Result", "Parameters", "ResultPath"},
    "Choice": _COMMON | _IO | {"Choices", "Default"},
    "Wait": _COMMON | _IO | _FLOW | {"Seconds", "SecondsPath"},
    "Succeed": _COMMON | _IO,
    "Fail": _COMMON | {"Error", "Cause"},
}
_RETRIER_FIELDS = {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds",
                   "JitterStrategy", "Comment"}
_CATCHER_FIELDS = {"ErrorEquals", "Next", "ResultPath", "Comment"}


def _validate_machine(machine: Any, where: str, extra_fields: frozenset = frozenset()) -> None:
    label = where or "definition"
    if not isinstance(machine, dict):
        raise InvalidDefinition(f"{label}: must be a JSON object")
    unknown = set(machine) - {"StartAt", "States", "Comment", "Version"} - extra_fields
    if unknown:
        raise InvalidDefinition(f"{label}: unsupported field(s) {sorted(unknown)}")
    states = machine.get("States")
    if not isinstance(states, dict) or not states:
        raise InvalidDefinition(f"{label}: States must be a non-empty object")
    if machine.get("StartAt") not in states:
        raise InvalidDefinition(f"{label}: StartAt {machine.get('StartAt')!r} is not one of its States")
    for name, state in states.items():
        _validate_state(state, states, f"{where}state {name!r}")
    # Like Step Functions, refuse unreachable states: usually a typo in a Next.
    reachable, pending = set(), [machine["StartAt"]]
    while pending:
        name = pending.pop()
        if name not in reachable:
            reachable.add(name)
            pending.extend(_transitions(states[name]))
    if set(states) - reachable:
        raise InvalidDefinition(f"{label}: state(s) {sorted(set(states) - reachable)} cannot be reached from StartAt")


def _transitions(state: dict) -> list[str]:
    targets = [state[key] for key in ("Next", "Default") if key in state]
    targets += [rule["Next"] for rule in state.get("Choices", [])]
    targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


def _validate_state(state: Any, states: dict, where: str) -> None:
    if not isinstance(state, dict):
        raise InvalidDefinition(f"{where}: must be a JSON object")
    kind = state.get("Type")
    if kind not in _FIELDS:
        raise InvalidDefinition(f"{where}: Type {kind!r} is not supported (supported: {', '.join(_FIELDS)})")
    unknown = set(state) - _FIELDS[kind]
    if unknown:
        raise InvalidDefinition(f"{where}: field(s) {sorted(unknown)} are not supported on a {kind} state")
    if "Next" in _FIELDS[kind] and ("Next" in state) == (state.get("End") is True):
        raise InvalidDefinition(f"{where}: needs exactly one of Next or \"End\": true")

    for field in ("InputPath", "OutputPath"):
        if state.get(field) is not None:
            _check_path(state[field], f"{where} {field}")
    for field in ("ItemsPath", "SecondsPath"):
        if field in state:
            _check_path(state[field], f"{where} {field}")
    if state.get("ResultPath") is not None:
        _check_path(state["ResultPath"], f"{where} ResultPath", reference=True)
    for field in ("Parameters", "ItemSelector", "ResultSelector"):
        if field in state:
            _check_template(state[field], f"{where} {field}")

    if kind == "Task":
        if not isinstance(state.get("Resource"), str) or not state["Resource"]:
            raise InvalidDefinition(f"{where}: Resource must be a non-empty string")
        if "TimeoutSeconds" in state and not (is_number(state["TimeoutSeconds"]) and state["TimeoutSeconds"] > 0):
            raise InvalidDefinition(f"{where}: TimeoutSeconds must be a positive number")
    elif kind == "Map":
        _validate_map(state, where)
    elif kind == "Choice":
        if not isinstance(state.get("Choices"), list) or not state["Choices"]:
            raise InvalidDefinition(f"{where}: Choices must be a non-empty list")
        for index, rule in enumerate(state["Choices"]):
            _check_rule(rule, f"{where} Choices[{index}]", top=True)
    elif kind == "Wait":
        if ("Seconds" in state) == ("SecondsPath" in state):
            raise InvalidDefinition(f"{where}: needs exactly one of Seconds or SecondsPath")
        if "Seconds" in state and not (is_number(state["Seconds"]) and state["Seconds"] >= 0):
            raise InvalidDefinition(f"{where}: Seconds must be a non-negative number")
    elif kind == "Fail":
        for field in ("Error", "Cause"):
            if not isinstance(state.get(field, ""), str):
                raise InvalidDefinition(f"{where}: {field} must be a string")

    for index, retrier in enumerate(state.get("Retry", [])):
        _check_retrier(retrier, f"{where} Retry[{index}]", last=index == len(state["Retry"]) - 1)
    for index, catcher in enumerate(state.get("Catch", [])):
        _check_catcher(catcher, f"{where} Catch[{index}]", last=index == len(state["Catch"]) - 1)
    for target in _transitions(state):
        if target not in states:
            raise InvalidDefinition(f"{where}: transition to {target!r}, which is not a state here")


def _validate_map(state: dict, where: str) -> None:
    if ("ItemProcessor" in state) == ("Iterator" in state):
        raise InvalidDefinition(f"{where}: needs exactly one of ItemProcessor or Iterator")
    if "ItemSelector" in state and "Parameters" in state:
        raise InvalidDefinition(f"{where}: ItemSelector and its legacy name Parameters cannot both be set")
    concurrency = state.get("MaxConcurrency", 0)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 0:
        raise InvalidDefinition(f"{where}: MaxConcurrency must be a non-negative integer")
    if "ItemProcessor" in state:
        _validate_machine(state["ItemProcessor"], f"{where} ItemProcessor > ", frozenset({"ProcessorConfig"}))
        config = state["ItemProcessor"].get("ProcessorConfig", {})
        if not isinstance(config, dict) or config.get("Mode", "INLINE") != "INLINE":
            raise InvalidDefinition(f"{where}: only ProcessorConfig Mode INLINE is supported, not {config!r}")
    else:
        _validate_machine(state["Iterator"], f"{where} Iterator > ")


def _check_path(path: Any, where: str, reference: bool = False) -> None:
    if not isinstance(path, str):
        raise InvalidDefinition(f"{where}: a path must be a string, not {path!r}")
    try:
        reads_context, steps = parse_path(path)
    except ValueError as exc:
        raise InvalidDefinition(f"{where}: {exc}") from None
    if reference and (reads_context or any(isinstance(step, int) for step in steps)):
        raise InvalidDefinition(f"{where}: ResultPath {path!r} must be '$' or '$.a.b' (no '$$', no indexes)")


def _check_template(template: Any, where: str) -> None:
    if isinstance(template, dict):
        for key, value in template.items():
            if not key.endswith(".$"):
                _check_template(value, where)
            elif not isinstance(value, str):
                raise InvalidDefinition(f"{where}: {key!r} must be a path or an intrinsic function call")
            elif value.startswith("States."):
                try:
                    parse_intrinsic(value)
                except ValueError as exc:
                    raise InvalidDefinition(f"{where}: {key!r}: {exc}") from None
            else:
                _check_path(value, f"{where} {key!r}")
    elif isinstance(template, list):
        for item in template:
            _check_template(item, where)


def _check_rule(rule: Any, where: str, top: bool) -> None:
    if not isinstance(rule, dict):
        raise InvalidDefinition(f"{where}: a Choice rule must be a JSON object")
    if top != ("Next" in rule):
        raise InvalidDefinition(f"{where}: " + ("a top-level Choice rule needs Next" if top
                                         else "a nested Choice rule cannot have Next"))
    body = set(rule) - {"Next", "Comment"}
    if body in ({"And"}, {"Or"}):
        inner = rule[body.pop()]
        if not isinstance(inner, list) or not inner:
            raise InvalidDefinition(f"{where}: And/Or need a non-empty list of rules")
        for index, item in enumerate(inner):
            _check_rule(item, f"{where}[{index}]", top=False)
        return
    if body == {"Not"}:
        _check_rule(rule["Not"], f"{where} Not", top=False)
        return
    operators = body - {"Variable"}
    if "Variable" not in rule or len(operators) != 1:
        raise InvalidDefinition(f"{where}: a Choice rule needs Variable and exactly one comparison "
                         f"(supported: {', '.join([*COMPARISONS, 'IsPresent'])}), or And/Or/Not")
    _check_path(rule["Variable"], f"{where} Variable")
    op = operators.pop()
    if op == "IsPresent":
        valid = isinstance(rule[op], bool)
    elif op in COMPARISONS:
        valid = COMPARISONS[op][0](rule[op])
    else:
        raise InvalidDefinition(f"{where}: comparison {op!r} is not supported "
                         f"(supported: {', '.join([*COMPARISONS, 'IsPresent'])})")
    if not valid:
        raise InvalidDefinition(f"{where}: {op} has an operand of the wrong type: {rule[op]!r}")


def _check_errors(rule: Any, allowed: set[str], where: str, last: bool) -> None:
    if not isinstance(rule, dict):
        raise InvalidDefinition(f"{where}: must be a JSON object")
    unknown = set(rule) - allowed
    if unknown:
        raise InvalidDefinition(f"{where}: unsupported field(s) {sorted(unknown)}")
    names = rule.get("ErrorEquals")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidDefinition(f"{where}: ErrorEquals must be a non-empty list of error names")
    if "States.ALL" in names and (len(names) > 1 or not last):
        raise InvalidDefinition(f"{where}: States.ALL must be alone in ErrorEquals and in the last entry")


def _check_retrier(retrier: Any, where: str, last: bool) -> None:
    _check_errors(retrier, _RETRIER_FIELDS, where, last)
    checks = {
        "IntervalSeconds": (lambda v: is_number(v) and v > 0, "a positive number"),
        "MaxAttempts": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                        "a non-negative integer"),
        "BackoffRate": (lambda v: is_number(v) and v >= 1, "a number >= 1"),
        "MaxDelaySeconds": (lambda v: is_number(v) and v > 0, "a positive number"),
        "JitterStrategy": (lambda v: v in ("FULL", "NONE"), "FULL or NONE"),
    }
    for field, (valid, expected) in checks.items():
        if field in retrier and not valid(retrier[field]):
            raise InvalidDefinition(f"{where}: {field} must be {expected}, not {retrier[field]!r}")


def _check_catcher(catcher: Any, where: str, last: bool) -> None:
    _check_errors(catcher, _CATCHER_FIELDS, where, last)
    if not isinstance(catcher.get("Next"), str):
        raise InvalidDefinition(f"{where}: Next is required")
    if catcher.get("ResultPath") is not None:
        _check_path(catcher["ResultPath"], f"{where} ResultPath", reference=True)
