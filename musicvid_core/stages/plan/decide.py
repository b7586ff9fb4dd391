"""The plan stage's one entry: every decision on what plan a job attempt gets, in one function."""

from __future__ import annotations

from musicvid_core.domain.errors import BadInput
from musicvid_core.domain.features import VideoFeatures
from musicvid_core.domain.job import Job
from musicvid_core.domain.plan import Plan
from musicvid_core.ports import JobPlanner, ObjectStore, Planner
from musicvid_core.stages.plan.planner import lock_timing, reroll_segment


def decide_plan(planner: Planner, job: Job, features: VideoFeatures, objects: ObjectStore,
                previous: Plan | None = None) -> Plan:
    """The plan of ``job``'s current attempt (times in seconds from the video start):

    - a one-segment re-roll (``job.reroll``) re-rolls that segment of ``previous`` (the plan of the
      attempt the re-roll copies the other segments from) and refits only its beat grid, with the
      hits inside it; every other segment is returned unchanged, so its audio may be copied;
    - otherwise the planner plans: a :class:`~musicvid_core.ports.JobPlanner` (a model planner)
      from the whole job (the video itself, the conversation of earlier attempts; it may store
      its conversation in ``objects``), any other from the features, ``job.prompt`` and ``job.seed``.
      Requested hits (``job.options.hits``, even an empty list: they replace the plan's), or a
      planner that left the timing open (no beats), get every beat grid fitted to the cuts;
    - the job's ``source_music`` option overrides the planner's source-music policy.

    Deterministic per job (prompt, seed, options, previous plan) for the rule planner. Raises
    BadInput for a re-roll without its previous plan or of a segment outside it, and whatever
    the planner raises (PlanValidationError, TransientError ...)."""
    reroll = job.reroll
    hits = job.options.hits
    if reroll is not None:  # one segment re-rolled over the previous attempt's plan
        if previous is None:
            raise BadInput("a segment re-roll needs the plan it starts from")
        plan = reroll_segment(previous, reroll.segment, features, prompt=reroll.prompt, hits=hits)
    else:
        if isinstance(planner, JobPlanner):
            plan = planner.plan_for_job(job, features, objects)
        else:
            plan = planner.plan(features, job.prompt, job.seed)
        if hits is not None or not any(s.beats for s in plan.segments):
            plan = lock_timing(plan, features, hits=hits)
    if job.options.source_music:  # the job's option over the planner's default
        plan = plan.model_copy(update={"source_music_policy": job.options.source_music})
    return plan
