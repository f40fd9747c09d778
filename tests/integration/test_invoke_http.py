"""HTTP targets (Azure Functions, Google functions, plain HTTPS) against local servers.

FunctionServer stands in for the deployed function and checks the credential the
platform would check: ``x-functions-key`` for Azure, ``Authorization: Bearer`` for
Google. Requests go over real sockets through urllib3.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from failover import AllBackendsFailed
from failover.errors import (
    BackendRequestError,
    BackendTimeout,
    BackendUnavailable,
    PermissionDeniedError,
    ServerError,
    ThrottledError,
)
from failover.invoke import (
    FunctionError,
    GoogleFunctionTarget,
    InvocationRequest,
    Invoker,
    RequestRejected,
    target_from_url,
)
from failover.invoke.http import HttpTarget
from failover.invoke.testing import FunctionServer, Reply
from failover.testing import FaultProxy
from failover.testing.emulators import free_port

pytestmark = pytest.mark.integration

KEY = "az-function-key-value"
TOKEN = "google-id-token-value"


@pytest.fixture
def azure_function(monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionServer]:
    monkeypatch.setenv("TEST_AZ_FUNCTION_KEY", KEY)
    with FunctionServer(function_key=KEY) as server:
        yield server


@pytest.fixture
def google_function() -> Iterator[FunctionServer]:
    with FunctionServer(path="/thumbnail", bearer_token=TOKEN) as server:
        yield server


def azfunc_url(server: FunctionServer, *, port: int | None = None, name: str = "azure") -> str:
    return (
        f"azfunc+http://127.0.0.1:{port or server.port}/api/fn"
        f"?key_env=TEST_AZ_FUNCTION_KEY&name={name}"
    )


def _request(key: str = "k-1", timeout_seconds: float = 5.0) -> InvocationRequest:
    return InvocationRequest(body=b'{"n":1}', idempotency_key=key, timeout_seconds=timeout_seconds)


def test_azure_function_gets_key_idempotency_key_and_payload(
    azure_function: FunctionServer,
) -> None:
    with Invoker.from_urls([azfunc_url(azure_function)]) as invoker:
        result = invoker.invoke({"order": 42}, idempotency_key="order-42")
    assert (result.target, result.status, result.json()) == ("azure", 200, {"order": 42})
    (received,) = azure_function.requests
    assert received.authorized
    assert received.headers["x-functions-key"] == KEY
    assert received.idempotency_key == "order-42"
    assert received.headers["content-type"] == "application/json"
    assert json.loads(received.body) == {"order": 42}


def test_wrong_function_key_is_permission_denied_and_never_shown(
    azure_function: FunctionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_AZ_FUNCTION_KEY", "stale-key-value")
    with Invoker.from_urls([azfunc_url(azure_function)]) as invoker:
        with pytest.raises(AllBackendsFailed) as info:
            invoker.invoke(b"x")
        shown = f"{info.value!s} {info.value!r} {invoker!r} {invoker.targets['azure']!r}"
    assert isinstance(info.value.errors["azure"], PermissionDeniedError)
    assert len(azure_function.requests) == 1  # not retried
    assert "stale-key-value" not in shown
    assert KEY not in shown


def test_google_function_gets_a_bearer_id_token(google_function: FunctionServer) -> None:
    url = f"{google_function.endpoint}/thumbnail?size=small"
    target = GoogleFunctionTarget(url, token_provider=lambda: TOKEN, name="google")
    assert target.auth.audience == f"{google_function.endpoint}/thumbnail"  # no query
    with Invoker([target]) as invoker:
        result = invoker.invoke("cat.png", idempotency_key="img-1")
    assert result.payload == b"cat.png"
    (received,) = google_function.requests
    assert received.authorized
    assert received.path == "/thumbnail?size=small"
    assert received.idempotency_key == "img-1"


def test_plain_https_target_with_a_header_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_API_KEY", "api-key-value")
    with FunctionServer(path="/v1/run") as server:
        url = f"http://127.0.0.1:{server.port}/v1/run?auth_header_env=TEST_API_KEY&auth_header=X-Api-Key"
        with Invoker.from_urls([url]) as invoker:
            assert invoker.invoke(b"\x01").payload == b"\x01"
        (received,) = server.requests
    assert received.headers["x-api-key"] == "api-key-value"
    assert received.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("status", "mapped"),
    [
        (400, RequestRejected),
        (404, RequestRejected),
        (422, RequestRejected),
        (401, PermissionDeniedError),
        (403, PermissionDeniedError),
        (408, BackendTimeout),
        (429, ThrottledError),
        (500, FunctionError),
        (502, ServerError),
        (503, ThrottledError),
        (504, ServerError),
        (302, BackendRequestError),
    ],
)
def test_http_statuses_are_classified(status: int, mapped: type[Exception]) -> None:
    with FunctionServer() as server:
        server.reply_next(Reply(status, b'{"error":"details"}', {"Location": "/elsewhere"}))
        target = HttpTarget(f"{server.endpoint}/api/fn")
        with closing(target), pytest.raises(mapped) as info:
            target.invoke(_request())
        assert len(server.requests) == 1  # one request: no redirect followed, no retry
    if isinstance(info.value, RequestRejected | FunctionError):
        assert info.value.status == status
        assert info.value.payload == b'{"error":"details"}'


def test_network_failures_are_transient(azure_function: FunctionServer) -> None:
    refused = HttpTarget(f"http://127.0.0.1:{free_port()}/api/fn")
    with closing(refused), pytest.raises(BackendUnavailable):
        refused.invoke(_request())
    with FaultProxy("127.0.0.1", azure_function.port) as proxy:
        target = target_from_url(azfunc_url(azure_function, port=proxy.port))
        with closing(target):
            assert target.invoke(_request()).status == 200  # keep-alive connection opened
            proxy.reset()
            with pytest.raises(BackendUnavailable):
                target.invoke(_request())
            proxy.blackhole()
            started = time.monotonic()
            with pytest.raises(BackendTimeout):
                target.invoke(_request(timeout_seconds=0.3))
            # The request's 0.3 s timeout ends the call; without it the call would wait
            # forever. The bound is 30x that: only a call the timeout did not end, not a
            # loaded machine, fails it.
            elapsed = time.monotonic() - started
            assert elapsed < 10.0, f"a blackholed invocation took {elapsed:.1f} s"
            proxy.pass_through()
            assert target.invoke(_request()).status == 200
