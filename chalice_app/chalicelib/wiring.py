"""Build the API from Settings (env ``MUSICVID_*``) once per Lambda container, lazily.

Nothing AWS is created at import time: ``chalice package`` and ``chalice.test.Client`` import the
app without credentials. The API handler never imports numpy, OpenCV or the synthesizer.
"""

from __future__ import annotations

import functools

from musicvid_core import bootstrap
from musicvid_core.api.auth import verifier_for
from musicvid_core.api.core import Api
from musicvid_core.api.links import S3Links


@functools.lru_cache(maxsize=1)
def api() -> Api:
    services = bootstrap.process_services()
    return Api(services, bootstrap.build_launcher(services), S3Links(services.objects), verifier_for(services.settings))


def reset() -> None:
    """Forget the built API and services (tests change the environment between cases)."""
    api.cache_clear()
    bootstrap.reset()
