"""The in-process ASL interpreter (musicvid_core.asl), and the real workflow definition on it.

Nothing here sleeps: every machine gets a recording ``sleep`` and a seeded ``rng``.
"""

from __future__ import annotations

import json
import random
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from musicvid_core.asl import ExecutionFailed, InvalidDefinition, StateMachine, load_definition
from musicvid_core.domain.errors import RETRYABLE_ERROR_NAMES, GenerationError, TransientBackendError

WORKFLOW = Path(__file__).resolve().parents[1] / "musicvid_core" / "workflow" / "workflow.asl.json"


class Boom(Exception):
    pass


class Other(Exception):
    pass


class Harness:
    """A machine with recorded sleeps and events; ``functions`` maps Resource -> callable."""

    def __init__(self, definition: dict, functions: dict, *, seed: int = 7, **kwargs) -> None:
        self.sleeps: list[float] = []
        self.events: list[dict] = []
        self.machine = StateMachine(definition, functions.__getitem__, sleep=self.sleeps.append,
                                    rng=random.Random(seed), on_event=self.events.append, **kwargs)

    def run(self, data=None, **kwargs):
        return self.machine.run({} if data is None else data, **kwargs)

    def fail(self, data=None) -> ExecutionFailed:
        with pytest.raises(ExecutionFailed) as info:
            self.run(data)
        return info.value

    def entered(self, top_level_only: bool = True) -> list[str]:
        return [e["state"] for e in self.events
                if e["type"] == "StateEntered" and not (top_level_only and "index" in e)]


def machine(states: dict, start: str | None = None) -> dict:
    return {"StartAt": start or next(iter(states)), "States": states}


def task(resource: str = "fn", **fields) -> dict:
    return {"Type": "Task", "Resource": resource, **({"End": True} if "Next" not in fields else {}), **fields}


def flaky(exc: Exception, failures: int, result=None):
    """Raises ``exc`` on the first ``failures`` calls, then returns ``result``."""
    calls: list = []

    def fn(event):
        calls.append(event)
        if len(calls) <= failures:
            raise exc
        return result

    fn.calls = calls
    return fn


def always(exc: Exception):
    return flaky(exc, 10**9)


# --- Retry ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("retrier, delays", [
    ({"ErrorEquals": ["Boom"]}, [1, 2, 4]),  # defaults: 1 s, x2, 3 attempts
    ({"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3}, [2, 6, 18]),
    ({"ErrorEquals": ["Boom"], "IntervalSeconds": 10, "MaxDelaySeconds": 15, "MaxAttempts": 4}, [10, 15, 15, 15]),
    ({"ErrorEquals": ["Boom"], "IntervalSeconds": 3, "BackoffRate": 1, "JitterStrategy": "NONE"}, [3, 3, 3]),
    ({"ErrorEquals": ["Boom"], "MaxAttempts": 0}, []),
])
def test_retry_counts_and_delays(retrier, delays):
    fn = always(Boom("no"))
    h = Harness(machine({"T": task(Retry=[retrier])}), {"fn": fn})
    assert h.fail().error == "Boom"
    assert h.sleeps == delays
    assert len(fn.calls) == len(delays) + 1


def test_full_jitter_draws_from_zero_to_the_capped_delay():
    retrier = {"ErrorEquals": ["Boom"], "IntervalSeconds": 4, "MaxAttempts": 5, "MaxDelaySeconds": 20,
               "JitterStrategy": "FULL"}
    h = Harness(machine({"T": task(Retry=[retrier])}), {"fn": always(Boom())}, seed=3)
    h.fail()
    caps = [4, 8, 16, 20, 20]
    reference = random.Random(3)
    assert h.sleeps == [reference.uniform(0, cap) for cap in caps]
    assert all(0 <= slept <= cap for slept, cap in zip(h.sleeps, caps))
    assert len(set(h.sleeps)) == 5  # really random, not the cap


@pytest.mark.parametrize("scale, expected", [(0.5, [1.0, 2.0]), (0, [0, 0])])
def test_time_scale_multiplies_retry_and_wait_delays(scale, expected):
    definition = machine({
        "W": {"Type": "Wait", "Seconds": 10, "Next": "T"},
        "T": task(Retry=[{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 2}]),
    })
    h = Harness(definition, {"fn": always(Boom())}, time_scale=scale)
    h.fail()
    assert h.sleeps == [10 * scale, *expected]


