"""Pure data and rules: no I/O, no heavy imports."""

from .errors import *  # noqa: F403
from .job import Job, JobError, OperationType, Stage, Status, check_transition, clean_prompt, parse_job_id  # noqa: F401
from .plan import Plan, Segment  # noqa: F401
