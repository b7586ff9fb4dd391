"""botocore errors mapped onto the one error tree.

Step Functions' Retry matches on the error *name*, so what an AWS call raised decides whether the
workflow retries it: throttling, timeouts and 5xx become :class:`TransientBackendError` (retried
with backoff); validation, access and missing-resource errors become permanent types that the
Catch sends to the FailureHandler. botocore is never imported here: errors are recognised by
shape (``exc.response["Error"]["Code"]`` and the HTTP status), so this module stays importable in
the API Lambda's small package and in tests without boto3.
"""

from __future__ import annotations

from musicvid_core.domain.errors import (
    BadInput,
    ConfigurationError,
    MusicVidError,
    NotFound,
    TransientBackendError,
)

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "RequestThrottled",
    "RequestThrottledException", "SlowDown", "ServiceQuotaExceededException", "LimitExceededException",
    "TransactionInProgressException", "ModelNotReadyException", "ServiceUnavailable",
    "ServiceUnavailableException", "InternalServerError", "InternalServerException", "InternalFailure",
    "InternalError", "ModelTimeoutException", "RequestTimeout", "RequestTimeoutException",
})
NOT_FOUND_CODES = frozenset({
    "NoSuchKey", "NoSuchBucket", "NotFound", "404", "ResourceNotFoundException", "ExecutionDoesNotExist",
    "StateMachineDoesNotExist", "ModelNotFoundException",
})
ACCESS_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "ExpiredToken", "ExpiredTokenException", "UnauthorizedOperation", "InvalidClientTokenId",
})
# Connection-level failures botocore raises without a response (EndpointConnectionError,
# ReadTimeoutError, ConnectTimeoutError, ...): retried.
TRANSIENT_EXCEPTION_NAMES = frozenset({
    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
    "ConnectionError", "ProxyConnectionError",
})


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or "")


def http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None) or {}
    try:
        return int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    except (TypeError, ValueError):
        return 0


def is_transient(exc: BaseException) -> bool:
    if type(exc).__name__ in TRANSIENT_EXCEPTION_NAMES:
        return True
    code, status = error_code(exc), http_status(exc)
    return code in THROTTLING_CODES or status == 429 or status >= 500


def from_aws(exc: BaseException, what: str) -> MusicVidError:
    """The error-tree exception for a failed AWS call; ``what`` names the call for the message
    (e.g. ``"S3 GetObject uploads/u/x.mp4"``). Raise it ``from exc``."""
    if isinstance(exc, MusicVidError):
        return exc
    code = error_code(exc) or type(exc).__name__
    message = getattr(exc, "response", {}) and ((exc.response.get("Error") or {}).get("Message") or "")
    detail = f"{what}: {code}" + (f" ({' '.join(str(message).split())[:200]})" if message else "")
    if is_transient(exc):
        return TransientBackendError(detail, aws_code=code, status=http_status(exc))
    if code in NOT_FOUND_CODES or http_status(exc) == 404:
        return NotFound(detail, aws_code=code)
    if code in ACCESS_CODES or http_status(exc) == 403:
        return ConfigurationError(detail, aws_code=code)
    if code.startswith("Validation") or code.startswith("InvalidParameter") or http_status(exc) == 400:
        return BadInput(detail, aws_code=code)
    return ConfigurationError(detail, aws_code=code)