def test_retry_that_finally_succeeds():
    fn = flaky(Boom("flaky"), 2, result={"ok": True})
    h = Harness(machine({"T": task(Retry=[{"ErrorEquals": ["Boom"]}], ResultPath="$.r")}), {"fn": fn})
    assert h.run({"a": 1}) == {"a": 1, "r": {"ok": True}}
    retries = [e for e in h.events if e["type"] == "TaskRetry"]
    assert [(e["state"], e["error"], e["attempt"], e["delay"]) for e in retries] == [
        ("T", "Boom", 1, 1), ("T", "Boom", 2, 2)]
    assert fn.calls == [{"a": 1}] * 3


def test_error_not_named_is_not_retried_and_carries_lambda_cause():
    fn = always(Boom("it broke"))
    h = Harness(machine({"T": task(Retry=[{"ErrorEquals": ["Other", "States.Timeout"]}])}), {"fn": fn})
    failed = h.fail()
    assert (failed.error, len(fn.calls), h.sleeps) == ("Boom", 1, [])
    assert failed.cause == json.dumps({"errorMessage": "it broke", "errorType": "Boom"})
    assert [e["type"] for e in h.events][-2:] == ["TaskFailed", "ExecutionFailed"]
    assert h.events[-1]["state"] == "T"


@pytest.mark.parametrize("names", [["States.ALL"], ["States.TaskFailed"], ["Other", "Boom"]])
def test_wildcards_and_lists_match(names):
    fn = flaky(Boom(), 1, result=1)
    h = Harness(machine({"T": task(Retry=[{"ErrorEquals": names}])}), {"fn": fn})
    assert h.run() == 1 and len(fn.calls) == 2


def test_first_matching_retrier_decides_even_when_exhausted():
    retry = [{"ErrorEquals": ["Boom"], "MaxAttempts": 1}, {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}]
    fn = always(Boom())
    h = Harness(machine({"T": task(Retry=retry)}), {"fn": fn})
    h.fail()
    assert len(fn.calls) == 2


def test_retriers_count_separately_and_restart_each_time_the_state_is_entered():
    errors = iter([Boom(), Other(), Boom()])

    def fn(event):
        raise next(errors)

    retry = [{"ErrorEquals": ["Boom"], "MaxAttempts": 1}, {"ErrorEquals": ["Other"], "MaxAttempts": 1}]
    h = Harness(machine({"T": task(Retry=retry)}), {"fn": fn})
    assert h.fail().error == "Boom"  # Boom retried, Other retried, second Boom exhausts its retrier
    assert h.sleeps == [1, 1]

    # Loop twice through a state that retries once and is then caught: each entry starts from zero.
    boom = always(Boom())
    definition = machine({
        "T": task("boom", Retry=[{"ErrorEquals": ["Boom"], "MaxAttempts": 1}],
                  Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Count"}]),
        "Count": task("count", Parameters={"n.$": "$.n"}, Next="Loop"),
        "Loop": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericLessThan": 2, "Next": "T"}],
                 "Default": "Done"},
        "Done": {"Type": "Succeed"},
    })
    h = Harness(definition, {"boom": boom, "count": lambda e: {"n": e["n"] + 1}})
    assert h.run({"n": 0}) == {"n": 2}
    assert len(boom.calls) == 4 and h.sleeps == [1, 1]


# --- Catch ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("catcher, expected", [
    ({"ResultPath": "$.error"}, lambda err: {"job": "j", "error": err}),
    ({}, lambda err: err),
    ({"ResultPath": None}, lambda err: {"job": "j"}),
])
def test_catch_places_the_error_at_its_result_path(catcher, expected):
    seen = []
    definition = machine({
        "T": task(Catch=[{"ErrorEquals": ["Boom"], "Next": "Handle", **catcher}], Next="Never"),
        "Never": {"Type": "Succeed"},
        "Handle": task("handle"),
    })
    h = Harness(definition, {"fn": always(Boom("bad")), "handle": lambda e: seen.append(e) or "handled"})
    assert h.run({"job": "j"}) == "handled"
    error = {"Error": "Boom", "Cause": json.dumps({"errorMessage": "bad", "errorType": "Boom"})}
    assert seen == [expected(error)]
    assert h.entered() == ["T", "Handle"]


