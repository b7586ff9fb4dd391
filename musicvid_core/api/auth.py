"""JWT verification (PyJWT) for the API, and the local dev issuer behind ``musicvid token``.

On AWS, API Gateway's Cognito authorizer checks tokens first; the app verifies them again itself,
because ``chalice local`` and ``chalice.test.Client`` check nothing: a missing, unsigned, forged,
expired or foreign token is 401 whichever way the request arrived.

Checks: the header's ``alg`` must be RS256 (the allow-list: no ``none``, no HMAC confusion), the
key is found by ``kid`` in the issuer's JWKS, and the signature, ``iss``, ``exp`` and ``nbf`` are
verified; ``token_use`` must be ``id`` (then ``aud`` is our app client) or ``access`` (then
``client_id`` is our app client). The caller's id is ``sub``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from musicvid_core.domain.errors import ConfigurationError, TransientBackendError, Unauthorized

ALGORITHMS = ["RS256"]
LOCAL_ISSUER = "musicvid-local"
LOCAL_AUDIENCE = "musicvid-local"
_SAFE_SUB = re.compile(r"[A-Za-z0-9._@+=-]{1,128}")  # always fullmatch: "$" would let "alice\n" in


def _jwt():
    try:
        import jwt
    except ImportError:
        raise ConfigurationError("JWT verification needs PyJWT[crypto] (the [api] extra)") from None
    return jwt


class TokenVerifier:
    """Verifies bearer tokens against a JWKS (a dict, or fetched from ``jwks_url`` and cached)."""

    def __init__(self, *, issuer: str, audience: str, jwks: dict | None = None, jwks_url: str | None = None,
                 leeway_s: float = 0) -> None:
        if not issuer or not audience:
            raise ConfigurationError("token verification needs an issuer and an audience (app client id)")
        if jwks is None and not jwks_url:
            raise ConfigurationError("token verification needs a JWKS or its URL")
        if jwks_url and not jwks_url.startswith(("https://", "http://")):
            raise ConfigurationError("the JWKS URL must be http(s)")
        self.issuer, self.audience, self.leeway = issuer, audience, leeway_s
        self._jwks, self._jwks_url = jwks, jwks_url
        self._client = None
        self._lock = threading.Lock()

    def _key(self, kid: str | None):
        jwt = _jwt()
        if self._jwks is not None:
            for jwk in self._jwks.get("keys", []):
                if jwk.get("kid") == kid:
                    return jwt.PyJWK(jwk).key
            raise Unauthorized("token signed by an unknown key")
        with self._lock:
            if self._client is None:
                self._client = jwt.PyJWKClient(self._jwks_url, cache_keys=True, lifespan=3600, timeout=5)
        try:
            return self._client.get_signing_key(kid).key
        except jwt.PyJWKClientConnectionError as exc:  # the issuer's JWKS is unreachable: retry later
            raise TransientBackendError(f"cannot fetch the issuer's keys: {exc}") from None
        except jwt.PyJWKClientError:
            raise Unauthorized("token signed by an unknown key") from None

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims of an ``Authorization: Bearer TOKEN`` header; Unauthorized otherwise."""
        jwt = _jwt()
        if not authorization or not isinstance(authorization, str):
            raise Unauthorized("missing bearer token")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("expected 'Authorization: Bearer TOKEN'")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed token") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized("token algorithm not allowed")
        key = self._key(header.get("kid"))
        try:
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, issuer=self.issuer, leeway=self.leeway,
                                options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("token not yet valid") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token from another issuer") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token ({type(exc).__name__})") from None
        use = claims.get("token_use")
        if use == "id":
            aud = claims.get("aud")
            if aud != self.audience and not (isinstance(aud, list) and self.audience in aud):
                raise Unauthorized("token for another audience")
        elif use == "access":
            if claims.get("client_id") != self.audience:
                raise Unauthorized("token for another client")
        else:
            raise Unauthorized("token_use must be id or access")
        if not isinstance(claims.get("sub"), str) or not _SAFE_SUB.fullmatch(claims["sub"]):
            raise Unauthorized("token subject is not a valid user id")
        return claims


# --- the local dev issuer (musicvid serve / musicvid token) ------------------------------------
def _key_path(home: Path) -> Path:
    return Path(home) / "auth" / "dev_signing_key.pem"


def local_private_key(home: Path):
    """The dev issuer's RSA key, created on first use under ``home/auth/`` (mode 0600)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from musicvid_core.adapters.local.links import write_secret_once

    def make() -> bytes:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    return serialization.load_pem_private_key(write_secret_once(_key_path(home), make), password=None)


def local_jwks(home: Path) -> dict:
    """The public JWKS of the dev issuer (kid = RFC 7638 thumbprint)."""
    _jwt()  # ConfigurationError naming the extra when PyJWT is missing
    from jwt.algorithms import RSAAlgorithm

    public = local_private_key(home).public_key()
    jwk = json.loads(RSAAlgorithm.to_jwk(public))
    jwk.update({"use": "sig", "alg": "RS256", "kid": _thumbprint(jwk)})
    return {"keys": [jwk]}


def _thumbprint(jwk: dict) -> str:
    import base64
    import hashlib

    canon = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).decode().rstrip("=")


def mint_token(home: Path, user: str, *, ttl_s: int = 3600, issuer: str = LOCAL_ISSUER,
               audience: str = LOCAL_AUDIENCE, **extra: Any) -> str:
    """A dev ID token for ``user`` signed by the local key (what ``musicvid token`` prints)."""
    jwt = _jwt()
    if not isinstance(user, str) or not _SAFE_SUB.fullmatch(user):
        from musicvid_core.domain.errors import BadInput

        raise BadInput("user must be 1..128 characters of [A-Za-z0-9._@+=-]")
    now = int(time.time())
    kid = local_jwks(home)["keys"][0]["kid"]
    claims = {"sub": user, "cognito:username": user, "iss": issuer, "aud": audience, "token_use": "id",
              "iat": now, "nbf": now, "exp": now + int(ttl_s), **extra}
    return jwt.encode(claims, local_private_key(home), algorithm="RS256", headers={"kid": kid})


def verifier_for(settings) -> TokenVerifier:
    """The verifier the settings describe: a Cognito pool (``auth_jwks_url``) or the local dev issuer."""
    if settings.auth_jwks_url:
        return TokenVerifier(issuer=settings.auth_issuer, audience=settings.auth_audience,
                             jwks_url=settings.auth_jwks_url)
    return TokenVerifier(issuer=settings.auth_issuer or LOCAL_ISSUER,
                         audience=settings.auth_audience or LOCAL_AUDIENCE, jwks=local_jwks(settings.home))
