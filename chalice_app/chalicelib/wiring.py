"""Build the API from Settings (env ``MUSICVID_*``) once per Lambda container, lazily.

Nothing AWS is created at import time: ``chalice package`` and ``chalice.test.Client`` import the
app without credentials. The API handler never imports numpy, OpenCV or the synthesizer.
"""

from __future__ import annotations

import functools

from musicvid_core import bootstrap
from musicvid_core.api.build import build_api
from musicvid_core.api.core import Api


@functools.lru_cache(maxsize=1)
def api() -> Api:
    return build_api(bootstrap.process_services())  # S3 presigned links, the launcher the settings name


def reset() -> None:
    """Forget the built API and services (tests change the environment between cases)."""
    api.cache_clear()
    bootstrap.reset()
