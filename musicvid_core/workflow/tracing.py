"""Every step handler logs under its job: ``job_id``, ``stage`` and ``attempt`` on each line.

:func:`traced` wraps a handler once, where it is defined, so all three engines get it: the embedded
runner, the Chalice step Lambdas and the media image's handlers (musicvid_core/logs.py explains the
fields and how to follow one job across steps).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from musicvid_core.logs import job_context

log = logging.getLogger("musicvid_core.workflow")


def traced(step: str) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Decorate step handler ``step`` (the Task's name): its lines carry the event's job_id,
    attempt and segment index, and the stage (``step`` or ``step:action``); it logs its start,
    its end with the time taken (seconds), and an error's type on the way out (re-raised)."""

    def wrap(handler: Callable[..., dict]) -> Callable[..., dict]:
        @functools.wraps(handler)
        def run(event: Any, *args: Any, **kwargs: Any) -> dict:
            fields = event if isinstance(event, dict) else {}
            action = fields.get("action")
            stage = f"{step}:{action}" if isinstance(action, str) and action else step
            with job_context(job_id=fields.get("job_id"), attempt=fields.get("attempt"), stage=stage,
                             segment=fields.get("index")):
                started = time.perf_counter()
                log.info("step starts")
                try:
                    out = handler(event, *args, **kwargs)
                except Exception as exc:
                    log.warning("step failed after %.2f s: %s: %s", time.perf_counter() - started,
                                type(exc).__name__, " ".join(str(exc).split())[:300])
                    raise
                log.info("step done in %.2f s", time.perf_counter() - started)
                return out

        return run

    return wrap
