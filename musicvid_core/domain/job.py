"""Job: one video + prompt history, and the only place its status rules live."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from musicvid_core.domain.errors import BadInput, InvalidTransition


class Status(str, Enum):
    SCHEDULED = "SCHEDULED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class OperationType(str, Enum):
    NEW = "NEW"
    REGENERATE = "REGENERATE"


class Stage(str, Enum):
    """Pipeline stage a job is in (or failed in)."""

    QUEUED = "queued"
    START = "start"
    ANALYZE = "analyze"
    GENERATE = "generate"
    MIX = "mix"
    SUMMARY = "summary"
    DONE = "done"


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED})

# The lifecycle. A terminal job may be scheduled again (regeneration or retry); nothing else
# leaves a terminal state, and nothing skips PROCESSING on its way to COMPLETED.
_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SCHEDULED: frozenset({Status.PROCESSING, Status.FAILED}),
    Status.PROCESSING: frozenset({Status.COMPLETED, Status.FAILED}),
    Status.COMPLETED: frozenset({Status.SCHEDULED}),
    Status.FAILED: frozenset({Status.SCHEDULED}),
}


def check_transition(current: Status, new: Status) -> None:
    """Raise :class:`InvalidTransition` unless ``current -> new`` is a legal status change."""
    if new not in _TRANSITIONS[current]:
        raise InvalidTransition(f"job cannot go from {current.value} to {new.value}",
                                current=current.value, new=new.value)


MAX_PROMPT_CHARS = 2000


def clean_prompt(prompt: str) -> str:
    """Normalise a user prompt: printable, single-spaced, 1..MAX_PROMPT_CHARS chars.

    Raises BadInput for an empty or over-long prompt.
    """
    if not isinstance(prompt, str):
        raise BadInput("prompt must be text")
    text = "".join(ch if ch.isprintable() else " " for ch in prompt)
    text = " ".join(text.split())
    if not text:
        raise BadInput("prompt is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise BadInput(f"prompt is longer than {MAX_PROMPT_CHARS} characters ({len(text)})")
    return text


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class JobError(BaseModel):
    """Why a job failed: the error type (class name), a one-line message and the stage."""

    type: str
    message: str
    stage: str


class Job(BaseModel):
    model_config = ConfigDict(use_enum_values=False)

    job_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    user_id: str
    s3_url: str  # the input's object URI: s3://bucket/key on AWS, local://key on the embedded store
    prompts: list[str]  # oldest first; the last is the one being (or last) rendered
    status: Status = Status.SCHEDULED
    operation_type: OperationType = OperationType.NEW
    final_url: str | None = None  # object URI of the latest successful output
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    stage: Stage = Stage.QUEUED
    error: JobError | None = None
    summary: str | None = None
    plan_url: str | None = None  # object URI of the latest plan JSON
    attempt: int = 1  # increments on every regeneration; outputs live under this attempt
    seed: int = 0
    settings: dict = Field(default_factory=dict)  # per-job render options (target LUFS, ...)
    metrics: dict = Field(default_factory=dict)  # measured figures of the latest output
    version: int = 0  # optimistic-concurrency counter, bumped on every write

    @field_validator("job_id")
    @classmethod
    def _uuid(cls, v: str) -> str:
        try:
            return str(uuid.UUID(v))
        except (ValueError, AttributeError, TypeError):
            raise ValueError("job_id must be a UUID") from None

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("a job needs at least one prompt")
        return v

    @property
    def prompt(self) -> str:
        """The current prompt (the newest in the history)."""
        return self.prompts[-1]

    @property
    def prefix(self) -> str:
        """Object-store prefix for this attempt's outputs (rollback removes exactly this)."""
        return f"jobs/{self.job_id}/{self.attempt}/"

    def public(self) -> dict:
        """The JSON view shown to users (CLI --json, API), without internal counters."""
        return self.model_dump(mode="json", exclude={"version", "settings"})


def parse_job_id(value: str) -> str:
    """Return the canonical UUID string or raise BadInput (never NotFound: don't probe the store)."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise BadInput(f"not a job id (expected a UUID): {str(value)[:60]!r}") from None
