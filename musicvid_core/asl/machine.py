"""A focused Amazon States Language interpreter: runs ``musicvid_core/workflow/workflow.asl.json`` in-process.

Step Functions runs the definition on AWS; on one machine this module runs the same file, calling a
Python function wherever AWS would invoke a Lambda. It implements the part of the ASL that the
definition uses plus a few obvious neighbours. :class:`StateMachine` rejects anything else when it is
built (:class:`InvalidDefinition`, a ValueError), so a definition that grows an unsupported feature
fails loudly instead of running differently here than on AWS. ``docs/asl-runner.md`` explains why
this exists rather than pyaslengine or moto, and how it differs from Step Functions.

Supported subset
----------------
States
    Task     Resource, Parameters, ResultSelector, ResultPath (null too), InputPath, OutputPath,
             TimeoutSeconds, Retry, Catch, Next/End
    Map      ItemsPath, ItemSelector (or legacy Parameters), ItemProcessor (ProcessorConfig Mode
             INLINE) or legacy Iterator, MaxConcurrency (0 = unbounded), ResultSelector, ResultPath,
             InputPath, OutputPath, Retry, Catch, Next/End
    Pass     Result, Parameters, ResultPath, InputPath, OutputPath, Next/End
    Choice   Choices with Variable + one of StringEquals, NumericEquals, NumericLessThan[Equals],
             NumericGreaterThan[Equals], BooleanEquals, IsPresent; And/Or/Not; Default
    Wait     Seconds or SecondsPath, InputPath, OutputPath, Next/End
    Succeed  InputPath, OutputPath
    Fail     Error, Cause
Paths
    ``$``, ``$.a.b``, ``$.a[0]``; the context object ``$$.Execution.{Id,Name,Input,StartTime}`` and, in
    a Map's ItemSelector, ``$$.Map.Item.{Index,Value}``. ResultPath: ``$`` or ``$.a.b`` (or null).
Payload templates
    Keys ending in ``.$`` (Parameters, ItemSelector, ResultSelector) take a path or one of the
    intrinsic functions ``States.Format``, ``States.StringToJson``, ``States.JsonToString``.
Errors
    A task's exception becomes an error named after its class, with Lambda's JSON Cause;
    ``States.ALL``, ``States.TaskFailed`` (everything but ``States.Timeout``), ``States.Timeout``,
    ``States.NoChoiceMatched``, ``States.IntrinsicFailure``, ``Runtime.MarshalError`` (a result that is
    not JSON) and ``States.Runtime`` (a path that does not resolve; as on AWS, never retried or caught).

Not supported: Parallel, JSONata, Distributed Map and its ItemReader/ItemBatcher/ResultWriter,
``*Path`` comparison operators, other string and timestamp comparisons, Timestamp waits,
HeartbeatSeconds, execution-level TimeoutSeconds.

Unlike Step Functions this runs on threads in one process, with no durable history: a Task's
TimeoutSeconds stops the wait, not the call (Python cannot kill a thread), and a failing Map lets its
running iterations reach their next state before it fails. docs/asl-runner.md lists the differences.
"""

from __future__ import annotations

import json
import operator
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["ExecutionFailed", "InvalidDefinition", "StateMachine", "load_definition"]


class ExecutionFailed(Exception):
    """The execution ended in a Fail state or with an error that no Catch handled."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(error, cause)  # both in args, so the exception pickles
        self.error = error
        self.cause = cause

    def __str__(self) -> str:
        return f"{self.error}: {self.cause}" if self.cause else self.error


class InvalidDefinition(ValueError):
    """The definition is malformed or uses ASL outside the supported subset (raised on construction)."""


class _StatesError(Exception):
    """An ASL error in flight: what Retry and Catch match on. ``state`` is where it arose."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(error, cause)
        self.error = error
        self.cause = cause
        self.state: str | None = None


class _Aborted(Exception):
    """A sibling Map iteration failed, so this one stops. Not a :class:`_StatesError` on purpose:
    no Retry or Catch inside the iteration may intercept it."""


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


# --- paths ---------------------------------------------------------------------------------------
_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_MISSING = object()