def test_first_matching_catcher_wins_after_retries():
    catch = [{"ErrorEquals": ["Other"], "Next": "A"}, {"ErrorEquals": ["Boom"], "Next": "B"},
             {"ErrorEquals": ["States.ALL"], "Next": "C"}]
    states = {name: {"Type": "Pass", "Result": name, "End": True} for name in "ABC"}
    fn = always(Boom())
    h = Harness(machine({"T": task(Retry=[{"ErrorEquals": ["Boom"], "MaxAttempts": 1}], Catch=catch,
                                   Next="A"), **states}), {"fn": fn})
    assert h.run() == "B" and len(fn.calls) == 2


@pytest.mark.parametrize("state", [
    task(Parameters={"x.$": "$.missing"}),
    task(ResultSelector={"x.$": "$.missing"}),
    {"Type": "Map", "ItemProcessor": machine({"I": task(InputPath="$.missing")})},
])
def test_path_errors_are_states_runtime_and_never_retried_or_caught(state):
    state = {**state, "Retry": [{"ErrorEquals": ["States.ALL"]}], "Next": "Handled",
             "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}]}
    state.pop("End", None)
    h = Harness(machine({"T": state, "Handled": {"Type": "Succeed"}}), {"fn": lambda e: {}})
    failed = h.fail([{}])
    assert failed.error == "States.Runtime" and "'$.missing'" in failed.cause
    assert h.sleeps == []


@pytest.mark.parametrize("state, data", [
    (task(InputPath="$.nope", Next="S"), {}),
    (task(OutputPath="$.nope", Next="S"), {}),
    (task(Parameters={"a": {"deep.$": "$.list[3]"}}, Next="S"), {"list": [1]}),
    (task(ResultSelector={"x.$": "$.nope"}, Next="S"), {}),
    (task(ResultPath="$.s.t", Next="S"), {"s": "a string"}),
    ({"Type": "Map", "ItemsPath": "$.nope", "ItemProcessor": machine({"I": task()}), "Next": "S"}, {}),
    ({"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": machine({"I": task()}), "Next": "S"},
     {"items": {"not": "a list"}}),
    ({"Type": "Choice", "Choices": [{"Variable": "$.nope", "StringEquals": "x", "Next": "S"}],
      "Default": "S"}, {}),
    ({"Type": "Wait", "SecondsPath": "$.nope", "Next": "S"}, {}),
    ({"Type": "Wait", "SecondsPath": "$.s", "Next": "S"}, {"s": -1}),
    ({"Type": "Pass", "Parameters": {"x.$": "$$.Map.Item.Value"}, "Next": "S"}, {}),
])
def test_unresolvable_paths_fail_with_states_runtime(state, data):
    definition = machine({"X": state, "S": {"Type": "Succeed"}})
    assert Harness(definition, {"fn": lambda e: {}}).fail(data).error == "States.Runtime"


# --- Task details --------------------------------------------------------------------------------
def test_task_timeout_is_states_timeout_and_not_a_task_failed():
    release = threading.Event()
    calls = []

    def slow(event):
        calls.append(event)
        release.wait(10)
        return "late"

    definition = machine({
        "T": task(TimeoutSeconds=0.05, Retry=[{"ErrorEquals": ["States.TaskFailed"]}],
                  Catch=[{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "S"}], Next="S"),
        "S": {"Type": "Succeed"},
    })
    try:
        output = Harness(definition, {"fn": slow}).run()
    finally:
        release.set()  # the timed-out call is still running in its thread: let it finish
    assert output["error"]["Error"] == "States.Timeout" and len(calls) == 1


def test_input_parameters_result_selector_result_path_output_path():
    seen = []
    state = task(InputPath="$.in", Parameters={"fixed": 1, "v.$": "$.v", "nested": {"w.$": "$.w[1]"}},
                 ResultSelector={"picked.$": "$.deep.x"}, ResultPath="$.out.r", OutputPath="$.out")
    h = Harness(machine({"T": state}), {"fn": lambda e: seen.append(e) or {"deep": {"x": 42}, "noise": 0}})
    assert h.run({"in": {"v": "a", "w": [0, 9]}, "out": {"keep": True}}) == {"keep": True, "r": {"picked": 42}}
    assert seen == [{"fixed": 1, "v": "a", "nested": {"w": 9}}]


def test_null_paths():
    h = Harness(machine({"T": task(InputPath=None, ResultPath=None)}), {"fn": lambda e: {"seen": e}})
    assert h.run({"a": 1}) == {"a": 1}
    h = Harness(machine({"T": task(OutputPath=None)}), {"fn": lambda e: 1})
    assert h.run({"a": 1}) == {}


def test_context_object_and_execution_name():
    params = {"first.$": "$.items[0]", "name.$": "$$.Execution.Name", "id.$": "$$.Execution.Id",
              "input.$": "$$.Execution.Input"}
    definition = machine({"P": {"Type": "Pass", "Result": "x", "ResultPath": "$.added", "Next": "T"},
                          "T": task(Parameters=params)})
    h = Harness(definition, {"fn": lambda e: e})
    out = h.run({"items": ["a", "b"]}, name="exec-1")
    # Execution.Input is the input as given: ResultPath writes never modify it in place.
    assert out == {"first": "a", "name": "exec-1", "id": "local:execution:exec-1", "input": {"items": ["a", "b"]}}
    assert h.events[-1] == {"type": "ExecutionSucceeded", "state": "T", "execution": "exec-1", "output": out}


def test_handlers_get_a_copy_and_must_return_json():
    def mutate(event):
        event["items"].append("added by the handler")
        return {"ok": True}

    h = Harness(machine({"T": task(Parameters={"items.$": "$.items"}, ResultPath="$.r")}), {"fn": mutate})
    data = {"items": [1]}
    assert h.run(data) == {"items": [1], "r": {"ok": True}}
    assert data == {"items": [1]}
    assert Harness(machine({"T": task()}), {"fn": lambda e: {1, 2}}).fail().error == "Runtime.MarshalError"


def test_resolve_failure_is_an_error_of_that_task():
    def resolve(resource):
        raise LookupError(f"no function for {resource}")

    definition = machine({"T": task("${Missing}", Catch=[{"ErrorEquals": ["LookupError"], "Next": "S"}],
                                    Next="S"), "S": {"Type": "Succeed"}})
    out = StateMachine(definition, resolve, sleep=lambda s: None).run({})
    assert out["Error"] == "LookupError" and "${Missing}" in out["Cause"]


def test_intrinsic_functions():
    params = {
        "msg.$": r"States.Format('job {} has {} \{segments\} it\'s {}', $.id, $.n, $.ok)",
        "obj.$": "States.StringToJson($.raw)",
        "text.$": "States.JsonToString($.obj)",
        "nested.$": "States.Format('<{}>', States.JsonToString($.obj))",
    }
    h = Harness(machine({"P": {"Type": "Pass", "Parameters": params, "End": True}}), {})
    out = h.run({"id": "j1", "n": 3, "ok": True, "raw": '{"a": [1, 2]}', "obj": {"b": None}})
    assert out == {"msg": "job j1 has 3 {segments} it's true", "obj": {"a": [1, 2]},
                   "text": '{"b":null}', "nested": '<{"b":null}>'}
    bad = machine({"P": {"Type": "Pass", "Parameters": {"x.$": "States.StringToJson($.raw)"}, "End": True}})
    assert Harness(bad, {}).fail({"raw": "{nope"}).error == "States.IntrinsicFailure"


# --- Map -----------------------------------------------------------------------------------------
def map_state(**fields) -> dict:
    return {"Type": "Map", "ItemProcessor": machine({"I": task()}),
            **({"End": True} if "Next" not in fields else {}), **fields}


@pytest.mark.parametrize("limit, items", [(2, 6), (0, 5)])
def test_map_runs_up_to_max_concurrency_at_once(limit, items):
    lock = threading.Lock()
    active, peak = [0], [0]
    # Each call waits until `parties` calls are inside at once, which proves that many run together;
    # then it stays a moment (the only real wait in this file), so one call too many would be seen.
    barrier = threading.Barrier(limit or items, timeout=10)
    linger = threading.Event()

    def fn(event):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            barrier.wait()
            linger.wait(0.02)
        finally:
            with lock:
                active[0] -= 1
        return event

    h = Harness(machine({"M": map_state(MaxConcurrency=limit)}), {"fn": fn})
    assert h.run(list(range(items))) == list(range(items))
    assert peak[0] == (limit or items)


def test_map_results_are_in_item_order_whatever_the_completion_order():
    done = [threading.Event() for _ in range(4)]
    finished = []

    def fn(i):
        if i + 1 < len(done):  # item i finishes only after item i+1: completion is reversed
            assert done[i + 1].wait(10)
        finished.append(i)
        done[i].set()
        return {"item": i}

    h = Harness(machine({"M": map_state()}), {"fn": fn})
    assert h.run([0, 1, 2, 3]) == [{"item": i} for i in range(4)]
    assert finished == [3, 2, 1, 0]


def test_map_item_selector_sees_item_index_value_and_state_input():
    seen = []
    selector = {"value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "job.$": "$.job", "k": 1}
    state = map_state(ItemsPath="$.things", ItemSelector=selector, ResultPath="$.results", MaxConcurrency=1)
    h = Harness(machine({"M": state}), {"fn": lambda e: seen.append(e) or e["value"] * 10})
    assert h.run({"job": "j", "things": [5, 6]}) == {"job": "j", "things": [5, 6], "results": [50, 60]}
    assert seen == [{"value": 5, "index": 0, "job": "j", "k": 1}, {"value": 6, "index": 1, "job": "j", "k": 1}]
    inner = [(e["state"], e["index"]) for e in h.events if e["type"] == "StateEntered" and "index" in e]
    assert inner == [("I", 0), ("I", 1)]


def test_map_legacy_iterator_and_parameters():
    state = {"Type": "Map", "Iterator": machine({"I": task()}), "Parameters": {"v.$": "$$.Map.Item.Value"},
             "End": True}
    assert Harness(machine({"M": state}), {"fn": lambda e: e["v"] + 1}).run([1, 2]) == [2, 3]
    assert Harness(machine({"M": map_state()}), {"fn": lambda e: e}).run([]) == []


def test_map_failure_stops_new_iterations_and_is_catchable():
    started = []

    def fn(i):
        started.append(i)
        if i == 1:
            raise GenerationError("segment 1 failed")
        return i

    state = map_state(ItemsPath="$.items", MaxConcurrency=1, Next="Handled",
                      Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Handled"}])
    definition = machine({"M": state, "Handled": {"Type": "Succeed"}})
    out = Harness(definition, {"fn": fn}).run({"items": [0, 1, 2, 3, 4]})
    assert started == [0, 1]
    assert out["error"]["Error"] == "GenerationError"
    assert json.loads(out["error"]["Cause"])["errorMessage"] == "segment 1 failed"


def test_map_failure_without_catch_fails_the_execution_and_a_map_retry_reruns_it():
    fn = flaky(Boom(), 1, result="ok")
    h = Harness(machine({"M": map_state(Retry=[{"ErrorEquals": ["Boom"], "MaxAttempts": 1}])}), {"fn": fn})
    assert h.run([0]) == ["ok"] and len(fn.calls) == 2
    assert Harness(machine({"M": map_state()}), {"fn": always(Other())}).fail([0, 1]).error == "Other"


def test_fail_state_inside_an_iteration_fails_the_map():
    processor = machine({"F": {"Type": "Fail", "Error": "Custom", "Cause": "inner"}})
    state = {"Type": "Map", "ItemProcessor": processor, "End": True}
    failed = Harness(machine({"M": state}), {}).fail([1])
    assert (failed.error, failed.cause) == ("Custom", "inner")


# --- Choice, Wait, Pass, Succeed, Fail -----------------------------------------------------------
@pytest.mark.parametrize("rule, data, branch", [
    ({"Variable": "$.s", "StringEquals": "a"}, {"s": "a"}, "Yes"),
    ({"Variable": "$.s", "StringEquals": "a"}, {"s": "b"}, "No"),
    ({"Variable": "$.n", "NumericEquals": 3}, {"n": 3.0}, "Yes"),
    ({"Variable": "$.n", "NumericEquals": 1}, {"n": "1"}, "No"),  # wrong type never matches
    ({"Variable": "$.n", "NumericLessThan": 3}, {"n": 2}, "Yes"),
    ({"Variable": "$.n", "NumericLessThanEquals": 3}, {"n": 3}, "Yes"),
    ({"Variable": "$.n", "NumericGreaterThan": 3}, {"n": 3}, "No"),
    ({"Variable": "$.n", "NumericGreaterThanEquals": 3}, {"n": 3}, "Yes"),
    ({"Variable": "$.b", "BooleanEquals": False}, {"b": False}, "Yes"),
    ({"Variable": "$.b", "BooleanEquals": True}, {"b": 1}, "No"),
    ({"Variable": "$.x", "IsPresent": True}, {"x": None}, "Yes"),
    ({"Variable": "$.x", "IsPresent": False}, {}, "Yes"),
    ({"And": [{"Variable": "$.n", "NumericGreaterThan": 1}, {"Variable": "$.n", "NumericLessThan": 5}]},
     {"n": 3}, "Yes"),
    ({"Or": [{"Variable": "$.s", "StringEquals": "a"}, {"Variable": "$.s", "StringEquals": "b"}]},
     {"s": "c"}, "No"),
    ({"Not": {"Variable": "$.s", "StringEquals": "a"}}, {"s": "c"}, "Yes"),
])
def test_choice(rule, data, branch):
    definition = machine({
        "C": {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}], "Default": "No"},
        "Yes": {"Type": "Pass", "Result": "Yes", "End": True},
        "No": {"Type": "Pass", "Result": "No", "End": True},
    })
    assert Harness(definition, {}).run(data) == branch


def test_choice_without_match_or_default_fails():
    definition = machine({"C": {"Type": "Choice", "Choices": [{"Variable": "$.s", "StringEquals": "a",
                                                               "Next": "S"}]},
                          "S": {"Type": "Succeed"}})
    assert Harness(definition, {}).fail({"s": "b"}).error == "States.NoChoiceMatched"


def test_wait_seconds_and_seconds_path():
    definition = machine({"A": {"Type": "Wait", "Seconds": 3, "Next": "B"},
                          "B": {"Type": "Wait", "SecondsPath": "$.delay", "End": True}})
    h = Harness(definition, {})
    assert h.run({"delay": 1.5}) == {"delay": 1.5}
    assert h.sleeps == [3, 1.5]


def test_pass_result_parameters_and_result_path():
    definition = machine({
        "A": {"Type": "Pass", "Result": {"fixed": [1]}, "ResultPath": "$.r", "Next": "B"},
        "B": {"Type": "Pass", "Parameters": {"copy.$": "$.r.fixed[0]"}, "ResultPath": "$.p", "Next": "C"},
        "C": {"Type": "Pass", "End": True},
    })
    assert Harness(definition, {}).run({"a": 0}) == {"a": 0, "r": {"fixed": [1]}, "p": {"copy": 1}}


def test_succeed_and_fail():
    ok = machine({"S": {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}})
    assert Harness(ok, {}).run({"a": {"b": 2}}) == 2
    h = Harness(machine({"F": {"Type": "Fail", "Error": "JobFailed", "Cause": "see the job"}}), {})
    failed = h.fail()
    assert (failed.error, failed.cause, str(failed)) == ("JobFailed", "see the job", "JobFailed: see the job")
    assert h.events[-1] == {"type": "ExecutionFailed", "state": "F", "execution": h.events[-1]["execution"],
                            "error": "JobFailed", "cause": "see the job"}


# --- definition validation -----------------------------------------------------------------------
@pytest.mark.parametrize("definition, message", [
    ({"States": {"A": {"Type": "Succeed"}}}, "StartAt"),
    ({"StartAt": "B", "States": {"A": {"Type": "Succeed"}}}, "StartAt 'B'"),
    ({"StartAt": "A", "States": {}}, "non-empty"),
    (machine({"A": task(Next="Nowhere")}), "'Nowhere'"),
    (machine({"A": {"Type": "Pass"}}), "exactly one of Next or"),
    (machine({"A": {"Type": "Pass", "Next": "B", "End": True}, "B": {"Type": "Succeed"}}), "exactly one of Next"),
    (machine({"A": {"Type": "Parallel", "Branches": [], "End": True}}), "Type 'Parallel' is not supported"),
    (machine({"A": task(HeartbeatSeconds=5)}), "HeartbeatSeconds"),
    (machine({"A": {"Type": "Pass", "End": True}, "B": {"Type": "Succeed"}}), "cannot be reached"),
    (machine({"A": task(Retry=[{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["Boom"]}])}),
     "States.ALL must be alone"),
    (machine({"A": task(Catch=[{"ErrorEquals": ["States.ALL", "Boom"], "Next": "A"}])}), "States.ALL must be alone"),
    (machine({"A": task(Retry=[{"ErrorEquals": ["Boom"], "BackoffRate": 0.5}])}), "BackoffRate"),
    (machine({"A": task(Retry=[{"ErrorEquals": []}])}), "ErrorEquals"),
    (machine({"A": task(Catch=[{"ErrorEquals": ["Boom"], "Next": "Gone"}])}), "'Gone'"),
    (machine({"A": task(Parameters={"x.$": "$.a[*]"})}), "supported subset"),
    (machine({"A": task(InputPath="a.b")}), "must start with '\\$'"),
    (machine({"A": task(ResultPath="$.a[0]")}), "ResultPath"),
    (machine({"A": task(Parameters={"x.$": "States.Array($.a)"})}), "States.Array is not supported"),
    (machine({"A": task(TimeoutSeconds=0)}), "TimeoutSeconds"),
    (machine({"A": {"Type": "Map", "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
                                                     **machine({"I": task()})}, "End": True}}), "INLINE"),
    (machine({"A": {"Type": "Map", "ItemProcessor": machine({"I": task(Next="X")}), "End": True}}),
     "ItemProcessor > state 'I'"),
    (machine({"A": {"Type": "Choice", "Choices": [{"Variable": "$.a", "StringMatches": "x*", "Next": "A"}]}}),
     "StringMatches"),
    (machine({"A": {"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": "1", "Next": "A"}]}}),
     "wrong type"),
    (machine({"A": {"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": True}}), "exactly one of Seconds"),
])
def test_definition_validation(definition, message):
    with pytest.raises(InvalidDefinition, match=message):
        StateMachine(definition, lambda resource: None)


