"""gcf+http(s):// with google-auth's real ID-token flow, against local servers.

A service-account key file (a fresh RSA key) whose ``token_uri`` is a local token
endpoint: google-auth signs the JWT grant, posts it, and gets an ID token back; the
stand-in function accepts only that token as ``Authorization: Bearer``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from failover import AllBackendsFailed
from failover.errors import BackendUnavailable, PermissionDeniedError
from failover.invoke import Invoker
from failover.invoke.testing import FunctionServer, Reply

pytestmark = pytest.mark.integration


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(jwt: str) -> dict[str, object]:
    payload = jwt.split(".")[1]
    claims: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def _id_token(audience: str) -> str:
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    now = int(time.time())
    claims = {"aud": audience, "iss": "https://accounts.google.com", "iat": now, "exp": now + 3600}
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(b'signature')}"


@pytest.fixture
def service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionServer]:
    """A token endpoint and GOOGLE_APPLICATION_CREDENTIALS pointing at a key for it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with FunctionServer(path="/token") as token_endpoint:
        info = {
            "type": "service_account",
            "project_id": "acme",
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": "invoker@acme.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": f"{token_endpoint.endpoint}/token",
        }
        path = tmp_path / "service-account.json"
        path.write_text(json.dumps(info))
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
        yield token_endpoint


def test_id_token_from_service_account_is_fetched_once_and_sent(
    service_account: FunctionServer,
) -> None:
    with FunctionServer(path="/thumbnail") as function:
        audience = f"{function.endpoint}/thumbnail"
        token = _id_token(audience)
        function.bearer_token = token  # the only token the "platform" accepts
        service_account.reply_always(
            Reply(
                200, json.dumps({"id_token": token}).encode(), {"Content-Type": "application/json"}
            )
        )
        with Invoker.from_urls(
            [f"gcf+http://127.0.0.1:{function.port}/thumbnail?name=google"]
        ) as invoker:
            for n in range(3):
                assert invoker.invoke({"n": n}).json() == {"n": n}
        assert all(r.authorized for r in function.requests)
    (grant,) = service_account.requests  # cached until it expires
    form = parse_qs(grant.body.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assertion = _claims(form["assertion"][0])
    assert assertion["target_audience"] == audience
    assert assertion["iss"] == "invoker@acme.iam.gserviceaccount.com"


def test_refused_and_unreachable_token_service(service_account: FunctionServer) -> None:
    with FunctionServer(path="/fn", bearer_token="never") as function:
        url = f"gcf+http://127.0.0.1:{function.port}/fn?name=google"
        service_account.reply_always(Reply(400, b'{"error":"invalid_grant"}'))
        with Invoker.from_urls([url], retry_attempts=1) as invoker:
            with pytest.raises(AllBackendsFailed) as info:
                invoker.invoke(b"x")
            assert isinstance(info.value.errors["google"], PermissionDeniedError)
            service_account.stop()  # the token service is gone
            with pytest.raises(AllBackendsFailed) as info:
                invoker.invoke(b"x")
            assert isinstance(info.value.errors["google"], BackendUnavailable)
        assert function.requests == ()  # no token, no call