@cache
def _parse_path(path: str) -> tuple[bool, tuple[str | int, ...]]:
    """``(reads_context_object, steps)`` for a path of the supported subset, else ValueError."""
    if not path.startswith("$"):
        raise ValueError(f"JSONPath {path!r} must start with '$'")
    reads_context = path.startswith("$$")
    pos = 2 if reads_context else 1
    steps: list[str | int] = []
    while pos < len(path):
        match = _PATH_STEP.match(path, pos)
        if match is None:
            raise ValueError(f"JSONPath {path!r} is outside the supported subset ($.a.b, $.a[0]) "
                             f"at {path[pos:]!r}")
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    return reads_context, tuple(steps)


def _lookup(path: str, data: Any, context: dict) -> Any:
    """The value at ``path``, or ``_MISSING``."""
    reads_context, steps = _parse_path(path)
    node = context if reads_context else data
    for step in steps:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return _MISSING
        elif not isinstance(node, dict) or step not in node:
            return _MISSING
        node = node[step]
    return node


def _read(path: str, data: Any, context: dict, where: str) -> Any:
    value = _lookup(path, data, context)
    if value is _MISSING:
        source = "context object" if path.startswith("$$") else "input"
        raise _StatesError("States.Runtime", f"The JSONPath {path!r} specified for {where} could not be "
                                             f"found in the {source}")
    return value


def _select(state: dict, field: str, data: Any, context: dict) -> Any:
    """Apply InputPath or OutputPath: absent means ``$``, null means an empty object."""
    path = state.get(field, "$")
    return {} if path is None else _read(path, data, context, field)


def _put(data: Any, result_path: str | None, value: Any) -> Any:
    """``data`` with ``value`` at ``result_path``. Copies only the objects along the path, so the
    state input (which a Catch may still need) is never modified."""
    if result_path is None:
        return data
    _, steps = _parse_path(result_path)

    def put(node: Any, rest: tuple[str | int, ...]) -> Any:
        if not rest:
            return value
        if not isinstance(node, dict):
            raise _StatesError("States.Runtime", f"ResultPath {result_path!r} cannot be applied: "
                                                 f"it goes through a {type(node).__name__}, not an object")
        return {**node, rest[0]: put(node.get(rest[0], {}), rest[1:])}

    return put(data, steps)


