"""Entry points of the media container image (infra/lambda-media/Dockerfile).

One image serves the three media steps (analyzer, audio_generator, av_operator). Each function
picks its step with ``ImageConfig.Command`` = ``musicvid_core.lambda_handler.<step>``
(infra/build_template.py); :func:`handler`, the image's default CMD, picks it from the
environment variable ``MUSICVID_STEP`` instead (handy for ``docker run`` with the runtime
interface emulator). Every entry point calls the step handler that the local runner and the Chalice
app call, unchanged, so the exception types Step Functions' Retry/Catch match stay the same.
"""

from __future__ import annotations

from typing import Any

from musicvid_core.bootstrap import process_services
from musicvid_core.domain.errors import ConfigurationError
from musicvid_core.settings import Settings
from musicvid_core.workflow import steps

# Every Task of musicvid_core/workflow/workflow.asl.json, by the name of its handler in musicvid_core.workflow.steps.
STEPS = ("coordinator", "analyzer", "audio_generator", "av_operator", "failure_handler")
MEDIA_STEPS = ("analyzer", "audio_generator", "av_operator")  # the ones deployed from the image


def dispatch(step: str, event: dict) -> dict:
    """Run step handler ``step`` on ``event``. Raises ConfigurationError for an unknown step name
    (a deployment mistake, not bad input); otherwise whatever the step raises."""
    if step not in STEPS:
        raise ConfigurationError(f"unknown step {step!r}: expected one of {', '.join(STEPS)}")
    # looked up at call time, not bound at import: one table, and tests can swap a handler
    return getattr(steps, step)(event, process_services())


def handler(event: dict, context: Any = None) -> dict:
    """The image's default CMD: the step named by ``$MUSICVID_STEP``."""
    return dispatch(Settings().step, event)


def coordinator(event: dict, context: Any = None) -> dict:
    return dispatch("coordinator", event)


def analyzer(event: dict, context: Any = None) -> dict:
    return dispatch("analyzer", event)


def audio_generator(event: dict, context: Any = None) -> dict:
    return dispatch("audio_generator", event)


def av_operator(event: dict, context: Any = None) -> dict:
    return dispatch("av_operator", event)


def failure_handler(event: dict, context: Any = None) -> dict:
    return dispatch("failure_handler", event)