def test_invalid_definition_is_a_value_error_and_time_scale_is_checked():
    assert issubclass(InvalidDefinition, ValueError)
    with pytest.raises(ValueError, match="time_scale"):
        StateMachine(machine({"A": {"Type": "Succeed"}}), lambda r: None, time_scale=-1)


def test_load_definition_substitutes_known_placeholders_only(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(machine({"A": task("${Known}-x", Parameters={"k": ["${Other}"]})})))
    definition = load_definition(path, {"Known": "musicvid:Known"})
    assert definition["States"]["A"]["Resource"] == "musicvid:Known-x"
    assert definition["States"]["A"]["Parameters"] == {"k": ["${Other}"]}


# --- the real workflow ---------------------------------------------------------------------------
STEPS = ("Coordinator", "Analyzer", "AudioGenerator", "AVOperator", "FailureHandler")


class FakeWorkflow(Harness):
    """musicvid_core/workflow/workflow.asl.json with one Python function per ``${<Step>FunctionArn}``."""

    def __init__(self, generator) -> None:
        self.calls: dict[str, list] = defaultdict(list)
        functions = {
            "Coordinator": lambda e: {"action": e["action"]},
            "Analyzer": lambda e: {"segments": [0, 1, 2]},
            "AudioGenerator": lambda e: {"pending": False, **generator(e)},  # as steps.audio_generator answers
            "AVOperator": lambda e: {"mixed": len(e["clips"])},
            "FailureHandler": lambda e: {"status": "FAILED"},
        }

        def recorded(name):
            def call(event):
                self.calls[name].append(event)
                return functions[name](event)
            return call

        definition = load_definition(WORKFLOW, {f"{step}FunctionArn": step for step in STEPS})
        super().__init__(definition, {step: recorded(step) for step in STEPS})

    def start(self):
        return self.run({"job_id": "job-1", "attempt": 2})