# --- payload templates and intrinsic functions ---------------------------------------------------
_INTRINSIC_ARITY = {"States.Format": None, "States.StringToJson": 1, "States.JsonToString": 1}
_INTRINSIC_NAME = re.compile(r"States\.[A-Za-z]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_PATH_ARGUMENT = re.compile(r"\$[^,()\s]*")


@cache
def _parse_intrinsic(text: str) -> tuple:
    """Parse ``States.Name(arg, ...)`` into nested tuples: ``("call", name, args)``,
    ``("str", raw)`` (escapes kept: States.Format needs to tell ``\\{`` from ``{``),
    ``("num", value)``, ``("path", path)``. ValueError for anything outside the subset."""
    node, pos = _parse_call(text, 0)
    if text[pos:].strip():
        raise ValueError(f"unexpected {text[pos:]!r} after the intrinsic function call in {text!r}")
    return node


def _parse_call(text: str, pos: int) -> tuple[tuple, int]:
    match = _INTRINSIC_NAME.match(text, pos)
    if match is None or not text.startswith("(", match.end()):
        raise ValueError(f"malformed intrinsic function call {text!r}")
    name = match.group()
    if name not in _INTRINSIC_ARITY:
        raise ValueError(f"intrinsic function {name} is not supported by this interpreter "
                         f"(supported: {', '.join(_INTRINSIC_ARITY)})")
    args: list[tuple] = []
    pos = _skip_spaces(text, match.end() + 1)
    while not text.startswith(")", pos):
        if args:
            if not text.startswith(",", pos):
                raise ValueError(f"expected ',' or ')' at {text[pos:]!r} in {text!r}")
            pos = _skip_spaces(text, pos + 1)
        arg, pos = _parse_argument(text, pos)
        args.append(arg)
        pos = _skip_spaces(text, pos)
    arity = _INTRINSIC_ARITY[name]
    if arity is not None and len(args) != arity:
        raise ValueError(f"{name} takes {arity} argument(s), got {len(args)} in {text!r}")
    if name == "States.Format" and (not args or args[0][0] != "str"):
        raise ValueError(f"States.Format needs a string literal template first, in {text!r}")
    return ("call", name, tuple(args)), pos + 1


def _parse_argument(text: str, pos: int) -> tuple[tuple, int]:
    if text.startswith("'", pos):
        end = pos + 1
        while end < len(text) and text[end] != "'":
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise ValueError(f"unterminated string literal in {text!r}")
        return ("str", text[pos + 1:end]), end + 1
    if text.startswith("$", pos):
        path = _PATH_ARGUMENT.match(text, pos).group()
        _parse_path(path)
        return ("path", path), pos + len(path)
    if text.startswith("States.", pos):
        return _parse_call(text, pos)
    number = _NUMBER.match(text, pos)
    if number is None:
        raise ValueError(f"unsupported intrinsic function argument at {text[pos:]!r} in {text!r}")
    return ("num", json.loads(number.group())), number.end()


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _evaluate_intrinsic(node: tuple, data: Any, context: dict, where: str) -> Any:
    kind = node[0]
    if kind == "str":
        return re.sub(r"\\(.)", lambda m: m.group(1), node[1], flags=re.DOTALL)
    if kind == "num":
        return node[1]
    if kind == "path":
        return _read(node[1], data, context, where)
    _, name, args = node
    values = [_evaluate_intrinsic(arg, data, context, where) for arg in args[1 if name == "States.Format" else 0:]]
    if name == "States.Format":
        return _format(args[0][1], values)
    if name == "States.StringToJson":
        try:
            return json.loads(values[0])
        except (TypeError, ValueError) as exc:
            raise _StatesError("States.IntrinsicFailure", f"States.StringToJson in {where}: {exc}") from exc
    return json.dumps(values[0], separators=(",", ":"))


def _format(template: str, values: list[Any]) -> str:
    """States.Format: each ``{}`` takes the next value; ``\\{``, ``\\}``, ``\\'``, ``\\\\`` are literal."""
    out: list[str] = []
    remaining = list(values)
    pos = 0
    while pos < len(template):
        if template[pos] == "\\":
            out.append(template[pos + 1])
            pos += 2
        elif template.startswith("{}", pos):
            if not remaining:
                raise _StatesError("States.IntrinsicFailure",
                                   f"States.Format template {template!r} has more {{}} than arguments")
            value = remaining.pop(0)
            if isinstance(value, (dict, list)):
                raise _StatesError("States.IntrinsicFailure",
                                   "States.Format arguments must be strings, numbers, booleans or null")
            out.append(value if isinstance(value, str) else json.dumps(value))
            pos += 2
        else:
            out.append(template[pos])
            pos += 1
    if remaining:
        raise _StatesError("States.IntrinsicFailure",
                           f"States.Format template {template!r} has fewer {{}} than arguments")
    return "".join(out)


def _render(template: Any, data: Any, context: dict) -> Any:
    """Evaluate a payload template (Parameters, ItemSelector, ResultSelector) against ``data``."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                where = f"field {key!r}"
                out[key[:-2]] = (_evaluate_intrinsic(_parse_intrinsic(value), data, context, where)
                                 if value.startswith("States.") else _read(value, data, context, where))
            else:
                out[key] = _render(value, data, context)
        return out
    if isinstance(template, list):
        return [_render(item, data, context) for item in template]
    return template


def _effective_input(state: dict, data: Any, context: dict) -> Any:
    """InputPath, then Parameters: what a Task's function (or a Pass state's result) sees."""
    value = _select(state, "InputPath", data, context)
    return _render(state["Parameters"], value, context) if "Parameters" in state else value


def _finish(state: dict, data: Any, result: Any, context: dict) -> Any:
    """ResultSelector, then ResultPath into the raw state input, then OutputPath."""
    if "ResultSelector" in state:
        result = _render(state["ResultSelector"], result, context)
    return _select(state, "OutputPath", _put(data, state.get("ResultPath", "$"), result), context)


# --- Choice rules --------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# operator -> (accepts a value of this type, compare). A value of another type does not match, as on AWS.
_COMPARISONS: dict[str, tuple[Callable[[Any], bool], Callable[[Any, Any], bool]]] = {
    "StringEquals": (lambda value: isinstance(value, str), operator.eq),
    "NumericEquals": (_is_number, operator.eq),
    "NumericLessThan": (_is_number, operator.lt),
    "NumericLessThanEquals": (_is_number, operator.le),
    "NumericGreaterThan": (_is_number, operator.gt),
    "NumericGreaterThanEquals": (_is_number, operator.ge),
    "BooleanEquals": (lambda value: isinstance(value, bool), operator.eq),
}
_RULE_META = ("Variable", "Next", "Comment")


def _rule_matches(rule: dict, data: Any, context: dict) -> bool:
    if "And" in rule:
        return all(_rule_matches(inner, data, context) for inner in rule["And"])
    if "Or" in rule:
        return any(_rule_matches(inner, data, context) for inner in rule["Or"])
    if "Not" in rule:
        return not _rule_matches(rule["Not"], data, context)
    op = next(key for key in rule if key not in _RULE_META)
    if op == "IsPresent":
        return (_lookup(rule["Variable"], data, context) is not _MISSING) == rule[op]
    value = _read(rule["Variable"], data, context, "Variable")
    accepts, compare = _COMPARISONS[op]
    return accepts(value) and compare(value, rule[op])


# --- definition validation -----------------------------------------------------------------------
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
        if "TimeoutSeconds" in state and not (_is_number(state["TimeoutSeconds"]) and state["TimeoutSeconds"] > 0):
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
        if "Seconds" in state and not (_is_number(state["Seconds"]) and state["Seconds"] >= 0):
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
        reads_context, steps = _parse_path(path)
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
                    _parse_intrinsic(value)
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
                         f"(supported: {', '.join([*_COMPARISONS, 'IsPresent'])}), or And/Or/Not")
    _check_path(rule["Variable"], f"{where} Variable")
    op = operators.pop()
    if op == "IsPresent":
        valid = isinstance(rule[op], bool)
    elif op in _COMPARISONS:
        valid = _COMPARISONS[op][0](rule[op])
    else:
        raise InvalidDefinition(f"{where}: comparison {op!r} is not supported "
                         f"(supported: {', '.join([*_COMPARISONS, 'IsPresent'])})")
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
        "IntervalSeconds": (lambda v: _is_number(v) and v > 0, "a positive number"),
        "MaxAttempts": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                        "a non-negative integer"),
        "BackoffRate": (lambda v: _is_number(v) and v >= 1, "a number >= 1"),
        "MaxDelaySeconds": (lambda v: _is_number(v) and v > 0, "a positive number"),
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


# --- execution -----------------------------------------------------------------------------------
def _matches(names: list[str], error: str) -> bool:
    if error == "States.Runtime":  # as on AWS: a broken path is a definition bug, never retried or caught
        return False
    return (error in names or "States.ALL" in names
            or ("States.TaskFailed" in names and error != "States.Timeout"))


def _json_copy(value: Any) -> Any:
    """A JSON round trip: what a Lambda boundary does. Handlers get their own copy of their input and
    a result that is not JSON fails here as it would on AWS."""
    return json.loads(json.dumps(value))


def _task_error(exc: Exception) -> _StatesError:
    """A Python exception as Lambda + Step Functions report it: Error is the class name."""
    name = type(exc).__name__
    return _StatesError(name, json.dumps({"errorMessage": str(exc), "errorType": name}))


def _call_with_timeout(function: Callable[[Any], Any], payload: Any, seconds: float) -> Any:
    """``function(payload)``, giving up after ``seconds`` with States.Timeout.

    Python cannot stop a thread, so a call that times out keeps running in the background and its
    result is dropped; ``daemon=True`` keeps such a call from holding the process open at exit.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["result"] = function(payload)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="asl-task", daemon=True).start()
    if not done.wait(seconds):
        raise _StatesError("States.Timeout", f"Task timed out after {seconds} seconds")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@dataclass(frozen=True)
