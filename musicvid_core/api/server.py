"""``musicvid serve``: the API's four routes on the embedded default, over werkzeug's WSGI server.

Same logic as the Chalice app (:class:`~musicvid_core.api.core.Api`), same JSON, same errors. What
S3 does on AWS is done here by two extra routes with signed, expiring URLs: ``POST
/_local/upload`` (the presigned-POST form target) and ``GET /_local/files/KEY`` (downloads). Jobs
run in the background on the bounded pool of :mod:`musicvid_core.workflow.pool`.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

from musicvid_core.adapters.local.links import LocalLinks
from musicvid_core.api import webapp
from musicvid_core.api.auth import LOCAL_AUDIENCE, LOCAL_ISSUER
from musicvid_core.api.build import build_api
from musicvid_core.api.core import MAX_BODY_BYTES, SECURITY_HEADERS, error_headers, error_response
from musicvid_core.api.guard import RateLimiter, request_handler
from musicvid_core.api.webapp import APP_PREFIX
from musicvid_core.bootstrap import build_services
from musicvid_core.domain.errors import BadInput, MusicVidError, NotFound
from musicvid_core.services import Services
from musicvid_core.settings import Settings

log = logging.getLogger(__name__)
_JOB_PATH = re.compile(r"/jobs/([^/]+)")  # fullmatch
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the policy fields around the file


def _werkzeug():
    try:
        from werkzeug import exceptions, wrappers
    except ImportError:
        from musicvid_core.domain.errors import ConfigurationError

        raise ConfigurationError("musicvid serve needs werkzeug: install the [serve] extra") from None
    return wrappers, exceptions


class LocalApp:
    """The WSGI application. ``base_url`` is where clients reach it (used in upload/download links)."""

    def __init__(self, services: Services, base_url: str, launcher: Any | None = None, *,
                 bound_loopback: bool = False) -> None:
        self.services = services
        # The web app's one-click dev sign-in: only on loopback, and only where the dev issuer is the verifier.
        self.dev_sign_in = bound_loopback and not services.settings.auth_jwks_url
        self.web_config: dict | None = None  # config.json for the web app; None: webapp.local_config
        self.web_csp = webapp.content_security_policy(webapp.origin_of(base_url))
        self.settings: Settings = services.settings
        self.api = build_api(services, launcher=launcher, base_url=base_url)  # links signed for base_url
        self.launcher = self.api.launcher
        self.links: LocalLinks = self.api.links
        self.limiter = RateLimiter(self.settings.rate_limit_per_s, self.settings.rate_limit_burst)

    # WSGI --------------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        wrappers, exceptions = _werkzeug()
        request = wrappers.Request(environ)
        # JSON routes read at most 64 KiB; only the upload form may carry a video
        request.max_content_length = (self.settings.max_input_bytes + FORM_OVERHEAD
                                      if request.path == LocalLinks.UPLOAD_PATH else MAX_BODY_BYTES)
        try:
            try:
                response = self.dispatch(request)
            except exceptions.ClientDisconnected as exc:  # werkzeug's name for a body read that failed
                raise (exc.__context__ if isinstance(exc.__context__, TimeoutError) else exc) from None
        except TimeoutError:  # the body stalled for read_timeout_s (guard.request_handler's socket timeout)
            response = self.json(408, {"error": "request_timeout", "message": "nothing arrived for "
                                       f"{self.settings.read_timeout_s:g} s while reading the request body"})
            response.headers["Connection"] = "close"
        except exceptions.HTTPException as exc:
            code = "payload_too_large" if exc.code == 413 else "bad_input"
            response = self.json(exc.code or 400, {"error": code, "message": " ".join(str(exc.description).split())})
        except Exception as exc:  # every error is one JSON body, never a traceback
            response = self.json(*error_response(exc))
            response.headers.update(error_headers(exc))
        self._cors(response)
        response.headers.update(SECURITY_HEADERS)
        for name, value in getattr(response, "web_headers", {}).items():  # the web app's files and sign-in
            response.headers.pop(name, None)
            if value is not None:
                response.headers[name] = value
        return response(environ, start_response)

    def json(self, status: int, body: dict | None):
        wrappers, _ = _werkzeug()
        if body is None:
            return wrappers.Response(status=status)
        return wrappers.Response(json.dumps(body), status=status, mimetype="application/json")

    def _cors(self, response) -> None:
        response.headers["Access-Control-Allow-Origin"] = self.settings.cors_origin
        response.headers["Vary"] = "Origin"

    def dispatch(self, request):
        method, path = request.method, request.path
        if method == "OPTIONS":  # CORS preflight
            resp = self.json(204, None)
            resp.headers["Access-Control-Allow-Methods"] = "GET,POST,OPTIONS"
            resp.headers["Access-Control-Allow-Headers"] = "Authorization,Content-Type"
            resp.headers["Access-Control-Max-Age"] = "600"
            return resp
        if path == LocalLinks.UPLOAD_PATH and method == "POST":
            return self.receive_upload(request)
        if path.startswith(LocalLinks.FILES_PATH) and method == "GET":
            return self.send_file(request, path[len(LocalLinks.FILES_PATH):])
        if method == "GET" and (path in ("/", APP_PREFIX[:-1]) or path.startswith(APP_PREFIX)):
            return self.web_file(path[len(APP_PREFIX):] if path.startswith(APP_PREFIX) else None)
        if path == webapp.SIGN_IN_PATH and method == "POST":
            return self.sign_in(request)
        if path == "/openapi.json" and method == "GET":
            from musicvid_core.api.openapi import openapi

            return self.json(200, openapi())
        route = self._route(method, path)
        if route is None:
            allowed = self._allowed(path)
            if not allowed:
                return self.json(404, {"error": "not_found", "message": f"no route {method} {path}"})
            resp = self.json(405, {"error": "method_not_allowed", "message": f"{path} allows {', '.join(allowed)}"})
            resp.headers["Allow"] = ", ".join(allowed)
            return resp
        user = self.api.authenticate(request.headers.get("Authorization"))
        self.limiter.check(user)  # RateLimited (429) past the user's rate
        status, body = route(user, request)
        return self.json(status, body)

    def _allowed(self, path: str) -> list[str]:
        """The methods ``path`` answers (read off :meth:`_route`); [] when it is no route at all."""
        allowed = [m for m in ("GET", "POST") if self._route(m, path) is not None]
        return [*allowed, "OPTIONS"] if allowed else []

    def _route(self, method: str, path: str):
        if method == "POST" and path == "/uploads":
            return lambda user, req: self.api.create_upload(user, req.get_data(cache=False))
        if method == "POST" and path == "/jobs":
            return lambda user, req: self.api.submit_job(user, req.get_data(cache=False))
        if method == "GET" and path == "/jobs":
            return lambda user, req: self.api.list_jobs(user, req.args.to_dict())
        m = _JOB_PATH.fullmatch(path)
        if method == "GET" and m:
            return lambda user, req: self.api.get_job(user, m.group(1))
        return None

    # the web app (api/webapp.py) ---------------------------------------------------------------
    def web_file(self, name: str | None):
        """The app's static files under /app/ (/ redirects there), and its config.json."""
        if name is None:
            resp = self.json(302, None)
            resp.headers["Location"] = webapp.APP_PREFIX
            return resp
        wrappers, _ = _werkzeug()
        if name == "config.json":
            config = self.web_config or webapp.local_config(
                dev_sign_in=self.dev_sign_in, max_bytes=self.settings.max_input_bytes,
                default_user=self.settings.user)
            resp = self.json(200, config)
        else:
            data, ctype = webapp.static_file(name)
            resp = wrappers.Response(data, status=200, content_type=ctype)
        resp.web_headers = {"Content-Security-Policy": self.web_csp, "Cache-Control": "no-cache",
                            "Access-Control-Allow-Origin": None, "Vary": None}
        return resp

    def sign_in(self, request):
        """POST /_local/sign-in ``{"user"}``: a dev token, for the server's own page on loopback only."""
        webapp.check_sign_in(offered=self.dev_sign_in, host_header=request.host,
                             origin=request.headers.get("Origin"), own_origin=f"{request.scheme}://{request.host}",
                             fetch_site=request.headers.get("Sec-Fetch-Site"))
        auth = self.settings
        body = webapp.sign_in(self.settings.home, request.get_data(cache=False),
                              issuer=auth.auth_issuer or LOCAL_ISSUER, audience=auth.auth_audience or LOCAL_AUDIENCE)
        resp = self.json(200, body)
        resp.web_headers = {"Access-Control-Allow-Origin": None, "Vary": None}  # no other origin reads it
        return resp

    # what S3 does on AWS -----------------------------------------------------------------------
    def receive_upload(self, request):
        fields = request.form.to_dict()
        policy = self.links.check_upload(fields)
        upload = request.files.get("file")
        if upload is None:
            raise BadInput("the form needs a file field named 'file' (after the other fields)")
        if upload.mimetype and upload.mimetype != policy["content_type"] and upload.mimetype != "application/octet-stream":
            raise BadInput("the file's content type does not match the signed policy")
        with tempfile.TemporaryDirectory(prefix="musicvid-up-") as tmp:
            path = Path(tmp) / "upload"
            upload.save(path)
            size = path.stat().st_size
            if size == 0:
                raise BadInput("the uploaded file is empty")
            if size > policy["max_bytes"]:
                return self.json(413, {"error": "payload_too_large",
                                       "message": f"the file is {size} bytes; the limit is {policy['max_bytes']}"})
            self.services.objects.put_file(policy["key"], path, policy["content_type"])
        return self.json(204, None)

    def send_file(self, request, key: str):
        key = self.links.check_download(key, request.args.get("expires"), request.args.get("signature"))
        path = self.services.objects.local_path(key)
        if path is None or not path.is_file():
            raise NotFound("no such file")
        from werkzeug.utils import send_file

        # conditional: Range requests, so a player can seek without fetching the whole file again
        return send_file(path, request.environ, as_attachment=True, download_name=path.name, conditional=True,
                         mimetype=webapp.MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"))


def make_server(settings: Settings | None = None, host: str = "127.0.0.1", port: int = 8000,
                public_url: str | None = None):
    """A ready (not yet serving) threaded WSGI server and its app; port 0 picks a free port."""
    from werkzeug.serving import make_server as _make

    services = build_services(settings or Settings())
    holder: dict = {}

    def app(environ, start_response):
        return holder["app"](environ, start_response)

    import socket

    try:  # bound here, so a busy port is our one-line error (werkzeug would print and exit)
        sock = socket.create_server((host, port))
    except OSError as exc:
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        settings = services.settings
        server = _make(host, sock.getsockname()[1], app, threaded=True, fd=sock.fileno(),
                       request_handler=request_handler(settings.header_timeout_s, settings.read_timeout_s))
    finally:
        sock.close()  # the server holds its own duplicate of the socket
    base = public_url or f"http://{host}:{server.port}"
    holder["app"] = LocalApp(services, base, bound_loopback=webapp.is_loopback(host))
    # Jobs a killed server (or CLI) left unfinished: this server's pool runs them again.
    from musicvid_core.workflow.recovery import reconcile

    for job in reconcile(services, resume=holder["app"].launcher.start):
        log.warning("job %s: %s", job.job_id, "resumed" if job.status.value != "FAILED" else job.error.message)
    return server, holder["app"]


__all__ = ["LocalApp", "MusicVidError", "make_server"]