def test_real_workflow_happy_path():
    wf = FakeWorkflow(lambda e: {"clip": f"clip-{e['index']}"})
    out = wf.start()
    assert wf.entered() == ["Start", "Analyze", "GenerateAudio", "Mix", "Summarize", "Done"]
    assert sorted(e["index"] for e in wf.events if e["type"] == "StateExited" and e["state"] == "GenerateSegment") \
        == [0, 1, 2]
    assert sorted(e["index"] for e in wf.calls["AudioGenerator"]) == [0, 1, 2]
    assert all(e["job_id"] == "job-1" and e["attempt"] == 2 for e in wf.calls["AudioGenerator"])
    assert wf.calls["AVOperator"] == [{"job_id": "job-1", "attempt": 2,
                                       "clips": [{"pending": False, "clip": f"clip-{i}"} for i in range(3)]}]
    assert [e["action"] for e in wf.calls["Coordinator"]] == ["start", "summary"]
    assert out["summary"] == {"action": "summary"} and "FailureHandler" not in wf.calls


def test_real_workflow_retries_a_transient_backend_error():
    lock = threading.Lock()
    failures = defaultdict(int)

    def generator(event):
        with lock:
            failures[event["index"]] += 1
            attempt = failures[event["index"]]
        if event["index"] == 1 and attempt <= 2:
            raise TransientBackendError("model busy")
        return {"clip": event["index"]}

    wf = FakeWorkflow(generator)
    assert wf.start()["clips"] == [{"pending": False, "clip": i} for i in range(3)]
    assert failures == {0: 1, 1: 3, 2: 1}
    retries = [e for e in wf.events if e["type"] == "TaskRetry"]
    assert [(e["state"], e["index"], e["error"]) for e in retries] == [("GenerateSegment", 1, "TransientBackendError")] * 2
    assert 0 <= wf.sleeps[0] <= 2 and 0 <= wf.sleeps[1] <= 4  # FULL jitter under 2 s x 2.0 backoff