class _Scope:
    """Where a state runs: the context object, and inside a Map iteration its index and the event
    that a failing sibling sets."""

    context: dict
    index: int | None = None
    abort: threading.Event | None = None


class StateMachine:
    """One validated definition, runnable any number of times (also concurrently).

    ``resolve(resource)`` returns the callable for a Task's Resource; it is called when the Task
    runs, so an unknown resource fails that Task (catchable, like a missing Lambda) rather than the
    whole run up front. Retry and Wait delays are multiplied by ``time_scale`` and passed to
    ``sleep``; Task ``TimeoutSeconds`` are real time and not scaled. ``on_event`` gets one dict per
    step, called under a lock so a progress display needs no locking of its own; it must not raise.
    """

    def __init__(self, definition: dict, resolve: Callable[[str], Callable[[dict], Any]], *,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 time_scale: float = 1.0, on_event: Callable[[dict], None] | None = None) -> None:
        _validate_machine(definition, "")
        if not _is_number(time_scale) or time_scale < 0:
            raise ValueError(f"time_scale must be a non-negative number, not {time_scale!r}")
        self._definition = definition
        self._resolve = resolve
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._time_scale = time_scale
        self._on_event = on_event
        self._event_lock = threading.Lock()
        self._handlers: dict[str, Callable[[str, dict, Any, _Scope], tuple[Any, str | None]]] = {
            "Task": self._task, "Map": self._map, "Pass": self._pass, "Choice": self._choice,
            "Wait": self._wait, "Succeed": self._succeed, "Fail": self._fail,
        }

    def run(self, input: dict, name: str | None = None) -> Any:
        """Run to the end and return the final output; ExecutionFailed on a Fail state or an
        error no Catch handled."""
        name = name or str(uuid.uuid4())
        data = _json_copy(input)
        started = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        scope = _Scope({"Execution": {"Id": f"local:execution:{name}", "Name": name, "Input": data,
                                      "StartTime": started}})
        try:
            output, last = self._run_states(self._definition, data, scope)
        except _StatesError as exc:
            self._emit(scope, "ExecutionFailed", exc.state, execution=name, error=exc.error, cause=exc.cause)
            raise ExecutionFailed(exc.error, exc.cause) from exc
        self._emit(scope, "ExecutionSucceeded", last, execution=name, output=output)
        return output

    def _emit(self, scope: _Scope, kind: str, state: str | None, **fields: Any) -> None:
        if self._on_event is None:
            return
        event = {"type": kind, "state": state, **fields}
        if scope.index is not None:
            event["index"] = scope.index
        with self._event_lock:
            self._on_event(event)

    def _run_states(self, machine: dict, data: Any, scope: _Scope) -> tuple[Any, str]:
        """Run ``machine`` (the definition or a Map's processor) from StartAt to a terminal state;
        return the output and the name of the state that ended it."""
        name = machine["StartAt"]
        while True:
            if scope.abort is not None and scope.abort.is_set():
                raise _Aborted
            state = machine["States"][name]
            self._emit(scope, "StateEntered", name)
            try:
                output, next_name = self._handlers[state["Type"]](name, state, data, scope)
            except _StatesError as exc:
                exc.state = exc.state or name
                raise
            self._emit(scope, "StateExited", name, next=next_name)
            if next_name is None:
                return output, name
            data, name = output, next_name

    def _with_retry_and_catch(self, name: str, state: dict, data: Any, scope: _Scope,
                              attempt: Callable[[], Any]) -> tuple[Any, str | None]:
        retriers = state.get("Retry", [])
        retries = [0] * len(retriers)  # per retrier, fresh each time the state is entered
        while True:
            try:
                return attempt(), state.get("Next")
            except _StatesError as exc:
                error = exc
            # The first retrier that matches decides, even when it has no attempts left.
            index = next((i for i, r in enumerate(retriers) if _matches(r["ErrorEquals"], error.error)), None)
            if index is None or retries[index] >= retriers[index].get("MaxAttempts", 3):
                break
            delay = self._retry_delay(retriers[index], retries[index])
            retries[index] += 1
            self._emit(scope, "TaskRetry", name, error=error.error, cause=error.cause,
                       attempt=retries[index], delay=delay)
            if scope.abort is not None and scope.abort.is_set():
                raise _Aborted  # a sibling iteration failed: this result would be thrown away
            self._sleep(delay)
        self._emit(scope, "TaskFailed", name, error=error.error, cause=error.cause)
        catcher = next((c for c in state.get("Catch", []) if _matches(c["ErrorEquals"], error.error)), None)
        if catcher is None:
            raise error
        output = _put(data, catcher.get("ResultPath", "$"), {"Error": error.error, "Cause": error.cause})
        return output, catcher["Next"]

    def _retry_delay(self, retrier: dict, retries_so_far: int) -> float:
        delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** retries_so_far
        if "MaxDelaySeconds" in retrier:
            delay = min(delay, retrier["MaxDelaySeconds"])
        if retrier.get("JitterStrategy", "NONE") == "FULL":
            delay = self._rng.uniform(0, delay)
        return delay * self._time_scale

    def _invoke(self, resource: str, payload: Any, timeout: float | None) -> Any:
        payload = _json_copy(payload)
        try:
            function = self._resolve(resource)
            result = function(payload) if timeout is None else _call_with_timeout(function, payload, timeout)
        except _StatesError:
            raise
        except Exception as exc:
            raise _task_error(exc) from exc
        try:
            return _json_copy(result)
        except (TypeError, ValueError) as exc:
            raise _StatesError("Runtime.MarshalError", f"Unable to marshal response: {exc}") from exc

    # One method per state type: (name, state, input, scope) -> (output, next state or None at the end).
    def _task(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        payload = _effective_input(state, data, scope.context)

        def attempt() -> Any:
            result = self._invoke(state["Resource"], payload, state.get("TimeoutSeconds"))
            return _finish(state, data, result, scope.context)

        return self._with_retry_and_catch(name, state, data, scope, attempt)

    def _map(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        effective = _select(state, "InputPath", data, scope.context)
        items = _read(state.get("ItemsPath", "$"), effective, scope.context, "ItemsPath")
        if not isinstance(items, list):
            raise _StatesError("States.Runtime", f"ItemsPath selected a {type(items).__name__}, not an array")
        selector = state.get("ItemSelector", state.get("Parameters"))
        inputs = [item if selector is None else
                  _render(selector, effective, {**scope.context, "Map": {"Item": {"Index": i, "Value": item}}})
                  for i, item in enumerate(items)]
        processor = state.get("ItemProcessor", state.get("Iterator"))
        workers = state.get("MaxConcurrency", 0) or len(inputs)

        def attempt() -> Any:
            results = self._run_iterations(processor, inputs, workers, scope)
            return _finish(state, data, results, scope.context)

        return self._with_retry_and_catch(name, state, data, scope, attempt)

    def _run_iterations(self, processor: dict, inputs: list[Any], workers: int, scope: _Scope) -> list[Any]:
        """Run one iteration per input on ``workers`` threads; results in input order. After the
        first failure no iteration starts and running ones stop at their next state or retry; the
        failure is raised only once all have returned, so none is still writing when the Map's
        Catch target runs."""
        if not inputs:
            return []
        results: list[Any] = [None] * len(inputs)
        failures: list[_StatesError] = []
        abort = threading.Event()

        def iterate(index: int) -> None:
            try:  # _run_states stops before its first state once a sibling has failed
                results[index], _ = self._run_states(processor, inputs[index],
                                                     _Scope(scope.context, index, abort))
            except _Aborted:
                pass
            except _StatesError as exc:
                failures.append(exc)
                abort.set()

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="asl-map") as pool:
            for future in [pool.submit(iterate, index) for index in range(len(inputs))]:
                future.result()
        if failures:
            raise failures[0]
        return results

    def _pass(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        result = state["Result"] if "Result" in state else _effective_input(state, data, scope.context)
        return _finish(state, data, result, scope.context), state.get("Next")

    def _choice(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        effective = _select(state, "InputPath", data, scope.context)
        output = _select(state, "OutputPath", effective, scope.context)
        for rule in state["Choices"]:
            if _rule_matches(rule, effective, scope.context):
                return output, rule["Next"]
        if "Default" in state:
            return output, state["Default"]
        raise _StatesError("States.NoChoiceMatched", f"no Choices rule matched in {name!r} and it has no Default")

    def _wait(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        effective = _select(state, "InputPath", data, scope.context)
        if "Seconds" in state:
            seconds = state["Seconds"]
        else:
            seconds = _read(state["SecondsPath"], effective, scope.context, "SecondsPath")
            if not _is_number(seconds) or seconds < 0:
                raise _StatesError("States.Runtime", f"SecondsPath selected {seconds!r}, not a non-negative number")
        self._sleep(seconds * self._time_scale)
        return _select(state, "OutputPath", effective, scope.context), state.get("Next")

    def _succeed(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        return _select(state, "OutputPath", _select(state, "InputPath", data, scope.context), scope.context), None

    def _fail(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        raise _StatesError(state.get("Error", ""), state.get("Cause", ""))
