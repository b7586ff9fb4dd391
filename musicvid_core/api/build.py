"""The one way to build the API: Chalice (chalice_app/chalicelib/wiring.py) and ``musicvid serve``
(api/server.py) both call :func:`build_api`.

It lives here, not in :mod:`musicvid_core.bootstrap`, because bootstrap sits below the entry points
and must not import them (no import circle): bootstrap chooses the adapters (launcher, links), this
module adds the API's own token verifier and wraps them in :class:`~musicvid_core.api.core.Api`.
"""

from __future__ import annotations

from musicvid_core.api.auth import verifier_for
from musicvid_core.api.core import Api
from musicvid_core.bootstrap import build_launcher, build_links
from musicvid_core.ports import Launcher, Links
from musicvid_core.services import Services


def build_api(services: Services, links: Links | None = None, *, launcher: Launcher | None = None,
              base_url: str | None = None) -> Api:
    """The API over ``services``: the launcher the settings name (or ``launcher``), links (``links``,
    else :func:`~musicvid_core.bootstrap.build_links` for ``base_url``) and the token verifier the
    settings describe (a Cognito pool or the local dev issuer). ConfigurationError when the settings
    name an adapter this machine cannot build."""
    return Api(services, launcher if launcher is not None else build_launcher(services),
               links if links is not None else build_links(services, base_url), verifier_for(services.settings))
