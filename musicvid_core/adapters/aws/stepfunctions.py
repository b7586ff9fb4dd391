"""Launcher on Step Functions: StartExecution of the state machine built from musicvid_core/workflow/workflow.asl.json.

The execution name is ``{job_id}-{attempt}`` (the same name the local runner gives its runs), so a
repeated start of the same attempt is idempotent: Step Functions refuses a second execution with
that name, which is reported as already started.
"""

from __future__ import annotations

import json
from typing import Any

from musicvid_core.adapters.aws.errors import aws_call, error_code
from musicvid_core.domain.errors import ConfigurationError
from musicvid_core.domain.job import Job


def execution_name(job: Job) -> str:
    return f"{job.job_id}-{job.attempt}"


class StepFunctionsLauncher:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        if not state_machine_arn:
            raise ConfigurationError("the stepfunctions launcher needs MUSICVID_STATE_MACHINE_ARN")
        self.client = client
        self.arn = state_machine_arn

    def start(self, job: Job) -> str:
        name = execution_name(job)
        with aws_call(f"StepFunctions StartExecution {name}"):
            try:
                self.client.start_execution(stateMachineArn=self.arn, name=name,
                                            input=json.dumps({"job_id": job.job_id, "attempt": job.attempt}))
            except Exception as exc:
                if error_code(exc) != "ExecutionAlreadyExists":
                    raise
        return name
