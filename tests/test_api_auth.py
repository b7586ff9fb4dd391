"""JWT verification as on AWS (a JWKS fetched from the issuer's URL) and the dev issuer's keys."""

from __future__ import annotations

import json
import time

import pytest

from musicvid_core.api.auth import TokenVerifier, local_jwks, mint_token
from musicvid_core.domain.errors import ConfigurationError, TransientBackendError, Unauthorized

ISS = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TEST"


@pytest.fixture
def pool(tmp_path):
    """A stand-in Cognito pool: its JWKS served over HTTP on loopback, fetched by PyJWKClient."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    (tmp_path / "jwks.json").write_text(json.dumps(local_jwks(tmp_path / "issuer")))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    verifier = TokenVerifier(issuer=ISS, audience="client-123", jwks_url=url)
    yield verifier, lambda **kw: "Bearer " + mint_token(tmp_path / "issuer", "3f1c9a2e-user", issuer=ISS,
                                                       **{"audience": "client-123", **kw})
    server.shutdown()
    server.server_close()


def test_id_and_access_tokens_from_the_pool(pool):
    verifier, token = pool
    assert verifier.verify(token())["sub"] == "3f1c9a2e-user"
    access = token(token_use="access", client_id="client-123", audience="ignored-for-access")
    assert verifier.verify(access)["token_use"] == "access"
    with pytest.raises(Unauthorized):
        verifier.verify(token(token_use="access", client_id="another-client"))
    with pytest.raises(Unauthorized):
        verifier.verify(token(audience="another-client"))
    with pytest.raises(Unauthorized):
        verifier.verify(token(ttl_s=-1))
    with pytest.raises(Unauthorized):
        verifier.verify(token(sub="../../etc"))


def test_hs256_signed_with_the_public_key_is_refused(pool, tmp_path):
    import jwt

    verifier, _ = pool
    claims = {"sub": "x", "iss": ISS, "aud": "client-123", "token_use": "id", "exp": int(time.time()) + 60}
    forged = jwt.encode(claims, "a-shared-secret-nobody-should-accept", algorithm="HS256")
    with pytest.raises(Unauthorized, match="algorithm"):
        verifier.verify("Bearer " + forged)


def test_unreachable_issuer_is_transient_and_config_is_checked():
    verifier = TokenVerifier(issuer=ISS, audience="c", jwks_url="http://127.0.0.1:9/jwks.json")
    token = mint_token_for_unreachable()
    with pytest.raises(TransientBackendError):
        verifier.verify("Bearer " + token)
    with pytest.raises(ConfigurationError):
        TokenVerifier(issuer="", audience="c", jwks={"keys": []})
    with pytest.raises(ConfigurationError):
        TokenVerifier(issuer=ISS, audience="c")
    with pytest.raises(ConfigurationError):
        TokenVerifier(issuer=ISS, audience="c", jwks_url="file:///etc/passwd")


def mint_token_for_unreachable() -> str:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as home:
        return mint_token(Path(home), "u", issuer=ISS, audience="c")
