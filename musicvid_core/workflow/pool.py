"""The local launcher behind ``musicvid serve``: jobs run in the background on a bounded pool.

This is the one place where the server's jobs execute: :meth:`PooledLauncher.start` queues the
job's current attempt and :meth:`PooledLauncher._execute` runs it with the embedded runner
(:func:`~musicvid_core.workflow.runner.run_job`, which always leaves the job terminal). At most
``workers`` jobs render at once (Settings.workers); the rest wait SCHEDULED in the queue. The
execution name is ``{job_id}-{attempt}``, as on Step Functions, and starting the same attempt
twice runs it once.

The queue is fair between users: each user has a queue of their own, and a free worker takes the
oldest job of the user served least recently (a user with nothing waiting first). One user's
backlog therefore delays another user's job by at most one job's run time per worker, however
long that backlog is (the API also caps each user's active jobs, Settings.max_active_jobs).

With ``isolation="process"`` (Settings.worker_isolation, the default for ``musicvid serve``) each
job runs in a child process forked from a clean forkserver that has the media stack imported:
rendering never holds the server's GIL (status reads stay fast while jobs run), and a native crash
or an out-of-memory kill takes down one job, not the server. The child takes over the job's lease
from the server (its parent) and gives it back when done; if it dies, the worker thread that
waited on it fails the job at once with the reason (WorkerLost) and rolls back its partial outputs.
``"thread"`` runs jobs in the worker threads themselves (tests that patch the runner).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from musicvid_core.domain.job import TERMINAL, Job
from musicvid_core.services import Services
from musicvid_core.settings import Settings

log = logging.getLogger(__name__)


# Imported once in the forkserver, so each job's child starts warm (fork, not a fresh interpreter).
PRELOAD = ["musicvid_core.workflow.runner", "musicvid_core.workflow.steps", "musicvid_core.stages.analyse.features",
           "musicvid_core.stages.mix.compose", "musicvid_core.stages.compose.procedural", "numpy", "scipy.signal"]


def _child(build: Callable[[Settings], Services], settings: Settings, job_id: str, parent: tuple) -> None:
    """A job's child process: fresh services from ``build`` (the composition root's builder, handed
    down; no connection crosses a fork), the lease taken over from the parent, the workflow run to a
    terminal state."""
    from musicvid_core.adapters.local.leases import Owner
    from musicvid_core.workflow.runner import run_job

    run_job(build(settings), job_id, adopt_from=Owner(*parent))


class PooledLauncher:
    def __init__(self, services: Services, workers: int, isolation: str = "thread",
                 build: Callable[[Settings], Services] | None = None) -> None:
        """``build`` makes a child process's services from Settings (required for ``"process"``)."""
        if isolation == "process" and build is None:
            raise ValueError("process isolation needs the services builder")
        self.services = services
        self.build = build
        self.workers = int(workers)
        self.isolation = isolation
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="musicvid-job")
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future] = {}
        # user -> their waiting (job_id, name, future), oldest first; and when each was last served
        self._queues: dict[str, deque[tuple[str, str, Future]]] = {}
        self._served: dict[str, int] = {}
        self._tick = 0

    def start(self, job: Job) -> str:
        name = f"{job.job_id}-{job.attempt}"
        with self._lock:
            for done in [n for n, f in self._in_flight.items() if f.done()]:
                del self._in_flight[done]
            if name not in self._in_flight:
                future: Future = Future()
                self._in_flight[name] = future
                self._queues.setdefault(job.user_id, deque()).append((job.job_id, name, future))
                # one pool task per queued job; which job it runs is decided when a worker is free
                self._pool.submit(self._run_next)
        return name

    def _take(self) -> tuple[str, str, Future] | None:
        """The next job to run: the oldest of the user served least recently (a user never served,
        or whose queue has emptied since: first)."""
        with self._lock:
            if not self._queues:
                return None
            user = min(self._queues, key=lambda u: self._served.get(u, -1))  # ties: the earliest queue
            queue = self._queues[user]
            item = queue.popleft()
            self._tick += 1
            self._served[user] = self._tick
            if not queue:
                del self._queues[user]
                del self._served[user]
            return item

    def _run_next(self) -> None:
        item = self._take()
        if item is None:
            return
        job_id, name, future = item
        if not future.set_running_or_notify_cancel():
            return
        try:
            self._execute(job_id, name)  # run_job leaves the job terminal; failures are logged there
        finally:
            future.set_result(None)

    def _execute(self, job_id: str, name: str) -> None:
        from musicvid_core.workflow.runner import run_job

        try:
            if self.isolation == "process":
                self._execute_in_child(job_id)
            else:
                run_job(self.services, job_id)
        except Exception:  # run_job marks the job FAILED itself; never let a worker die silently
            log.exception("job %s crashed in the worker", name)

    def _execute_in_child(self, job_id: str) -> None:
        import multiprocessing

        from musicvid_core.adapters.local.leases import Owner
        from musicvid_core.workflow.recovery import LOST
        from musicvid_core.workflow.steps import mark_failed

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        me = Owner.me()
        proc = ctx.Process(target=_child, args=(self.build, self.services.settings, job_id, (me.host, me.pid, me.pid_start)),
                           name=f"musicvid-job-{job_id[:8]}")
        proc.start()
        proc.join()
        if proc.exitcode == 0:
            return
        job = self.services.jobs.get(job_id)
        if job.status in TERMINAL:
            return
        how = f"was killed by signal {-proc.exitcode}" if proc.exitcode < 0 else f"exited with status {proc.exitcode}"
        removed = self.services.objects.delete_prefix(job.prefix)
        log.warning("job %s: worker process %s; %d partial objects removed", job_id, how, removed)
        mark_failed(self.services, job_id, LOST, f"the worker process running it (pid {proc.pid}) {how} "
                    f"during {job.stage.value}", job.stage.value)
        if self.services.leases is not None:
            self.services.leases.release(job_id)

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
        if not wait:  # the jobs still queued stay SCHEDULED (recovery takes them up)
            with self._lock:
                for queue in self._queues.values():
                    for _, _, future in queue:
                        future.cancel()
                self._queues.clear()
                self._served.clear()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
