"""The embedded runner: executes musicvid_core/workflow/workflow.asl.json in-process with the step handlers.

The definition's ``${...FunctionArn}`` placeholders (Step Functions DefinitionSubstitutions on
AWS) are substituted with ``musicvid:<Step>`` names that resolve to the handlers in
:mod:`musicvid_core.workflow.steps`, called with this process's services.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from pathlib import Path

from musicvid_core.adapters.local.leases import Heartbeat
from musicvid_core.asl import ExecutionFailed, StateMachine, load_definition
from musicvid_core.domain.errors import ConfigurationError
from musicvid_core.domain.job import TERMINAL, Job
from musicvid_core.logs import job_context
from musicvid_core.services import Services
from musicvid_core.settings import Settings
from musicvid_core.workflow.steps import HANDLERS, mark_failed

# The one definition, shipped inside the package (the deploy template reads this same file).
PACKAGED_DEFINITION = Path(__file__).resolve().parent / "workflow.asl.json"


def definition_path(settings: Settings | None = None) -> Path:
    """``settings.workflow`` (MUSICVID_WORKFLOW) when set, else the packaged workflow.asl.json."""
    configured = settings.workflow if settings is not None else None
    path = Path(configured).expanduser() if configured else PACKAGED_DEFINITION
    if not path.is_file():
        raise ConfigurationError(f"workflow definition not found at {path}; set MUSICVID_WORKFLOW")
    return path


SUBSTITUTIONS = {f"{step}FunctionArn": f"musicvid:{step}" for step in HANDLERS}


@functools.lru_cache(maxsize=4)
def _definition(path: str, map_concurrency: int = 0) -> dict:
    """The definition at ``path``, each Map state's MaxConcurrency capped at ``map_concurrency``
    (settings.map_concurrency; 0: as written). Here a Map's iterations are threads of one process
    (on Step Functions, separate Lambdas): each segment render holds its stems (~100 MB), and
    tinysoundfont holds the GIL while it renders, so the definition's 4 would cost ~200 MB more
    than 2 and, on 2 cores, took longer (issue 18, docs/speed.md)."""
    definition = load_definition(path, SUBSTITUTIONS)
    if map_concurrency:
        _cap_maps(definition.get("States", {}), map_concurrency)
    return definition


def _cap_maps(states: dict, limit: int) -> None:
    for state in states.values():
        if state.get("Type") == "Map":
            state["MaxConcurrency"] = min(state.get("MaxConcurrency", 0) or limit, limit)
            _cap_maps((state.get("ItemProcessor") or state.get("Iterator") or {}).get("States", {}), limit)
        for branch in state.get("Branches", ()):
            _cap_maps(branch.get("States", {}), limit)


def run_job(services: Services, job_id: str, on_event: Callable[[dict], None] | None = None, *,
            adopt_from=None) -> Job:
    """Run the workflow for the job's current attempt to a terminal state and return the job.

    Whatever happens inside (including a failure of the FailureHandler itself), the job never
    stays SCHEDULED or PROCESSING once this returns.
    """
    job = services.jobs.get(job_id)
    with job_context(job_id=job.job_id, attempt=job.attempt):
        return _run(services, job, on_event, adopt_from)


def _run(services: Services, job: Job, on_event: Callable[[dict], None] | None, adopt_from) -> Job:
    job_id = job.job_id

    def resolve(resource: str):
        step = resource.removeprefix("musicvid:")
        if step not in HANDLERS:
            raise ConfigurationError(f"workflow names an unknown task resource {resource!r}")
        return functools.partial(HANDLERS[step], services=services)

    machine = StateMachine(_definition(str(definition_path(services.settings)), services.settings.map_concurrency), resolve,
                           time_scale=services.settings.retry_time_scale, on_event=_warm_after_first(services, on_event),
                           task_timeout=_TaskTimeouts(services, job))
    # The lease says this process runs the job (ConcurrentUpdate if another live one does); if this
    # process dies, the next musicvid process to open the store settles the job (recovery.py).
    leases = services.leases
    # ``adopt_from``: the process that handed us the job (musicvid serve's pool, our parent) still
    # holds its lease; we take it over rather than wait for it.
    lease = leases.acquire(job.job_id, adopt_from=adopt_from) if leases is not None else None
    try:
        with Heartbeat(leases, lease) if lease is not None else contextlib.nullcontext():
            try:
                machine.run({"job_id": job.job_id, "attempt": job.attempt},
                            name=f"{job.job_id}-{job.attempt}")
            except ExecutionFailed as exc:
                if exc.error != "JobFailed":  # an error the definition did not route to the handler
                    mark_failed(services, job_id, exc.error, str(exc.cause)[:500],
                                services.jobs.get(job_id).stage.value)
            finally:
                job = services.jobs.get(job_id)
                if job.status not in TERMINAL:
                    mark_failed(services, job_id, "RunnerError", "the workflow ended without finishing the job",
                                job.stage.value)
    finally:
        if lease is not None:
            leases.release(job.job_id, lease.owner)
    return services.jobs.get(job_id)


def _warm_after_first(services: Services, on_event: Callable[[dict], None] | None) -> Callable[[dict], None]:
    """``on_event``, which also starts warming the backends (Services.warm, in a thread) once the
    first event has been reported. Their imports (numpy, scipy: 0.15-1.3 s) hold the GIL much of
    the time: begun before, they held up the run's first progress line by 20-40 ms (issue 18), and
    nothing needs them before the Analyze state. The machine calls this under its event lock."""
    warm = threading.Thread(target=services.warm, name="musicvid-warm", daemon=True)

    def report(event: dict) -> None:
        try:
            if on_event is not None:
                on_event(event)
        finally:
            if warm.ident is None:
                warm.start()

    return report


class _TaskTimeouts:
    """A Task's TimeoutSeconds on this machine: the definition's (Lambda's 900 s) for inputs up to
    media.TIMEOUT_REFERENCE_S, scaled with the input's duration beyond, as each ffmpeg call's limit
    is (media.timeout_for). A 2-hour input's mix takes longer than 900 s here, and a Task timeout
    only stops the wait: the job would fail and roll back while the mix still ran. The duration
    comes from the job's cached features, else the stored input's header; unknown (an input not on
    this disk), the definition's limit stands."""

    def __init__(self, services: Services, job: Job) -> None:
        self.services, self.job = services, job
        self.duration: float | None = None
        self.known = False

    def __call__(self, state: str, seconds: float) -> float:
        from musicvid_core.media import timeout_for

        if not self.known:  # once per run: the first Task's probe stands for the others
            self.duration, self.known = self._duration(), True
        return timeout_for(seconds, self.duration)

    def _duration(self) -> float | None:
        from musicvid_core.domain.errors import MusicVidError
        from musicvid_core.domain.features import VideoFeatures

        objects = self.services.objects
        try:
            return VideoFeatures.model_validate_json(objects.get_bytes(self.job.layout.features_cache)).media.duration
        except (MusicVidError, ValueError):
            pass
        try:
            path = objects.local_path(objects.key_from_uri(self.job.s3_url))
        except MusicVidError:
            return None
        if path is None or not path.is_file():
            return None
        from musicvid_core.media import run_ffmpeg
        from musicvid_core.stages.analyse.probe import header_duration

        try:
            return header_duration(run_ffmpeg(["-i", str(path)], timeout=self.services.settings.ffmpeg_timeout_s,
                                              what="probe", check=False).stderr)
        except MusicVidError:
            return None


class LocalLauncher:
    """Launcher port on one machine: runs the workflow in the calling thread."""

    def __init__(self, services: Services, on_event: Callable[[dict], None] | None = None) -> None:
        self.services = services
        self.on_event = on_event

    def start(self, job: Job) -> str:
        run_job(self.services, job.job_id, self.on_event)
        return f"{job.job_id}-{job.attempt}"
