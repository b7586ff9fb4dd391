"""The one error tree.

Every failure musicvid raises on purpose is a :class:`MusicVidError`. Class *names* are part of the
contract: Step Functions ``Retry``/``Catch`` (and the embedded runner that executes the same ASL) match
on the Lambda error type, which is the exception class name. Only :class:`TransientError` and its
subclasses are retried; everything else goes straight to the FailureHandler.
"""

from __future__ import annotations

from typing import Any


class MusicVidError(Exception):
    """Root of every deliberate musicvid failure.

    ``context`` carries structured details (paths, ids, measured values) for logs and API bodies.
    """

    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split())


# --- caller's fault (4xx) -----------------------------------------------------------------------
class BadInput(MusicVidError):
    """The request or arguments are invalid (missing file, malformed prompt, bad id, bad key)."""

    code = "bad_input"
    http_status = 400


class NotFound(MusicVidError):
    """A job or object does not exist (or belongs to someone else: same answer, no leak)."""

    code = "not_found"
    http_status = 404


class Unauthorized(MusicVidError):
    """No verified identity."""

    code = "unauthorized"
    http_status = 401


class UnsupportedMedia(BadInput):
    """The input is not a usable video: zero bytes, truncated, not media, audio-only, no frames."""

    code = "unsupported_media"
    http_status = 415


class TooManyJobs(MusicVidError):
    """The user already has Settings.max_active_jobs jobs SCHEDULED or PROCESSING; ``context``
    has ``retry_after_s`` (seconds, the Retry-After header)."""

    code = "too_many_jobs"
    http_status = 429


class RateLimited(MusicVidError):
    """The user sent more requests than the local server's per-user rate allows; ``context`` has
    ``retry_after_s`` (seconds, the Retry-After header)."""

    code = "rate_limited"
    http_status = 429


class InvalidTransition(MusicVidError):
    """A job status change that the lifecycle does not allow (e.g. COMPLETED -> PROCESSING)."""

    code = "invalid_transition"
    http_status = 409


class ConcurrentUpdate(InvalidTransition):
    """A conditional write lost a race: the job changed since it was read."""

    code = "concurrent_update"


# --- pipeline failures (retried or caught by the workflow) --------------------------------------
class TransientError(MusicVidError):
    """A failure worth retrying with backoff (throttling, timeouts, 5xx from a backend)."""

    code = "transient"
    http_status = 503


class TransientBackendError(TransientError):
    """A model or cloud backend answered with a retryable error."""

    code = "transient_backend"


class AnalysisError(MusicVidError):
    """Video analysis could not produce features or a plan."""

    code = "analysis_failed"


class PlanValidationError(AnalysisError):
    """A plan violates its invariants (segments must tile [0, duration], fields in range)."""

    code = "invalid_plan"


class GenerationError(MusicVidError):
    """Music generation failed permanently for a segment."""

    code = "generation_failed"


class MixError(MusicVidError):
    """Mixing or muxing the result failed."""

    code = "mix_failed"


class MediaToolError(MusicVidError):
    """An external media tool (ffmpeg) failed or timed out; ``context`` has its stderr tail."""

    code = "media_tool_failed"


class ConfigurationError(MusicVidError):
    """Settings name a backend or file that is not available on this machine."""

    code = "configuration_error"


class ExperimentError(MusicVidError):
    """A notebook run by papermill (``musicvid experiment``) failed in a cell or wrote no results
    table; ``context`` has the executed notebook's path."""

    code = "experiment_failed"


# Names the workflow retries: keep in sync with musicvid_core/workflow/workflow.asl.json (a test checks).
RETRYABLE_ERROR_NAMES = ("TransientError", "TransientBackendError")
