"""Pure data and rules: no I/O, no heavy imports."""

from musicvid_core.domain.errors import *  # noqa: F403
from musicvid_core.domain.job import (  # noqa: F401
    Job,
    JobError,
    OperationType,
    Reroll,
    Stage,
    Status,
    check_transition,
    clean_prompt,
    parse_job_id,
)
from musicvid_core.domain.layout import ArtifactLayout  # noqa: F401
from musicvid_core.domain.options import JobOptions  # noqa: F401
from musicvid_core.domain.plan import Plan, Segment  # noqa: F401
