"""Asynchronous generators (``is_async = True``, e.g. the SageMaker endpoint) in the workflow.

The ASL never sleeps inside a Task. The Analyzer submits every segment's request back to back
(:func:`submit_all`); each Map iteration's GenerateSegment then calls :func:`advance`, which
returns None while the segment's output is pending — the step answers ``{"pending": true,
"wait_s": ...}`` and the iteration's Choice sends it to a Wait state and back — and the clip once
the output is there. A synchronous generator (the procedural default) never comes here: its
GenerateSegment renders in the first call and the Choice ends the iteration at once.

Each segment's request record is stored under the attempt's prefix (``ArtifactLayout.music_record``), so
a retried or re-entered iteration never submits twice, and rollback removes it with the rest.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from musicvid_core.domain.errors import NotFound, TransientError
from musicvid_core.domain.job import Job
from musicvid_core.domain.plan import Plan
from musicvid_core.services import Services

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


def submit_all(services: Services, job: Job, plan: Plan) -> int:
    """Submit every segment not yet submitted, back to back; returns how many were. A transient
    failure stops here without failing the Analyzer (which would redo the analysis): the
    iterations submit whatever is missing themselves, with their own retries."""
    gen = services.generator
    sent = 0
    for index in range(len(plan.segments)):
        if services.objects.exists(job.layout.music_record(index)):
            continue
        try:
            [record] = gen.submit(plan, job.seed, job.prefix, [index], tag=_tag(job))
        except TransientError as exc:
            log.warning("submitting segment %d deferred to its iteration: %s", index, exc)
            break
        services.objects.put_json(job.layout.music_record(index), record)
        sent += 1
    return sent


def advance(services: Services, job: Job, plan: Plan, index: int) -> np.ndarray | None:
    """Segment ``index``'s clip when its output is ready, else None (submitting it first if the
    Analyzer could not). Raises GenerationError for a failed or empty output or a passed deadline."""
    gen = services.generator
    key = job.layout.music_record(index)
    try:
        record = services.objects.get_json(key)
    except NotFound:
        [record] = gen.submit(plan, job.seed, job.prefix, [index], tag=_tag(job))
        services.objects.put_json(key, record)
    if not gen.check(record):
        return None
    return gen.fetch(plan, record)


def _tag(job: Job) -> str:
    return f"{job.job_id}-{job.attempt}"
