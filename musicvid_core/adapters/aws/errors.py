"""botocore errors mapped onto the one error tree.

Step Functions' Retry matches on the error *name*, so what an AWS call raised decides whether the
workflow retries it: throttling, timeouts and 5xx become :class:`TransientBackendError` (retried
with backoff); validation, access and missing-resource errors become permanent types that the
Catch sends to the FailureHandler. botocore is never imported here: errors are recognised by
shape (``exc.response["Error"]["Code"]`` and the HTTP status) and by the SDK module their class
comes from, so this module stays importable in the API Lambda's small package and in tests without
boto3.

Every AWS adapter (S3, DynamoDB, Step Functions, S3 links, SageMaker, Bedrock) makes its client
calls inside :func:`aws_call`, the one mapping: no adapter keeps its own "is this an AWS answer?"
guard, so none can drift (a summarizer that forgot ``ConnectionClosedError`` once failed jobs whose
mix had succeeded).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
# Connection-level failures botocore raises without a response, matched anywhere in the class's
# MRO so subclasses count too: botocore's ConnectionError is the base of EndpointConnectionError,
# ConnectTimeoutError and ProxyConnectionError, HTTPClientError that of ConnectionClosedError,
# ReadTimeoutError and ResponseStreamingError; RetriesExceededError is s3transfer's (boto3's) "gave
# up after its own retries". All retried.
TRANSIENT_EXCEPTION_NAMES = frozenset({
    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
    "ConnectionError", "ProxyConnectionError", "HTTPClientError", "ResponseStreamingError",
    "RetriesExceededError",
})
# Where the SDK's own exception classes live (boto3's S3UploadFailedError, s3transfer's errors).
AWS_MODULES = frozenset({"botocore", "boto3", "s3transfer"})


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or "")


def http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None) or {}
    try:
        return int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    except (TypeError, ValueError):
        return 0


def _canonical(code: str) -> str:
    # Event-stream errors (Converse streams, InvokeAgent's completion) spell their codes with a
    # lower-case first letter: "throttlingException".
    return code[:1].upper() + code[1:]


def is_aws_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an answer from AWS or its SDK (a class from botocore, boto3 or s3transfer,
    a connection failure, or any error shaped like botocore's ``ClientError``) rather than a bug in
    our own code, which must keep its traceback."""
    if isinstance(getattr(exc, "response", None), dict):
        return True
    return any(cls.__module__.partition(".")[0] in AWS_MODULES or cls.__name__ in TRANSIENT_EXCEPTION_NAMES
               for cls in type(exc).__mro__)


def is_missing(exc: BaseException) -> bool:
    """Whether an AWS error says "no such object" (HeadObject answers a bare 404)."""
    return http_status(exc) == 404 or error_code(exc) in ("404", "NoSuchKey", "NotFound")


def is_transient(exc: BaseException) -> bool:
    if any(cls.__name__ in TRANSIENT_EXCEPTION_NAMES for cls in type(exc).__mro__):
        return True
    code, status = _canonical(error_code(exc)), http_status(exc)
    return code in THROTTLING_CODES or status == 429 or status >= 500


def from_aws(exc: BaseException, what: str) -> MusicVidError:
    """The error-tree exception for a failed AWS call; ``what`` names the call for the message
    (e.g. ``"S3 GetObject uploads/u/x.mp4"``). Raise it ``from exc``."""
    if isinstance(exc, MusicVidError):
        return exc
    inner = exc.__cause__ or exc.__context__
    if (getattr(exc, "response", None) is None and not is_transient(exc) and inner is not None
            and is_aws_error(inner)):
        # boto3's transfer manager re-raises a ClientError as S3UploadFailedError, dropping the
        # response: classify by the error it wraps
        return from_aws(inner, what)
    code = _canonical(error_code(exc)) or type(exc).__name__
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


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Map what the AWS calls in the block raise onto the error tree, raised ``from`` the original.

    Connection failures, throttling and 5xx become TransientBackendError (the ASL retries it);
    missing resources NotFound, access errors ConfigurationError, validation errors BadInput (see
    :func:`from_aws`). A MusicVidError passes as it is, and so does anything that is not an AWS
    answer (:func:`is_aws_error`: a bug keeps its traceback). ``what`` names the call for the
    message, e.g. ``"S3 GetObject uploads/u/x.mp4"``. Usable as a decorator too.
    """
    try:
        yield
    except MusicVidError:
        raise
    except Exception as exc:
        if not is_aws_error(exc):
            raise
        raise from_aws(exc, what) from exc
