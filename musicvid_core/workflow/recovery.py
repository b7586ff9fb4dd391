"""Crash recovery for the embedded runner: no job stays SCHEDULED or PROCESSING after its process died.

Every process that runs a job holds its lease (adapters/local/leases.py). :func:`reconcile` runs
whenever a musicvid process opens the store (the CLI's commands, ``musicvid serve`` at start) and
looks at every unfinished job:

- its lease is held by a live process: left alone;
- its owner is dead (on this host at once, by pid and process start time; elsewhere when the lease
  expired), or a SCHEDULED job has had no owner for ``Settings.orphan_grace_s``: the reconciler
  claims the lease (so two reconcilers never both act), deletes the attempt's partial outputs
  (``jobs/{id}/{attempt}/``: the upload and the job's analysis cache are never touched) and then
  either hands the job to ``resume`` (``musicvid serve`` re-runs the attempt: its features are
  cached, and every step writes whole objects at fixed keys, so a re-run duplicates nothing) or
  marks it FAILED with type ``WorkerLost`` and a reason naming the dead process and the stage.

It also removes what killed processes leave outside the store: their scratch folders under the
system temp dir (named ``musicvid-{pid}-...``) and the object store's half-written temp files.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from musicvid_core.adapters.local.leases import pid_alive
from musicvid_core.domain.errors import ConcurrentUpdate
from musicvid_core.domain.job import TERMINAL, Job, Status
from musicvid_core.media import SCRATCH_PREFIX
from musicvid_core.services import Services
from musicvid_core.workflow.steps import mark_failed

log = logging.getLogger(__name__)

LOST = "WorkerLost"
MAX_RESUMES = 2  # re-runs of one attempt after its worker died, before it is failed instead

def reconcile(services: Services, resume: Callable[[Job], None] | None = None) -> list[Job]:
    """Settle the jobs dead processes left unfinished (see the module docstring); returns them as
    they are after reconciling (FAILED, or as handed to ``resume``). A no-op for job stores
    without leases (on AWS, Step Functions owns executions)."""
    leases = services.leases
    if leases is None:
        return []
    settled: list[Job] = []
    now = time.time()
    for job in services.jobs.unfinished():
        lease = leases.get(job.job_id)
        if lease is not None:
            if lease.alive(now):
                continue
            why = f"the musicvid process running it ({lease.owner.describe()}) stopped during {job.stage.value}"
        else:
            if now - job.updated_at.timestamp() < services.settings.orphan_grace_s:
                continue
            why = ("the musicvid process that submitted it stopped before running it" if job.status == Status.SCHEDULED
                   else f"no musicvid process holds it (stopped during {job.stage.value})")
        try:
            mine = leases.acquire(job.job_id)
        except ConcurrentUpdate:  # another reconciler (or a new runner) got there first
            continue
        handed_over = False
        try:
            job = services.jobs.get(job.job_id)
            if job.status in TERMINAL:
                continue
            removed = services.objects.delete_prefix(job.layout.prefix)
            log.warning("job %s: %s; removed %d partial objects", job.job_id, why, removed)
            resumes = job.resumes
            if resume is not None and resumes < MAX_RESUMES:
                # counted, so an input that kills its worker every time cannot loop forever
                job = services.jobs.update(job.job_id, {"resumes": resumes + 1})
                resume(job)
                handed_over = True
                settled.append(job)
            else:
                if resume is not None:
                    why += f", for the {resumes + 1}th time"
                settled.append(mark_failed(services, job.job_id, LOST,
                                           f"{why}; run `musicvid regenerate {job.job_id}` to try again",
                                           job.stage.value))
        finally:
            if not handed_over:
                leases.release(job.job_id, mine.owner)
    _drop_stale_leases(services)
    sweep_scratch()
    sweep = getattr(services.objects, "sweep_temp", None)
    if sweep is not None:
        sweep(max_age_s=max(services.settings.lease_ttl_s, 600.0))
    return settled


def _drop_stale_leases(services: Services) -> None:
    """Leases of dead processes on jobs that did finish (killed between the last write and release)."""
    for lease in services.leases.all():
        if lease.alive():
            continue
        try:
            if services.jobs.get(lease.job_id).status in TERMINAL:
                services.leases.release(lease.job_id, lease.owner)
        except Exception:  # the job is gone: so is the need for its lease
            services.leases.release(lease.job_id, lease.owner)


def sweep_scratch(root: str | Path | None = None) -> int:
    """Delete scratch folders (``musicvid-{pid}-*`` in the temp dir) whose process is gone.
    Returns how many were removed."""
    root = Path(root or tempfile.gettempdir())
    removed = 0
    for path in root.glob(f"{SCRATCH_PREFIX}*-*"):
        pid = path.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed += 1
    return removed
