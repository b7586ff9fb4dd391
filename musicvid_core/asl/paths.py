"""Reference paths: reading ``$.a.b`` / ``$.a[0]`` / ``$$.Execution.Id`` and writing a ResultPath.

Takes a path string and the JSON data (plus the context object for ``$$``); gives the value, or raises
:class:`~musicvid_core.asl.errors.StatesError` ``States.Runtime`` when the path does not resolve.
:func:`parse_path` raises ValueError for a path outside the supported subset (validation turns that
into InvalidDefinition).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from musicvid_core.asl.errors import StatesError

__all__ = ["MISSING", "lookup_path", "parse_path", "put_result", "read_path", "select_path"]

_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
MISSING = object()


@cache
def parse_path(path: str) -> tuple[bool, tuple[str | int, ...]]:
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


def lookup_path(path: str, data: Any, context: dict) -> Any:
    """The value at ``path``, or ``MISSING``."""
    reads_context, steps = parse_path(path)
    node = context if reads_context else data
    for step in steps:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return MISSING
        elif not isinstance(node, dict) or step not in node:
            return MISSING
        node = node[step]
    return node


def read_path(path: str, data: Any, context: dict, where: str) -> Any:
    value = lookup_path(path, data, context)
    if value is MISSING:
        source = "context object" if path.startswith("$$") else "input"
        raise StatesError("States.Runtime", f"The JSONPath {path!r} specified for {where} could not be "
                                            f"found in the {source}")
    return value


def select_path(state: dict, field: str, data: Any, context: dict) -> Any:
    """Apply InputPath or OutputPath: absent means ``$``, null means an empty object."""
    path = state.get(field, "$")
    return {} if path is None else read_path(path, data, context, field)


def put_result(data: Any, result_path: str | None, value: Any) -> Any:
    """``data`` with ``value`` at ``result_path``. Copies only the objects along the path, so the
    state input (which a Catch may still need) is never modified."""
    if result_path is None:
        return data
    _, steps = parse_path(result_path)

    def put(node: Any, rest: tuple[str | int, ...]) -> Any:
        if not rest:
            return value
        if not isinstance(node, dict):
            raise StatesError("States.Runtime", f"ResultPath {result_path!r} cannot be applied: "
                                                f"it goes through a {type(node).__name__}, not an object")
        return {**node, rest[0]: put(node.get(rest[0], {}), rest[1:])}

    return put(data, steps)
