"""boto3 clients, built for the adapters (which take them; none is made at import time).

Two kinds need more than boto3's defaults (issue 20):

- :func:`s3_client` signs with SigV4 on the bucket's regional virtual host
  (``BUCKET.s3.REGION.amazonaws.com``). With no config, botocore signs presigned POST forms and GET
  URLs with SigV2 on the global host: buckets created since mid-2020 refuse SigV2, and the global
  host answers a new bucket outside us-east-1 with a 307 that a browser's CORS check cannot follow.
- :func:`model_client` (Bedrock, SageMaker) gets an explicit read timeout and botocore's
  ``standard`` retry mode, with values the deploy template sets per function so that every attempt
  fits inside that Lambda's timeout (boto3's 60 s default read timeout is shorter than a model
  watching a long video, and its ``legacy`` mode retries fewer error kinds).
"""

from __future__ import annotations

from typing import Any

from musicvid_core.domain.errors import ConfigurationError

CONNECT_TIMEOUT_S = 10.0  # a model endpoint that cannot be reached in 10 s is down: retry, don't wait


def aws_client(settings: Any, service: str, **config: Any) -> Any:
    """A boto3 client for ``service`` in ``settings.region`` (and ``settings.aws_endpoint_url`` when
    set). ``config`` becomes a ``botocore.config.Config``. ConfigurationError without the [aws] extra."""
    try:
        import boto3
    except ImportError:
        raise ConfigurationError(f"the {service} adapter needs boto3: install the [aws] extra") from None
    kwargs: dict[str, Any] = {"endpoint_url": settings.aws_endpoint_url} if settings.aws_endpoint_url else {}
    if config:
        from botocore.config import Config

        kwargs["config"] = Config(**config)
    return boto3.client(service, region_name=settings.region, **kwargs)


def s3_config(settings: Any) -> dict:
    """The S3 client's config: SigV4, the regional endpoint even in us-east-1, virtual-host
    addressing (path style against an ``aws_endpoint_url`` such as a moto server or LocalStack,
    where ``BUCKET.localhost`` would not resolve)."""
    style = "path" if settings.aws_endpoint_url else "virtual"
    return {"signature_version": "s3v4",
            "s3": {"addressing_style": style, "us_east_1_regional_endpoint": "regional"}}


def s3_client(settings: Any) -> Any:
    """The S3 client every adapter and every presigned link uses (see :func:`s3_config`)."""
    return aws_client(settings, "s3", **s3_config(settings))


def model_config(settings: Any) -> dict:
    """Timeouts (seconds) and retries of a model client: ``settings.model_read_timeout_s`` per
    attempt, ``settings.model_max_attempts`` attempts in botocore's standard mode (throttling,
    5xx, dropped connections and read timeouts retried with jittered backoff)."""
    return {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": float(settings.model_read_timeout_s),
            "retries": {"mode": "standard", "total_max_attempts": int(settings.model_max_attempts)}}


def model_client(settings: Any, service: str) -> Any:
    """A Bedrock / SageMaker runtime client with :func:`model_config`."""
    return aws_client(settings, service, **model_config(settings))
