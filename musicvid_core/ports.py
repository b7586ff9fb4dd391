"""Ports: what the pipeline needs from the outside world, with the shared rules in base classes.

Adapters implement a few primitives; the logic (key validation, status transitions, paging)
lives here once, so the SQLite and DynamoDB job stores or the folder and S3 object stores cannot
drift apart. Adapters receive their clients; nothing connects at import time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from musicvid_core.domain.errors import BadInput, ConcurrentUpdate, NotFound, TooManyJobs
from musicvid_core.domain.job import Job, Status, check_transition, utcnow

# ---------------------------------------------------------------------------------------------
# ObjectStore
# ---------------------------------------------------------------------------------------------
_KEY_PART = re.compile(r"[A-Za-z0-9._=@+-]+")  # matched whole (fullmatch): no trailing newline
MAX_KEY_LEN = 512


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise BadInput.

    Keys are '/'-separated parts of [A-Za-z0-9._=@+-]; no empty part, no '.' or '..', no leading
    '/', no backslash: the same rules for the folder store and S3, so no key can escape a root.
    """
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LEN:
        raise BadInput("object key must be 1..512 characters")
    parts = key.split("/")
    for part in parts:
        if part in ("", ".", "..") or not _KEY_PART.fullmatch(part):
            raise BadInput(f"unsafe object key: {key[:80]!r}")
    return key


