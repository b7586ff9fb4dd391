"""Links port on one machine: HMAC-signed, expiring upload forms and download URLs.

The local twin of S3's presigned POST/GET (``adapters/aws/links.py``). The form has the same shape
as S3's presigned POST (``{"url", "fields"}``, the file sent as multipart/form-data with the
fields): a client written against one works against the other. The policy (key, content type, size
limit, expiry) is signed with HMAC-SHA256 under a secret kept in ``home/auth/`` and checked by
``musicvid serve`` (:meth:`LocalLinks.check_upload`, :meth:`LocalLinks.check_download`) before
anything is stored or sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlencode

from musicvid_core.domain.errors import BadInput, Unauthorized
from musicvid_core.ports import validate_key


def write_secret_once(path: Path, make: Callable[[], bytes]) -> bytes:
    """The contents of the secret file ``path``, created with ``make()`` on first use (mode 0600,
    written aside and hard-linked into place, so when two processes race the first writer wins and
    both read the same secret)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(make())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_bytes()


def local_secret(home: Path) -> bytes:
    """The local server's HMAC secret, created on first use under ``home/auth/`` (mode 0600)."""
    return write_secret_once(Path(home) / "auth" / "url_signing_secret",
                             lambda: secrets.token_hex(32).encode()).strip()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LocalLinks:
    """:class:`~musicvid_core.ports.Links` as signed, expiring URLs served by ``musicvid serve`` at
    ``base_url``; the server checks what comes back with :meth:`check_upload` / :meth:`check_download`."""

    UPLOAD_PATH = "/_local/upload"
    FILES_PATH = "/_local/files/"

    def __init__(self, secret: bytes, base_url: str) -> None:
        self.secret = secret
        self.base_url = base_url.rstrip("/")

    def _sign(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def upload(self, key: str, content_type: str, max_bytes: int, expires_s: int) -> dict:
        policy = _b64(json.dumps({"key": validate_key(key), "content_type": content_type,
                                  "max_bytes": int(max_bytes), "expires": int(time.time()) + int(expires_s)},
                                 separators=(",", ":")).encode())
        return {"url": self.base_url + self.UPLOAD_PATH,
                "fields": {"key": key, "Content-Type": content_type, "x-amz-server-side-encryption": "AES256",
                           "policy": policy, "x-musicvid-signature": self._sign(policy)}}

    def check_upload(self, fields: dict) -> dict:
        """The signed policy of an upload form, after checking signature, expiry and fields."""
        policy = str(fields.get("policy") or "")
        sig = str(fields.get("x-musicvid-signature") or "")
        if not policy or not hmac.compare_digest(self._sign(policy), sig):
            raise Unauthorized("upload form signature does not match")
        try:
            doc = json.loads(_unb64(policy))
            key, ctype, limit, expires = doc["key"], doc["content_type"], int(doc["max_bytes"]), int(doc["expires"])
        except (ValueError, KeyError, TypeError):
            raise BadInput("malformed upload policy") from None
        if time.time() > expires:
            raise Unauthorized("upload form expired")
        if fields.get("key") != key or fields.get("Content-Type") != ctype:
            raise BadInput("upload fields do not match the signed policy")
        if fields.get("x-amz-server-side-encryption") != "AES256":
            raise BadInput("upload must ask for x-amz-server-side-encryption: AES256")
        return {"key": validate_key(key), "content_type": ctype, "max_bytes": limit}

    def download(self, key: str, expires_s: int) -> str:
        expires = int(time.time()) + int(expires_s)
        query = urlencode({"expires": expires, "signature": self._sign(f"{validate_key(key)}\n{expires}")})
        return f"{self.base_url}{self.FILES_PATH}{quote(key)}?{query}"

    def check_download(self, key: str, expires: str | None, signature: str | None) -> str:
        try:
            exp = int(expires or "")
        except ValueError:
            raise Unauthorized("download link is not signed") from None
        if not signature or not hmac.compare_digest(self._sign(f"{key}\n{exp}"), signature):
            raise Unauthorized("download link signature does not match")
        if time.time() > exp:
            raise Unauthorized("download link expired")
        return validate_key(key)
