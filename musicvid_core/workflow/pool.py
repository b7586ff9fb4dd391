"""The local launcher behind ``musicvid serve``: jobs run in the background on a bounded pool.

This is the one place where the server's jobs execute: :meth:`PooledLauncher.start` queues the
job's current attempt and :meth:`PooledLauncher._execute` runs it with the embedded runner
(:func:`~musicvid_core.workflow.runner.run_job`, which always leaves the job terminal). At most
``workers`` jobs render at once (Settings.workers); the rest wait SCHEDULED in the queue. The
execution name is ``{job_id}-{attempt}``, as on Step Functions, and starting the same attempt
twice runs it once.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ..config import Services
from ..domain.job import Job

log = logging.getLogger(__name__)


class PooledLauncher:
    def __init__(self, services: Services, workers: int) -> None:
        self.services = services
        self.workers = int(workers)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="musicvid-job")
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future] = {}

    def start(self, job: Job) -> str:
        name = f"{job.job_id}-{job.attempt}"
        with self._lock:
            for done in [n for n, f in self._in_flight.items() if f.done()]:
                del self._in_flight[done]
            if name not in self._in_flight:
                future = self._pool.submit(self._execute, job.job_id, name)
                self._in_flight[name] = future
        return name

    def _execute(self, job_id: str, name: str) -> None:
        from .runner import run_job

        try:
            run_job(self.services, job_id)
        except Exception:  # run_job marks the job FAILED itself; never let a worker die silently
            log.exception("job %s crashed in the worker", name)

    def running(self) -> list[str]:
        """Execution names queued or running now."""
        with self._lock:
            return [n for n, f in self._in_flight.items() if not f.done()]

    def wait(self, timeout: float | None = None) -> None:
        """Block until every queued job has finished (tests, shutdown)."""
        with self._lock:
            futures = list(self._in_flight.values())
        for f in futures:
            f.result(timeout=timeout)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