class ObjectStore(ABC):
    """Blob storage addressed by validated keys and URIs (``scheme://[bucket/]key``)."""

    scheme: str

    # primitives ------------------------------------------------------------------------------
    @abstractmethod
    def _put_file(self, key: str, path: Path, content_type: str | None) -> None: ...

    @abstractmethod
    def _get_file(self, key: str, dest: Path) -> None: ...

    @abstractmethod
    def _put_bytes(self, key: str, data: bytes, content_type: str | None) -> None: ...

    @abstractmethod
    def _get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def _exists(self, key: str) -> bool: ...

    @abstractmethod
    def _delete_prefix(self, prefix: str) -> int: ...

    @abstractmethod
    def _list(self, prefix: str) -> list[str]: ...

    @abstractmethod
    def _size(self, key: str) -> int | None: ...

    @abstractmethod
    def uri(self, key: str) -> str:
        """The object URI of ``key`` in this store."""

    @abstractmethod
    def key_from_uri(self, uri: str) -> str:
        """The key of an object URI of *this* store; BadInput for any other store or bucket."""

    # public, validated -----------------------------------------------------------------------
    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> str:
        self._put_file(validate_key(key), Path(path), content_type)
        return self.uri(key)

    def get_file(self, key: str, dest: str | Path) -> Path:
        """Copy object ``key`` to ``dest``; NotFound if absent."""
        validate_key(key)
        if not self._exists(key):
            raise NotFound(f"object not found: {key}")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._get_file(key, dest)
        return dest

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        self._put_bytes(validate_key(key), data, content_type)
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        if not self._exists(key):
            raise NotFound(f"object not found: {key}")
        return self._get_bytes(key)

    def put_json(self, key: str, obj: Any) -> str:
        return self.put_bytes(key, json.dumps(obj, indent=1).encode(), "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        return self._exists(validate_key(key))

    def size(self, key: str) -> int | None:
        """Bytes of object ``key`` without reading it (S3: a HEAD), None when it does not exist."""
        return self._size(validate_key(key))

    def list(self, prefix: str) -> list[str]:
        return self._list(validate_key(prefix.rstrip("/")) + "/")

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix/``; returns how many were removed."""
        return self._delete_prefix(validate_key(prefix.rstrip("/")) + "/")

    def local_path(self, key: str) -> Path | None:
        """A filesystem path to read ``key`` in place, when the store has one (no copy)."""
        return None


# ---------------------------------------------------------------------------------------------
# JobStore
# ---------------------------------------------------------------------------------------------
ACTIVE = frozenset({Status.SCHEDULED, Status.PROCESSING})  # what the per-user cap counts


def too_many_jobs(user_id: str, limit: int) -> TooManyJobs:
    """The error of a user already at the per-user cap of ``limit`` active jobs."""
    return TooManyJobs(f"you already have {limit} jobs scheduled or running (the limit); submit again "
                       "when one has finished", user_id=user_id, limit=limit)


class JobStore(ABC):
    """Jobs with conditional writes. Subclasses implement storage primitives only; the lifecycle
    rules (legal transitions, optimistic versioning, the per-user cap, paging tokens) live here."""

    # HMAC key of page tokens (bootstrap sets it from Settings.page_token_secret); when None, the
    # store's own shared secret (:meth:`_shared_secret`), else one random key for this process.
    token_secret: bytes | None = None

    @abstractmethod
    def _insert(self, job: Job, max_active: int | None = None) -> None:
        """Store a new job; raise ConcurrentUpdate if the id exists. An active job (SCHEDULED or
        PROCESSING) counts towards its user's active jobs; with ``max_active``, TooManyJobs
        (:func:`too_many_jobs`) when the user already has that many, checked atomically with the
        write."""

    @abstractmethod
    def _get(self, job_id: str) -> Job | None: ...

    @abstractmethod
    def _replace_if(self, job: Job, expected_version: int, *, active_delta: int = 0,
                    max_active: int | None = None) -> bool:
        """Write ``job`` only if the stored version equals ``expected_version``; True if written.
        ``active_delta`` (+1, -1 or 0) is how the write changes the user's count of active jobs;
        with ``max_active`` (only given with +1), TooManyJobs when the user is already there."""

    def _shared_secret(self) -> bytes | None:
        """A random secret created once and shared by every process using this store (the page
        tokens' key); None when the store keeps none."""
        return None

    @abstractmethod
    def _by_user(self, user_id: str, limit: int, after: tuple[str, str] | None) -> list[Job]:
        """Up to ``limit`` jobs of ``user_id``, newest first, strictly after ``(created_at iso,
        job_id)`` in that order when given."""

    @abstractmethod
    def _by_status(self, statuses: Iterable[Status]) -> list[Job]: ...

    # rules -----------------------------------------------------------------------------------
    def create(self, job: Job, *, max_active: int | None = None) -> Job:
        """Store a new job (version 1). ``max_active``: the per-user cap on SCHEDULED + PROCESSING
        jobs (TooManyJobs beyond it); None: no cap (the CLI, recovery)."""
        job = job.model_copy(update={"version": 1})
        self._insert(job, max_active if job.status in ACTIVE else None)
        return job

    def get(self, job_id: str, user_id: str | None = None) -> Job:
        """The job; NotFound if absent or (when ``user_id`` is given) owned by someone else."""
        job = self._get(job_id)
        if job is None or (user_id is not None and job.user_id != user_id):
            raise NotFound(f"no such job: {job_id}")
        return job

    def update(self, job_id: str, mutate: Callable[[Job], dict[str, Any]] | dict[str, Any],
               *, status: Status | None = None, retries: int = 5, max_active: int | None = None) -> Job:
        """Apply changes (a dict, or a function of the current job returning one) atomically.

        When ``status`` is given the transition is checked against the lifecycle first.
        Retries optimistic-concurrency conflicts; raises InvalidTransition / ConcurrentUpdate, and
        TooManyJobs when the change makes the job active again and its user already has
        ``max_active`` active jobs.
        """
        for _ in range(retries):
            current = self.get(job_id)
            changes = mutate(current) if callable(mutate) else dict(mutate)
            if status is not None:
                check_transition(current.status, status)
                changes["status"] = status
            new = current.model_copy(update={**changes, "updated_at": utcnow(),
                                              "version": current.version + 1})
            delta = (new.status in ACTIVE) - (current.status in ACTIVE)
            if self._replace_if(Job.model_validate(new.model_dump()), current.version, active_delta=delta,
                                max_active=max_active if delta > 0 else None):
                return new
        raise ConcurrentUpdate(f"job {job_id} kept changing under us", job_id=job_id)

    def transition(self, job_id: str, status: Status, **changes: Any) -> Job:
        return self.update(job_id, changes, status=status)

    def list_for_user(self, user_id: str, limit: int = 20, next_token: str | None = None
                      ) -> tuple[list[Job], str | None]:
        """A page of the user's jobs, newest first, and an opaque token for the next page.

        The token is bound to ``user_id``: a token minted for someone else is BadInput.
        """
        if not 1 <= limit <= 100:
            raise BadInput("limit must be between 1 and 100")
        after = self._decode_token(next_token, user_id) if next_token else None
        jobs = self._by_user(user_id, limit + 1, after)
        more = len(jobs) > limit
        jobs = jobs[:limit]
        token = self._encode_token(user_id, jobs[-1]) if more and jobs else None
        return jobs, token

    def unfinished(self) -> list[Job]:
        return self._by_status([Status.SCHEDULED, Status.PROCESSING])

    # paging tokens: opaque to clients, signed, bound to the owner -----------------------------
    # ``BODY.MAC``: BODY is the base64url JSON [owner, created_at, job_id], MAC its HMAC-SHA256 under
    # a key derived from the store's secret. The MAC is checked before BODY is decoded, so a forged
    # or hand-made token (another user's, or deeply nested JSON) is refused unread.
    _token_lock = threading.Lock()

    def _token_key(self) -> bytes:
        key = self.__dict__.get("_page_token_key")
        if key is None:
            with self._token_lock:
                secret = self.token_secret or self._shared_secret() or secrets.token_bytes(32)
                key = self.__dict__.setdefault("_page_token_key",
                                               hmac.new(secret, b"musicvid page token v1", hashlib.sha256).digest())
        return key

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._token_key(), body.encode(), hashlib.sha256).digest())

    def _encode_token(self, user_id: str, last: Job) -> str:
        body = _b64(json.dumps([user_id, last.created_at.isoformat(), last.job_id], separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def _decode_token(self, token: str, user_id: str) -> tuple[str, str]:
        """(created_at iso, job_id) of a token this store signed for ``user_id``; BadInput otherwise."""
        body, _, mac = str(token).rpartition(".")
        if not body or not hmac.compare_digest(self._mac(body).encode(), mac.encode("utf-8", "replace")):
            raise BadInput("invalid page token")
        try:
            owner, created, job_id = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            if not (isinstance(owner, str) and isinstance(created, str) and isinstance(job_id, str)):
                raise ValueError
        except (ValueError, TypeError, RecursionError):
            raise BadInput("invalid page token") from None
        if owner != user_id:
            raise BadInput("invalid page token")
        return created, job_id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# ---------------------------------------------------------------------------------------------
# Pipeline backends and the API's collaborators (protocols; plug-in registries in services.py,
# adapters chosen in bootstrap.py)
# ---------------------------------------------------------------------------------------------
class Launcher(Protocol):
    """Starts the workflow for a job: the embedded runner's pool, or Step Functions."""

    def start(self, job: Job) -> str:
        """Start the workflow for ``job``'s current attempt; returns the execution name
        (``{job_id}-{attempt}``). Starting the same attempt twice runs it once."""


class Planner(Protocol):
    """Turns measured features and a prompt into a Plan (Analyzer step)."""

    name: str

    def plan(self, features: VideoFeatures, prompt: str, seed: int) -> Plan:
        """A validated Plan, deterministic per seed."""


@runtime_checkable
class JobPlanner(Planner, Protocol):
    """A planner that wants the whole job (the video itself and the prompt history), e.g. Bedrock."""

    def plan_for_job(self, job: Job, features: VideoFeatures, objects: ObjectStore) -> Plan:
        """A validated Plan for the job's current attempt."""


class MusicGenerator(Protocol):
    """Renders one plan segment in the call (the procedural composer, local MusicGen)."""

    name: str
    sample_rate: int
    is_async: ClassVar[bool]  # False: ``generate`` renders in the call

    def generate(self, plan: Plan, index: int, seed: int) -> Any:
        """Render segment ``index`` of ``plan``: float32 array (samples, 2) at ``sample_rate``,
        exactly ``plan.clip_samples(index, sample_rate)`` long. Raises GenerationError or
        TransientBackendError."""

    def release(self) -> None:
        """Let go of what is kept for the next ``generate`` (a parsed SoundFont, a plan's cached
        clips), which builds it again. The mix step calls this, so the mixer does not run beside the
        composer's working set (issue 18)."""


class AsyncMusicGenerator(Protocol):
    """Renders segments on a queue the workflow polls (SageMaker async inference): ``submit`` once,
    then ``check`` every ``poll_s`` seconds until ``fetch`` can read the clip."""

    name: str
    sample_rate: int
    is_async: ClassVar[bool]  # True
    poll_s: int

    def submit(self, plan: Plan, seed: int, prefix: str, indexes: list[int], *, tag: str) -> list[dict]:
        """Queue the segments; one JSON-able request record per index (stored by the workflow)."""

    def check(self, record: dict) -> bool:
        """True once the record's output exists; GenerationError for a failed request or a passed
        deadline, TransientBackendError for a throttled or unreachable service."""

    def fetch(self, plan: Plan, record: dict) -> Any:
        """The segment's clip (as :meth:`MusicGenerator.generate` returns it) from a ready output."""


class Summarizer(Protocol):
    """Writes the job's one-paragraph summary (Coordinator's summary action)."""

    name: str

    def summarize(self, job: Job, plan: Plan, metrics: dict) -> str: ...


class Links(Protocol):
    """Browser-facing links to objects: presigned upload forms and time-limited download URLs."""

    def upload(self, key: str, content_type: str, max_bytes: int, expires_s: int) -> dict:
        """``{"url", "fields"}`` of a POST form that accepts one object at ``key`` (at most
        ``max_bytes`` bytes of ``content_type``) for ``expires_s`` seconds."""

    def download(self, key: str, expires_s: int) -> str:
        """A URL that reads ``key`` for ``expires_s`` seconds."""


class TokenVerifier(Protocol):
    """Verifies an ``Authorization`` header's bearer JWT (signature, issuer, audience, expiry) and
    returns its claims; Unauthorized otherwise."""

    def verify(self, authorization: str | None) -> dict[str, Any]: ...


class Leases(Protocol):
    """Which live process runs a job (crash recovery of the embedded runner)."""

    ttl_s: float

    def get(self, job_id: str) -> Any: ...

    def acquire(self, job_id: str, owner: Any = None, adopt_from: Any = None) -> Any:
        """Take the job's lease; ConcurrentUpdate if another live process holds it."""

    def renew(self, lease: Any) -> bool: ...

    def release(self, job_id: str, owner: Any = None) -> None: ...

    def all(self) -> list[Any]: ...


LeaseStore = Leases  # the name the services container uses


from musicvid_core.domain.features import VideoFeatures  # noqa: E402  (type names used in protocols)
from musicvid_core.domain.plan import Plan  # noqa: E402
