"""The executor: :class:`StateMachine` runs a validated definition, calling a Python function
wherever AWS would invoke a Lambda.

Takes the definition, a ``resolve(resource) -> callable`` and an input dict; gives the final output or
raises :class:`~musicvid_core.asl.errors.ExecutionFailed`. Here live Retry (backoff, MaxDelaySeconds,
jitter) and Catch, Task timeouts, and Map iterations on threads. Unlike Step Functions this runs in one
process with no durable history: a Task's TimeoutSeconds stops the wait, not the call (Python cannot
kill a thread), and a failing Map lets its running iterations reach their next state before it fails.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from musicvid_core.asl.choice import is_number, rule_matches
from musicvid_core.asl.errors import ExecutionFailed, StatesError
from musicvid_core.asl.paths import put_result, read_path, select_path
from musicvid_core.asl.payload import effective_input, render_template, state_output
from musicvid_core.asl.validation import validate_definition

__all__ = ["StateMachine"]


class _Aborted(Exception):
    """A sibling Map iteration failed, so this one stops. Not a :class:`StatesError` on purpose:
    no Retry or Catch inside the iteration may intercept it."""


def _matches(names: list[str], error: str) -> bool:
    if error == "States.Runtime":  # as on AWS: a broken path is a definition bug, never retried or caught
        return False
    return (error in names or "States.ALL" in names
            or ("States.TaskFailed" in names and error != "States.Timeout"))


def _json_copy(value: Any) -> Any:
    """A JSON round trip: what a Lambda boundary does. Handlers get their own copy of their input and
    a result that is not JSON fails here as it would on AWS."""
    return json.loads(json.dumps(value))


def _task_error(exc: Exception) -> StatesError:
    """A Python exception as Lambda + Step Functions report it: Error is the class name."""
    name = type(exc).__name__
    return StatesError(name, json.dumps({"errorMessage": str(exc), "errorType": name}))


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
        raise StatesError("States.Timeout", f"Task timed out after {seconds} seconds")
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
    ``sleep``; Task ``TimeoutSeconds`` are real time and not scaled, unless ``task_timeout``
    (state name, declared seconds -> seconds) says how long a Task may take on this run (the
    embedded runner's long inputs). ``on_event`` gets one dict per step, called under a lock so a
    progress display needs no locking of its own; it must not raise.
    """

    def __init__(self, definition: dict, resolve: Callable[[str], Callable[[dict], Any]], *,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 time_scale: float = 1.0, on_event: Callable[[dict], None] | None = None,
                 task_timeout: Callable[[str, float], float] | None = None) -> None:
        validate_definition(definition)
        if not is_number(time_scale) or time_scale < 0:
            raise ValueError(f"time_scale must be a non-negative number, not {time_scale!r}")
        self._definition = definition
        self._resolve = resolve
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._time_scale = time_scale
        self._on_event = on_event
        self._task_timeout = task_timeout
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
        except StatesError as exc:
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
            except StatesError as exc:
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
            except StatesError as exc:
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
        output = put_result(data, catcher.get("ResultPath", "$"), {"Error": error.error, "Cause": error.cause})
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
        except StatesError:
            raise
        except Exception as exc:
            raise _task_error(exc) from exc
        try:
            return _json_copy(result)
        except (TypeError, ValueError) as exc:
            raise StatesError("Runtime.MarshalError", f"Unable to marshal response: {exc}") from exc

    # One method per state type: (name, state, input, scope) -> (output, next state or None at the end).
    def _task(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        payload = effective_input(state, data, scope.context)

        def attempt() -> Any:
            timeout = state.get("TimeoutSeconds")
            if timeout is not None and self._task_timeout is not None:
                timeout = self._task_timeout(name, timeout)
            result = self._invoke(state["Resource"], payload, timeout)
            return state_output(state, data, result, scope.context)

        return self._with_retry_and_catch(name, state, data, scope, attempt)

    def _map(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        effective = select_path(state, "InputPath", data, scope.context)
        items = read_path(state.get("ItemsPath", "$"), effective, scope.context, "ItemsPath")
        if not isinstance(items, list):
            raise StatesError("States.Runtime", f"ItemsPath selected a {type(items).__name__}, not an array")
        selector = state.get("ItemSelector", state.get("Parameters"))
        inputs = [item if selector is None else
                  render_template(selector, effective, {**scope.context, "Map": {"Item": {"Index": i, "Value": item}}})
                  for i, item in enumerate(items)]
        processor = state.get("ItemProcessor", state.get("Iterator"))
        workers = state.get("MaxConcurrency", 0) or len(inputs)

        def attempt() -> Any:
            results = self._run_iterations(processor, inputs, workers, scope)
            return state_output(state, data, results, scope.context)

        return self._with_retry_and_catch(name, state, data, scope, attempt)

    def _run_iterations(self, processor: dict, inputs: list[Any], workers: int, scope: _Scope) -> list[Any]:
        """Run one iteration per input on ``workers`` threads; results in input order. After the
        first failure no iteration starts and running ones stop at their next state or retry; the
        failure is raised only once all have returned, so none is still writing when the Map's
        Catch target runs."""
        if not inputs:
            return []
        results: list[Any] = [None] * len(inputs)
        failures: list[StatesError] = []
        abort = threading.Event()

        def iterate(index: int) -> None:
            try:  # _run_states stops before its first state once a sibling has failed
                results[index], _ = self._run_states(processor, inputs[index],
                                                     _Scope(scope.context, index, abort))
            except _Aborted:
                pass
            except StatesError as exc:
                failures.append(exc)
                abort.set()

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="asl-map") as pool:
            for future in [pool.submit(iterate, index) for index in range(len(inputs))]:
                future.result()
        if failures:
            raise failures[0]
        return results

    def _pass(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        result = state["Result"] if "Result" in state else effective_input(state, data, scope.context)
        return state_output(state, data, result, scope.context), state.get("Next")

    def _choice(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        effective = select_path(state, "InputPath", data, scope.context)
        output = select_path(state, "OutputPath", effective, scope.context)
        for rule in state["Choices"]:
            if rule_matches(rule, effective, scope.context):
                return output, rule["Next"]
        if "Default" in state:
            return output, state["Default"]
        raise StatesError("States.NoChoiceMatched", f"no Choices rule matched in {name!r} and it has no Default")

    def _wait(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        effective = select_path(state, "InputPath", data, scope.context)
        if "Seconds" in state:
            seconds = state["Seconds"]
        else:
            seconds = read_path(state["SecondsPath"], effective, scope.context, "SecondsPath")
            if not is_number(seconds) or seconds < 0:
                raise StatesError("States.Runtime", f"SecondsPath selected {seconds!r}, not a non-negative number")
        self._sleep(seconds * self._time_scale)
        return select_path(state, "OutputPath", effective, scope.context), state.get("Next")

    def _succeed(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        return select_path(state, "OutputPath", select_path(state, "InputPath", data, scope.context), scope.context), None

    def _fail(self, name: str, state: dict, data: Any, scope: _Scope) -> tuple[Any, str | None]:
        raise StatesError(state.get("Error", ""), state.get("Cause", ""))
