"""Lambda targets through boto3 against real servers.

moto's Lambda (Docker-less mode) for invocations that succeed; the FunctionServer
stand-in speaking Lambda's Invoke API for what moto's simple mode cannot produce
(function errors, throttling and the other API errors). boto3 is never mocked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing

import pytest

from failover.errors import (
    BackendTimeout,
    BackendUnavailable,
    PermissionDeniedError,
    ServerError,
    ThrottledError,
)
from failover.invoke import (
    FunctionError,
    InvocationRequest,
    Invoker,
    RequestRejected,
    TargetNotFoundError,
)
from failover.invoke.aws_lambda import LambdaTarget
from failover.invoke.testing import (
    FunctionServer,
    Reply,
    deploy_moto_lambda,
    queue_moto_lambda_results,
)
from failover.testing import FaultProxy
from failover.testing.emulators import EmulatorProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def moto_lambda(moto_server: EmulatorProcess) -> str:
    """A freshly deployed function on the session moto; its lambda:// URL."""
    return deploy_moto_lambda(moto_server.endpoint, f"fn-{uuid.uuid4().hex[:8]}", name="aws")


@pytest.fixture
def lambda_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionServer]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with FunctionServer(protocol="lambda") as server:
        yield server


def _target(server_endpoint: str, **options: object) -> LambdaTarget:
    return LambdaTarget(
        "fn",
        region="us-east-1",
        endpoint_url=server_endpoint,
        timeout_seconds=options.pop("timeout_seconds", 5.0),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def _request(key: str = "k-1", timeout_seconds: float = 5.0) -> InvocationRequest:
    return InvocationRequest(body=b'{"n":1}', idempotency_key=key, timeout_seconds=timeout_seconds)


def test_invoke_on_moto_returns_the_function_answer(moto_lambda: str) -> None:
    with Invoker.from_urls([moto_lambda]) as invoker:
        result = invoker.invoke({"image": "cat.png"})
    assert result.target == "aws"
    assert result.status == 200
    assert result.json() == {"image": "cat.png"}  # moto's simple Lambda echoes the event


def test_queued_moto_results_and_a_qualified_function(
    moto_server: EmulatorProcess, moto_lambda: str
) -> None:
    qualified = moto_lambda.replace("?", ":$LATEST?", 1)
    queue_moto_lambda_results(moto_server.endpoint, '{"thumbnail": "cat-small.png"}')
    with Invoker.from_urls([qualified]) as invoker:
        assert invoker.invoke({"image": "cat.png"}).json() == {"thumbnail": "cat-small.png"}


def test_idempotency_key_travels_in_the_client_context(lambda_api: FunctionServer) -> None:
    target = _target(lambda_api.endpoint)
    with closing(target):
        response = target.invoke(_request("order-42"))
    assert response.payload == b'{"n":1}'
    (received,) = lambda_api.requests
    assert received.path == "/2015-03-31/functions/fn/invocations"
    assert received.idempotency_key == "order-42"
    assert received.body == b'{"n":1}'


def test_function_error_is_mapped_with_the_functions_answer(lambda_api: FunctionServer) -> None:
    lambda_api.reply_next(Reply.lambda_function_error("division by zero"))
    with closing(_target(lambda_api.endpoint)) as target, pytest.raises(FunctionError) as info:
        target.invoke(_request())
    assert info.value.kind == "Unhandled"
    assert b"division by zero" in info.value.payload
    assert info.value.transient


@pytest.mark.parametrize(
    ("reply", "mapped"),
    [
        (Reply.lambda_api_error(429, "TooManyRequestsException"), ThrottledError),
        (Reply.lambda_api_error(502, "EC2ThrottledException"), ThrottledError),
        (Reply.lambda_api_error(500, "ServiceException"), ServerError),
        (Reply.lambda_api_error(409, "ResourceConflictException"), BackendUnavailable),
        (Reply.lambda_api_error(404, "ResourceNotFoundException"), TargetNotFoundError),
        (Reply.lambda_api_error(403, "AccessDeniedException"), PermissionDeniedError),
        (Reply.lambda_api_error(400, "InvalidRequestContentException"), RequestRejected),
        (Reply.lambda_api_error(413, "RequestTooLargeException"), RequestRejected),
    ],
)
def test_lambda_api_errors_are_classified(
    lambda_api: FunctionServer, reply: Reply, mapped: type[Exception]
) -> None:
    lambda_api.reply_next(reply)
    with closing(_target(lambda_api.endpoint)) as target, pytest.raises(mapped):
        target.invoke(_request())
    assert len(lambda_api.requests) == 1  # botocore did not retry


def test_network_failures_are_transient(lambda_api: FunctionServer) -> None:
    with FaultProxy("127.0.0.1", lambda_api.port) as proxy:
        # A short timeout only for the call that must time out: a boto3 client has one
        # timeout for every call, and the calls that must succeed get a generous one.
        hasty = _target(proxy.endpoint, timeout_seconds=0.3)
        with closing(hasty):
            proxy.blackhole()
            with pytest.raises(BackendTimeout):
                hasty.invoke(_request())
        target = _target(proxy.endpoint)
        with closing(target):
            proxy.refuse()
            with pytest.raises(BackendUnavailable):
                target.invoke(_request())
            proxy.pass_through()
            assert target.invoke(_request()).status == 200


def test_invoker_fails_over_from_a_throttled_lambda_to_moto(
    lambda_api: FunctionServer, moto_lambda: str
) -> None:
    lambda_api.reply_always(Reply.lambda_api_error(429, "TooManyRequestsException"))
    throttled = f"lambda://fn?region=us-east-1&endpoint_url={lambda_api.endpoint}&name=throttled"
    with Invoker.from_urls(
        [throttled, moto_lambda], read_policy="ordered", retry_attempts=2
    ) as invoker:
        result = invoker.invoke({"n": 2}, idempotency_key="same-key")
    assert (result.target, result.json(), result.attempts) == ("aws", {"n": 2}, 3)
    assert [r.idempotency_key for r in lambda_api.requests] == ["same-key", "same-key"]
