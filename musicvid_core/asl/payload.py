"""Input and output processing of a state: what its work sees and what it passes on.

InputPath, then Parameters (a payload template) give the effective input; the result then goes
through ResultSelector, ResultPath (into the raw state input) and OutputPath. Templates are JSON with
keys ending in ``.$`` taking a path or an intrinsic function call.
"""

from __future__ import annotations

from typing import Any

from musicvid_core.asl.intrinsics import evaluate_intrinsic, parse_intrinsic
from musicvid_core.asl.paths import put_result, read_path, select_path

__all__ = ["effective_input", "render_template", "state_output"]


def render_template(template: Any, data: Any, context: dict) -> Any:
    """Evaluate a payload template (Parameters, ItemSelector, ResultSelector) against ``data``."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                where = f"field {key!r}"
                out[key[:-2]] = (evaluate_intrinsic(parse_intrinsic(value), data, context, where)
                                 if value.startswith("States.") else read_path(value, data, context, where))
            else:
                out[key] = render_template(value, data, context)
        return out
    if isinstance(template, list):
        return [render_template(item, data, context) for item in template]
    return template


def effective_input(state: dict, data: Any, context: dict) -> Any:
    """InputPath, then Parameters: what a Task's function (or a Pass state's result) sees."""
    value = select_path(state, "InputPath", data, context)
    return render_template(state["Parameters"], value, context) if "Parameters" in state else value


def state_output(state: dict, data: Any, result: Any, context: dict) -> Any:
    """ResultSelector, then ResultPath into the raw state input, then OutputPath."""
    if "ResultSelector" in state:
        result = render_template(state["ResultSelector"], result, context)
    return select_path(state, "OutputPath", put_result(data, state.get("ResultPath", "$"), result), context)
