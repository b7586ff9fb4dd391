"""A focused Amazon States Language interpreter: runs ``musicvid_core/workflow/workflow.asl.json`` in-process.

A self-contained library (standard library only; it imports nothing else from musicvid_core). Step
Functions runs the definition on AWS; on one machine this package runs the same file, calling a Python
function wherever AWS would invoke a Lambda. It implements the part of the ASL that the definition uses
plus a few obvious neighbours. :class:`StateMachine` rejects anything else when it is built
(:class:`InvalidDefinition`, a ValueError), so a definition that grows an unsupported feature fails
loudly instead of running differently here than on AWS. ``docs/asl-runner.md`` explains why this exists
rather than pyaslengine or moto, and how it differs from Step Functions.

Takes a definition (a dict, or a file through :func:`load_definition`), ``resolve(resource) ->
callable`` and an input dict; gives the final output of a run, or raises :class:`ExecutionFailed`
(``.error``, ``.cause``).

Modules
    machine      StateMachine: execution, Retry/Catch, Task timeouts, Map iterations on threads
    validation   load_definition, validate_definition: the supported subset below, checked up front
    payload      InputPath -> Parameters, ResultSelector -> ResultPath -> OutputPath
    paths        reference paths ($.a.b, $.a[0], $$.Execution.Id) and writing a ResultPath
    intrinsics   States.Format, States.StringToJson, States.JsonToString
    choice       Choice rule operators
    errors       ExecutionFailed, InvalidDefinition, and StatesError (an error in flight)

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

from musicvid_core.asl.errors import ExecutionFailed, InvalidDefinition
from musicvid_core.asl.machine import StateMachine
from musicvid_core.asl.validation import load_definition, validate_definition

__all__ = ["ExecutionFailed", "InvalidDefinition", "StateMachine", "load_definition", "validate_definition"]
