"""boto3 clients, built for the adapters (which take them; none is made at import time)."""

from __future__ import annotations

from typing import Any

from musicvid_core.domain.errors import ConfigurationError


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
