"""Job: one video + prompt history, and the only place its status rules live."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from musicvid_core.domain.errors import BadInput, InvalidTransition
from musicvid_core.domain.layout import ArtifactLayout
from musicvid_core.domain.options import JobOptions


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


class Reroll(BaseModel):
    """A regeneration that re-rolls one plan segment: every other segment's audio is copied
    bit-identically from attempt ``attempt`` (the one that made the plan it starts from)."""

    model_config = ConfigDict(frozen=True)

    segment: int = Field(ge=0)  # the plan segment re-rolled, 0-based
    prompt: str | None = None  # that segment's new prompt; None: keep its description
    attempt: int = Field(ge=1)  # where the plan, the features and the other segments' audio come from


# Job fields that used to live in the ``settings`` map (stored rows written before JobOptions).
_BOOKKEEPING = ("reroll", "resumes", "client_token")


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
    options: JobOptions = Field(default_factory=JobOptions)  # the user's render options
    reroll: Reroll | None = None  # the current attempt re-rolls one segment of an earlier one
    resumes: int = 0  # re-runs after a dead worker (workflow/recovery.py); kept across attempts
    client_token: str | None = None  # the API idempotency key of the latest regeneration
    metrics: dict = Field(default_factory=dict)  # measured figures of the latest output
    version: int = 0  # optimistic-concurrency counter, bumped on every write

    @model_validator(mode="before")
    @classmethod
    def _migrate_settings(cls, data: Any) -> Any:
        """Rows stored before JobOptions kept options and bookkeeping in one ``settings`` map
        (re-roll source as the prefix ``"from": "jobs/{id}/{n}/"``): split it into the fields.
        Unknown keys were never read by anything and are dropped."""
        if not isinstance(data, dict) or "settings" not in data:
            return data
        data = dict(data)
        old = dict(data.pop("settings") or {})
        reroll = old.get("reroll")
        if isinstance(reroll, dict) and "from" in reroll:
            source = ArtifactLayout.holding(f"{reroll['from']}plan.json")
            reroll = {"segment": reroll.get("segment"), "prompt": reroll.get("prompt"),
                      "attempt": source.attempt if source is not None else None}
        moved = {"reroll": reroll, "resumes": old.get("resumes", 0), "client_token": old.get("client_token")}
        for key in _BOOKKEEPING:
            data.setdefault(key, moved[key])
        data.setdefault("options", {k: v for k, v in old.items() if k in JobOptions.model_fields})
        return data

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
    def layout(self) -> ArtifactLayout:
        """The object keys of this attempt (and of the job's cache)."""
        return ArtifactLayout(self.job_id, self.attempt)

    @property
    def prefix(self) -> str:
        """Object-store prefix for this attempt's outputs (rollback removes exactly this)."""
        return self.layout.prefix

    def public(self) -> dict:
        """The JSON view shown to users (CLI --json), without options, counters and bookkeeping."""
        return self.model_dump(mode="json", exclude={"version", "options", *_BOOKKEEPING})


_JOB_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_job_id(value: str) -> str:
    """Return the canonical UUID string or raise BadInput (never NotFound: don't probe the store).

    The whole value must be the 8-4-4-4-12 hex form: uuid.UUID alone would also take braces, a
    ``urn:uuid:`` prefix or misplaced hyphens, and a pattern's ``$`` a trailing newline."""
    if not isinstance(value, str) or not _JOB_ID.fullmatch(value):
        raise BadInput(f"not a job id (expected a UUID): {str(value)[:60]!r}")
    return str(uuid.UUID(value))
