"""What ``musicvid serve`` does about hostile clients that API Gateway does on AWS: a per-user
request rate limit, a deadline on a request's line and headers, an idle timeout on its body, and
JSON (not the stdlib's HTML page) for the errors the HTTP layer answers itself (400, 408, 414, 431).

The request handler also never names the server's software or version (werkzeug's default
``Server: Werkzeug/x Python/y`` header tells an attacker which bugs to try).
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from http import HTTPStatus

from musicvid_core.api.core import SECURITY_HEADERS
from musicvid_core.domain.errors import RateLimited

# The errors the HTTP layer answers before the app sees a request, as the API's error codes.
HTTP_ERROR_CODES = {400: "bad_request", 408: "request_timeout", 413: "payload_too_large", 414: "uri_too_long",
                    431: "headers_too_large", 501: "not_implemented", 505: "http_version_not_supported"}


class RateLimiter:
    """Token buckets, one per key (a user id): ``burst`` requests at once, refilled at ``per_s``
    requests per second. ``per_s`` 0 disables the limit. Thread-safe; a bucket that has refilled
    completely is forgotten, so memory grows only with the users active in the last burst/per_s s."""

    def __init__(self, per_s: float, burst: int, clock=time.monotonic) -> None:
        self.per_s, self.burst, self.clock = float(per_s), int(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one token for ``key``; RateLimited (with ``retry_after_s``, whole seconds until a
        token is back) when there is none."""
        if self.per_s <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.per_s)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.per_s)
                raise RateLimited(f"too many requests: at most {self.per_s:g} a second ({self.burst} in a burst); "
                                  f"retry in {wait} s", retry_after_s=wait)
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 1024:  # forget full buckets: they behave as new ones
                full = [k for k, (t, a) in self._buckets.items() if t + (now - a) * self.per_s >= self.burst]
                for k in full:
                    del self._buckets[k]


def json_error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": HTTP_ERROR_CODES.get(status, "bad_request"), "message": message}).encode()


def request_handler(header_timeout_s: float, read_timeout_s: float):
    """werkzeug's request handler, hardened: the request line and headers must arrive within
    ``header_timeout_s`` seconds in all (a client dripping a byte at a time is cut off, 408), any
    read of the body waits at most ``read_timeout_s`` seconds for data (408 from the app), errors
    are JSON, and no version banner."""
    from werkzeug.serving import WSGIRequestHandler

    class HardenedRequestHandler(WSGIRequestHandler):
        timeout = read_timeout_s  # socketserver sets it on the connection: each read waits at most this
        _expired: threading.Event

        def version_string(self) -> str:
            return "musicvid"

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """The stdlib's own error responses (malformed request line, 414, 431, 408), as JSON."""
            if getattr(self, "_expired", None) is not None and self._expired.is_set():
                code, message = 408, "the request line and headers did not arrive in time"
            status = HTTPStatus(code)
            body = json_error_body(code, message or status.phrase)
            self.close_connection = True
            if not str(getattr(self, "request_version", "")).startswith("HTTP/1."):
                self.request_version = "HTTP/1.1"  # a status line and headers even for a garbled request
            try:
                self.send_response(code, status.phrase)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                for name, value in SECURITY_HEADERS.items():
                    self.send_header(name, value)
                self.end_headers()
                if getattr(self, "command", "") != "HEAD":
                    self.wfile.write(body)
            except OSError:  # the client is gone
                pass

        def handle_one_request(self) -> None:
            # BaseHTTPRequestHandler.handle_one_request, with the headers' deadline: when it passes,
            # the connection's read side is shut, so the blocked read returns and we answer 408.
            self._expired = threading.Event()

            def cut() -> None:
                self._expired.set()
                try:
                    self.connection.shutdown(socket.SHUT_RD)
                except OSError:
                    pass

            timer = threading.Timer(header_timeout_s, cut)
            timer.daemon = True
            timer.start()
            self.requestline, self.request_version, self.command = "", "", ""
            try:
                self.raw_requestline = self.rfile.readline(65537)
                if self._expired.is_set() and self.raw_requestline:
                    self.send_error(408)
                    return
                if len(self.raw_requestline) > 65536:
                    self.send_error(414, "the request line is too long")
                    return
                if not self.raw_requestline:
                    self.close_connection = True
                    return
                if not self.parse_request():  # it answered the error itself
                    return
                if self._expired.is_set():
                    self.send_error(408)
                    return
            except TimeoutError:  # silent for read_timeout_s mid-headers
                self.send_error(408, f"nothing arrived for {read_timeout_s:g} s while reading the request headers")
                return
            finally:
                timer.cancel()
            method = getattr(self, "do_" + self.command)  # werkzeug runs every method through the app
            method()
            self.wfile.flush()

    return HardenedRequestHandler
