"""The web app's host side on ``musicvid serve``: its static files (``api/web/``, shipped as package
data), the ``config.json`` the page reads first, the strict Content-Security-Policy its files get,
and the one-click dev sign-in that the server offers only when it is bound to loopback.

On AWS the same files are static objects in front of the Chalice API (docs/web.md): the deploy
writes their ``config.json`` (:func:`cognito_config`) and sets :func:`content_security_policy` as a
response header.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from musicvid_core.api.auth import mint_token
from musicvid_core.domain.errors import BadInput, NotFound, Unauthorized

WEB_DIR = Path(__file__).with_name("web")
APP_PREFIX = "/app/"  # where serve mounts the files; on AWS they sit at the site's root (relative links)
SIGN_IN_PATH = "/_local/sign-in"
SIGN_IN_TTL_S = 8 * 3600  # a working day; the page signs in again on a 401
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.(html|js|css|svg)")  # fullmatch: no path, no traversal
TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
         "css": "text/css; charset=utf-8", "svg": "image/svg+xml"}
# Containers the page can play, by the extension of a stored key (server-made: output{ext}, stems/*.wav,
# uploads/...{ext}); anything else is sent as application/octet-stream.
MEDIA_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
               ".mkv": "video/x-matroska", ".ogv": "video/ogg", ".wav": "audio/wav"}


def content_security_policy(*origins: str) -> str:
    """The page's CSP: its own scripts and styles only (no inline code, no eval), pictures and
    media from itself, blobs (the picked file's preview) and ``origins`` (the API, S3, Cognito:
    what the page fetches from and plays), never framed, no plugins, no ``<base>``."""
    extra = " ".join(sorted({o for o in origins if o}))
    more = f" {extra}" if extra else ""
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
            f"media-src 'self' blob:{more}; connect-src 'self'{more}; form-action 'none'; base-uri 'none'; "
            "object-src 'none'; frame-ancestors 'none'")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` ('' for a relative one)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def static_file(name: str) -> tuple[bytes, str]:
    """(bytes, content type) of one of the app's files; NotFound for any other name."""
    name = name or "index.html"
    m = _NAME.fullmatch(name)
    path = WEB_DIR / name
    if m is None or not path.is_file():
        raise NotFound(f"no such file: {name[:80]}")
    return path.read_bytes(), TYPES[m.group(1)]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name, without port) is this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_config(*, dev_sign_in: bool, max_bytes: int, default_user: str) -> dict[str, Any]:
    """``config.json`` on ``musicvid serve``: the API is the page's own origin; sign-in is the dev
    issuer (offered only on loopback)."""
    return {"api": "", "max_bytes": int(max_bytes),
            "auth": {"kind": "local", "dev_sign_in": bool(dev_sign_in), "default_user": default_user}}


def cognito_config(*, api: str, domain: str, client_id: str, max_bytes: int,
                   scopes: tuple[str, ...] = ("openid", "email")) -> dict[str, Any]:
    """``config.json`` for the static files on AWS (the deploy writes it): the API's base URL and
    the Cognito hosted UI (``domain``: its https URL) the page signs in with (authorization code +
    PKCE, public client: no secret). BadInput for a URL that is not https."""
    for name, url in (("api", api), ("domain", domain)):
        if not url.startswith("https://"):
            raise BadInput(f"{name} must be an https URL, got {url!r}")
    return {"api": api.rstrip("/"), "max_bytes": int(max_bytes),
            "auth": {"kind": "cognito", "domain": domain.rstrip("/"), "client_id": client_id, "scopes": list(scopes)}}


def check_sign_in(*, offered: bool, host_header: str, origin: str | None, own_origin: str,
                  fetch_site: str | None) -> None:
    """Refuse a dev sign-in unless it is ``offered`` (the server is bound to loopback and verifies
    the dev issuer's tokens), the request names a loopback host (no DNS rebinding: a foreign name
    resolving to 127.0.0.1), and it comes from the page itself (no other site's page may mint a
    token). NotFound when not offered (the route does not exist there); Unauthorized otherwise."""
    if not offered:
        raise NotFound(f"no route POST {SIGN_IN_PATH}")
    host = urlsplit(f"//{host_header}").hostname or ""
    if not is_loopback(host):
        raise Unauthorized("dev sign-in answers loopback hosts only")
    if origin is not None and origin != own_origin:
        raise Unauthorized("dev sign-in answers the server's own page only")
    if fetch_site not in (None, "same-origin", "none"):
        raise Unauthorized("dev sign-in answers the server's own page only")


def sign_in(home: Path, body: bytes, *, issuer: str, audience: str) -> dict[str, Any]:
    """``{"token", "expires_in"}``: a dev ID token for the user the body names (``{"user": ID}``).
    BadInput for a malformed body or user id."""
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadInput("request body is not valid JSON") from None
    if not isinstance(data, dict) or set(data) != {"user"} or not isinstance(data["user"], str):
        raise BadInput('send {"user": "YOUR-NAME"}')
    token = mint_token(home, data["user"], ttl_s=SIGN_IN_TTL_S, issuer=issuer, audience=audience)
    return {"token": token, "expires_in": SIGN_IN_TTL_S}


def main(argv: list[str] | None = None) -> None:
    """``python -m musicvid_core.api.webapp config --api URL --domain URL --client-id ID --max-bytes N``
    prints the AWS ``config.json``; ``... csp ORIGIN...`` prints the CSP header value for them."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m musicvid_core.api.webapp")
    sub = parser.add_subparsers(dest="what", required=True)
    cfg = sub.add_parser("config", help="the config.json of the static files on AWS")
    cfg.add_argument("--api", required=True, help="the API's https base URL (the stage URL)")
    cfg.add_argument("--domain", required=True, help="the Cognito hosted UI's https URL")
    cfg.add_argument("--client-id", required=True, help="the user pool app client id (public, PKCE)")
    cfg.add_argument("--max-bytes", type=int, required=True, help="MUSICVID_MAX_INPUT_BYTES of the API")
    pol = sub.add_parser("csp", help="the Content-Security-Policy header for the static files")
    pol.add_argument("origins", nargs="*", help="origins the page talks to: the API, the bucket, Cognito")
    args = parser.parse_args(argv)
    try:
        if args.what == "config":
            print(json.dumps(cognito_config(api=args.api, domain=args.domain, client_id=args.client_id,
                                            max_bytes=args.max_bytes), indent=1))
        else:
            print(content_security_policy(*(origin_of(o) or o for o in args.origins)))
    except BadInput as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
