"""The composition root: the one place that turns Settings into adapters and services.

The CLI, ``musicvid serve``, the notebooks, the Chalice app and the Lambda handlers all call
:func:`build_services` (and :func:`build_launcher` where they start jobs, :func:`build_links` for the
API, which ``musicvid_core.api.build.build_api`` assembles); nothing below this module chooses an
adapter. Step handlers receive the services they run with; there is no global fallback.
"""

from __future__ import annotations

import functools

from musicvid_core import heap
from musicvid_core.adapters.aws.client import aws_client, s3_client
from musicvid_core.domain.errors import ConfigurationError
from musicvid_core.ports import Launcher, Links
from musicvid_core.services import Services
from musicvid_core.settings import Settings


def build_services(settings: Settings | None = None) -> Services:
    settings = settings or Settings()
    heap.set_mmap_threshold(settings.mmap_threshold_kb)
    if settings.object_store == "local":
        from musicvid_core.adapters.local import FolderObjectStore

        objects = FolderObjectStore(settings.store_root)
    else:
        from musicvid_core.adapters.aws.s3 import S3ObjectStore

        if not settings.bucket:
            raise ConfigurationError("the s3 object store needs MUSICVID_BUCKET")
        objects = S3ObjectStore(s3_client(settings), settings.bucket)  # SigV4, regional host: it signs links
    if settings.job_store == "sqlite":
        from musicvid_core.adapters.local import SQLiteJobStore

        jobs = SQLiteJobStore(settings.db_path)
    else:
        from musicvid_core.adapters.aws.dynamodb import DynamoDBJobStore

        jobs = DynamoDBJobStore(aws_client(settings, "dynamodb"), settings.table)
    if settings.page_token_secret.get_secret_value():  # else the store's own shared secret
        jobs.token_secret = settings.page_token_secret.get_secret_value().encode()
    leases = None
    if settings.job_store == "sqlite" and str(jobs.path) != ":memory:":
        from musicvid_core.adapters.local.leases import LeaseStore

        leases = LeaseStore(jobs.path, settings.lease_ttl_s)
    return Services(settings=settings, objects=objects, jobs=jobs, leases=leases)


def build_launcher(services: Services) -> Launcher:
    """The Launcher port the settings name: Step Functions StartExecution, or the local runner on a
    bounded background pool of ``Settings.workers`` (musicvid serve)."""
    settings = services.settings
    if settings.launcher == "stepfunctions":
        from musicvid_core.adapters.aws.stepfunctions import StepFunctionsLauncher

        return StepFunctionsLauncher(aws_client(settings, "stepfunctions"), settings.state_machine_arn)
    from musicvid_core.workflow.pool import PooledLauncher

    return PooledLauncher(services, settings.workers, settings.worker_isolation, build=build_services)


def build_links(services: Services, base_url: str | None = None) -> Links:
    """The Links port: with ``base_url`` (where ``musicvid serve``, which answers ``/_local/upload``
    and ``/_local/files/``, is reached) HMAC-signed local links for that server; without it S3
    presigned links, which need the s3 object store. ConfigurationError otherwise."""
    if base_url:
        from musicvid_core.adapters.local.links import LocalLinks, local_secret

        return LocalLinks(local_secret(services.settings.home), base_url)
    from musicvid_core.adapters.aws.s3 import S3ObjectStore

    if not isinstance(services.objects, S3ObjectStore):
        raise ConfigurationError("upload/download links need the s3 object store (MUSICVID_OBJECT_STORE=s3) "
                                 "or the local server (musicvid serve)")
    from musicvid_core.adapters.aws.links import S3Links

    return S3Links(services.objects)


def configure_logging(settings: Settings, default_level: str = "INFO") -> None:
    """The one logging setup (musicvid_core/logs.py): JSON through Powertools on Lambda, else stdlib
    lines in ``settings.log_format``; at ``settings.log_level`` when set, else ``default_level``
    (the CLI passes ERROR: its own one-line messages are what a user reads)."""
    from musicvid_core.logs import setup_logging

    setup_logging(settings.log_level or default_level, settings.log_format, on_lambda=bool(settings.lambda_function))


@functools.lru_cache(maxsize=1)
def process_services() -> Services:
    """Services from the environment, built once per process: what a Lambda container (the Chalice
    app, the media image's handlers) runs with. Entry points only; step handlers are handed theirs."""
    settings = Settings()
    configure_logging(settings)
    return build_services(settings)


def reset() -> None:
    """Forget the process's services (tests change the environment between cases)."""
    process_services.cache_clear()