def test_real_workflow_permanent_error_goes_to_the_failure_handler():
    def generator(event):
        if event["index"] == 1:
            raise GenerationError("segment 1: the model produced silence")
        return {"clip": event["index"]}

    wf = FakeWorkflow(generator)
    with pytest.raises(ExecutionFailed) as info:
        wf.start()
    assert info.value.error == "JobFailed"
    assert wf.entered() == ["Start", "Analyze", "GenerateAudio", "HandleFailure", "Failed"]
    [handled] = wf.calls["FailureHandler"]
    assert handled["job_id"] == "job-1" and handled["error"]["Error"] == "GenerationError"
    assert json.loads(handled["error"]["Cause"]) == {"errorMessage": "segment 1: the model produced silence",
                                                     "errorType": "GenerationError"}
    assert "AVOperator" not in wf.calls and not any(e["type"] == "TaskRetry" for e in wf.events)


def test_real_workflow_retries_only_the_retryable_error_names():
    """The contract in domain/errors.py: pipeline steps retry exactly RETRYABLE_ERROR_NAMES (plus
    Lambda's own service errors). The failure handler, the Catch target, retries States.ALL on purpose:
    it has to get its chance to mark the job FAILED."""
    definition = load_definition(WORKFLOW)

    def states(machine_def):
        for name, state in machine_def["States"].items():
            yield name, state
            for key in ("ItemProcessor", "Iterator"):
                if key in state:
                    yield from states(state[key])

    all_states = dict(states(definition))
    catch_targets = {c["Next"] for state in all_states.values() for c in state.get("Catch", [])}
    assert catch_targets == {"HandleFailure"}
    steps = {name: state for name, state in all_states.items()
             if state["Type"] == "Task" and name not in catch_targets}
    assert set(steps) == {"Start", "Analyze", "GenerateSegment", "Mix", "Summarize"}
    for name, state in steps.items():
        names = [n for retrier in state["Retry"] for n in retrier["ErrorEquals"]]
        assert all(n in RETRYABLE_ERROR_NAMES or n.startswith("Lambda.") for n in names), name
        assert set(RETRYABLE_ERROR_NAMES) <= set(names), name
    assert all_states["HandleFailure"]["Retry"][0]["ErrorEquals"] == ["States.ALL"]
    StateMachine(definition, lambda resource: None)  # and it is inside the supported subset


def test_the_interpreter_is_a_self_contained_library():
    """asl/ is a general ASL interpreter: standard library and its own modules only, so it could leave
    musicvid unchanged. Any other import (musicvid_core.domain, numpy, ...) fails this."""
    import ast
    import sys

    package = Path(__file__).resolve().parents[1] / "musicvid_core" / "asl"
    modules = sorted(package.glob("*.py"))
    assert {m.name for m in modules} >= {"__init__.py", "machine.py", "validation.py"}
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{module.name}: relative import"
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert (name == "musicvid_core.asl" or name.startswith("musicvid_core.asl.")
                        or top in sys.stdlib_module_names or top == "__future__"), f"{module.name} imports {name}"


def test_validate_definition_checks_without_a_resolver():
    from musicvid_core.asl import validate_definition

    validate_definition(load_definition(WORKFLOW))
    with pytest.raises(InvalidDefinition, match="Parallel"):
        validate_definition(machine({"P": {"Type": "Parallel", "Branches": [], "End": True}}))
