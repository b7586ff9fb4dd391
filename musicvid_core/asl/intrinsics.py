"""The intrinsic functions a payload template may call: ``States.Format``, ``States.StringToJson``,
``States.JsonToString``.

:func:`parse_intrinsic` takes the call text and gives a small syntax tree (ValueError when outside the
subset); :func:`evaluate_intrinsic` takes that tree and the data, and gives the JSON value, raising
:class:`~musicvid_core.asl.errors.StatesError` ``States.IntrinsicFailure`` (or ``States.Runtime`` for a
path argument that does not resolve).
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from musicvid_core.asl.errors import StatesError
from musicvid_core.asl.paths import parse_path, read_path

__all__ = ["evaluate_intrinsic", "parse_intrinsic"]

_INTRINSIC_ARITY = {"States.Format": None, "States.StringToJson": 1, "States.JsonToString": 1}
_INTRINSIC_NAME = re.compile(r"States\.[A-Za-z]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_PATH_ARGUMENT = re.compile(r"\$[^,()\s]*")


@cache
def parse_intrinsic(text: str) -> tuple:
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
        parse_path(path)
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


def evaluate_intrinsic(node: tuple, data: Any, context: dict, where: str) -> Any:
    kind = node[0]
    if kind == "str":
        return re.sub(r"\\(.)", lambda m: m.group(1), node[1], flags=re.DOTALL)
    if kind == "num":
        return node[1]
    if kind == "path":
        return read_path(node[1], data, context, where)
    _, name, args = node
    values = [evaluate_intrinsic(arg, data, context, where) for arg in args[1 if name == "States.Format" else 0:]]
    if name == "States.Format":
        return _format(args[0][1], values)
    if name == "States.StringToJson":
        try:
            return json.loads(values[0])
        except (TypeError, ValueError) as exc:
            raise StatesError("States.IntrinsicFailure", f"States.StringToJson in {where}: {exc}") from exc
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
                raise StatesError("States.IntrinsicFailure",
                                  f"States.Format template {template!r} has more {{}} than arguments")
            value = remaining.pop(0)
            if isinstance(value, (dict, list)):
                raise StatesError("States.IntrinsicFailure",
                                  "States.Format arguments must be strings, numbers, booleans or null")
            out.append(value if isinstance(value, str) else json.dumps(value))
            pos += 2
        else:
            out.append(template[pos])
            pos += 1
    if remaining:
        raise StatesError("States.IntrinsicFailure",
                          f"States.Format template {template!r} has fewer {{}} than arguments")
    return "".join(out)
