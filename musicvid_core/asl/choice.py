"""Choice rules: the comparison operators a Choice state supports, and whether a rule matches.

Takes a rule (Variable + one comparison, or And/Or/Not) and the state's effective input; gives a bool.
A value of the wrong type for an operator does not match, as on AWS.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from musicvid_core.asl.paths import MISSING, lookup_path, read_path

__all__ = ["COMPARISONS", "is_number", "rule_matches"]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# operator -> (accepts a value of this type, compare). A value of another type does not match, as on AWS.
COMPARISONS: dict[str, tuple[Callable[[Any], bool], Callable[[Any, Any], bool]]] = {
    "StringEquals": (lambda value: isinstance(value, str), operator.eq),
    "NumericEquals": (is_number, operator.eq),
    "NumericLessThan": (is_number, operator.lt),
    "NumericLessThanEquals": (is_number, operator.le),
    "NumericGreaterThan": (is_number, operator.gt),
    "NumericGreaterThanEquals": (is_number, operator.ge),
    "BooleanEquals": (lambda value: isinstance(value, bool), operator.eq),
}
_RULE_META = ("Variable", "Next", "Comment")


def rule_matches(rule: dict, data: Any, context: dict) -> bool:
    if "And" in rule:
        return all(rule_matches(inner, data, context) for inner in rule["And"])
    if "Or" in rule:
        return any(rule_matches(inner, data, context) for inner in rule["Or"])
    if "Not" in rule:
        return not rule_matches(rule["Not"], data, context)
    op = next(key for key in rule if key not in _RULE_META)
    if op == "IsPresent":
        return (lookup_path(rule["Variable"], data, context) is not MISSING) == rule[op]
    value = read_path(rule["Variable"], data, context, "Variable")
    accepts, compare = COMPARISONS[op]
    return accepts(value) and compare(value, rule[op])
