"""AWS Lambda as an invocation target, via boto3's ``Invoke`` (``RequestResponse``).

URL: ``lambda://FUNCTION[:QUALIFIER]?region=…&endpoint_url=…`` (``failover[aws]``).
Credentials, region and endpoint otherwise come from boto3's own chain
(``AWS_ACCESS_KEY_ID`` …, ``AWS_PROFILE``, roles; ``AWS_REGION`` /
``AWS_DEFAULT_REGION``; ``AWS_ENDPOINT_URL_LAMBDA`` / ``AWS_ENDPOINT_URL``).

The idempotency key travels in the client context, which the function reads as
``context.client_context.custom["idempotency_key"]`` (Python; ``clientContext.Custom``
in Node.js). botocore's own retries are off (``total_max_attempts=1``); its read
timeout is the target's ``timeout_seconds`` (a boto3 client has no per-call timeout: a
call's deadline still bounds the wait, by abandoning the attempt).

Errors are mapped in :meth:`LambdaTarget._map_errors`:

=======================================================  =====================================
Lambda answer                                            error
=======================================================  =====================================
``FunctionError`` (Unhandled / Handled)                  ``FunctionError`` (the function)
TooManyRequests, EC2Throttled, 429, 503                  ``ThrottledError``
ResourceConflict (function updating), ResourceNotReady   ``BackendUnavailable``
ServiceException and other 5xx                           ``ServerError``
ResourceNotFound                                         ``TargetNotFoundError`` (fails over)
AccessDenied, bad signature, 401/403, no credentials     ``PermissionDeniedError`` (fails over)
InvalidRequestContent, RequestTooLarge, other 4xx        ``RequestRejected`` (raised at once)
read/connect timeout                                     ``BackendTimeout``
refused, reset, DNS                                      ``BackendUnavailable``
=======================================================  =====================================
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

try:
    import boto3
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

    from failover._botocore import transport_error
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "Lambda targets need boto3: pip install 'failover[aws]'", name=exc.name
    ) from exc

from failover.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    PermissionDeniedError,
    ServerError,
    ThrottledError,
)
from failover.invoke.base import InvocationRequest, TargetResponse, check_client_options
from failover.invoke.errors import FunctionError, RequestRejected, TargetNotFoundError, excerpt

if TYPE_CHECKING:
    from failover.invoke._url import TargetURL

__all__ = ["CLIENT_CONTEXT_KEY", "LambdaTarget"]

#: Name of the idempotency key in the client context's ``custom`` map.
CLIENT_CONTEXT_KEY = "idempotency_key"

_THROTTLE_CODES = frozenset(
    {
        "TooManyRequestsException",
        "EC2ThrottledException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
    }
)
_NOT_READY_CODES = frozenset({"ResourceConflictException", "ResourceNotReadyException"})
_PERMISSION_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
    }
)


class LambdaTarget:
    """One Lambda function (optionally a version or alias) as an invocation target.

    Args:
        function: the function's name.
        qualifier: a version, an alias or ``$LATEST`` (default: unqualified).
        name: the target's name (default ``lambda:<function>[:<qualifier>][@<region>]``).
        region: AWS region (default: boto3's chain).
        endpoint_url: a Lambda-compatible endpoint (an emulator, say).
        timeout_seconds: connect and read timeout of one attempt.
        max_connections: HTTP connection pool size (match the target's workers).

    Raises:
        ConfigError: no function name, a bad timeout or pool size, or no region.
    """

    def __init__(
        self,
        function: str,
        *,
        qualifier: str | None = None,
        name: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        timeout_seconds: float = 10.0,
        max_connections: int = 16,
    ) -> None:
        if not function:
            raise ConfigError("LambdaTarget needs a function name")
        check_client_options(timeout_seconds=timeout_seconds, max_connections=max_connections)
        self._function = function
        self._qualifier = qualifier
        default = f"lambda:{function}" + (f":{qualifier}" if qualifier else "")
        self._name = name or default + (f"@{region}" if region else "")
        config = Config(
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            # Only total_max_attempts turns botocore's retries off entirely.
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
        )
        # A private session (boto3's default one is not thread-safe), sharing the
        # read-only service models of the default session so building one is cheap.
        core = botocore.session.get_session()
        core.register_component(
            "data_loader", botocore.session.get_session().get_component("data_loader")
        )
        session = boto3.session.Session(botocore_session=core)
        try:
            self._client: Any = session.client(
                "lambda", region_name=region, endpoint_url=endpoint_url, config=config
            )
        except NoRegionError as exc:
            raise ConfigError(
                f"Lambda target {self._name!r} has no region: add ?region=… to its URL or "
                "set AWS_REGION"
            ) from exc

    @classmethod
    def from_url(
        cls, url: TargetURL, *, timeout_seconds: float, max_connections: int
    ) -> LambdaTarget:
        """Build from a parsed ``lambda://FUNCTION[:QUALIFIER]?region=…&endpoint_url=…``."""
        return cls(
            url.function,
            qualifier=url.qualifier,
            name=url.name,
            region=url.params.get("region") or None,
            endpoint_url=url.params.get("endpoint_url") or None,
            timeout_seconds=timeout_seconds,
            max_connections=max_connections,
        )

    @property
    def name(self) -> str:
        """The target's name."""
        return self._name

    @property
    def endpoint_url(self) -> str:
        """The Lambda endpoint the client calls (the region's, or ``endpoint_url``)."""
        return str(self._client.meta.endpoint_url)

    def __repr__(self) -> str:
        qualifier = f":{self._qualifier}" if self._qualifier else ""
        return f"LambdaTarget(name={self._name!r}, function={self._function + qualifier!r})"

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def invoke(self, request: InvocationRequest) -> TargetResponse:
        """Invoke the function synchronously; return its answer or raise a mapped error."""
        context = {"custom": {CLIENT_CONTEXT_KEY: request.idempotency_key}}
        params: dict[str, Any] = {
            "FunctionName": self._function,
            "InvocationType": "RequestResponse",
            "Payload": request.body,
            "ClientContext": base64.b64encode(json.dumps(context).encode()).decode("ascii"),
        }
        if self._qualifier:
            params["Qualifier"] = self._qualifier
        with self._map_errors():
            response = self._client.invoke(**params)
            payload: bytes = response["Payload"].read()
        status = int(response.get("StatusCode", 200))
        kind = response.get("FunctionError")
        if kind:
            raise FunctionError(
                f"the function failed ({kind}): {excerpt(payload)}",
                status=status,
                payload=payload,
                kind=kind,
                backend=self._name,
            )
        return TargetResponse(status=status, payload=payload)

    @contextlib.contextmanager
    def _map_errors(self) -> Iterator[None]:
        """Translate botocore exceptions into :mod:`failover.errors`, most specific first."""
        try:
            yield
        except ClientError as exc:
            raise self._map_client_error(exc) from exc
        except BotoCoreError as exc:
            # Client-side validation (ParamValidationError): no target can accept it.
            raise transport_error(exc, service="Lambda", backend=self._name) or RequestRejected(
                f"Lambda request rejected by botocore: {type(exc).__name__}: {exc}",
                status=400,
                backend=self._name,
            ) from exc

    def _map_client_error(self, exc: ClientError) -> BackendError:
        body = exc.response.get("Error", {})
        code = str(body.get("Code") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = str(body.get("Message") or "")
        detail = f"HTTP {status} {code}: {excerpt(message.encode())}".rstrip(": ")
        name = self._name
        error: BackendError
        if code in _THROTTLE_CODES or status in (429, 503):
            error = ThrottledError(detail, backend=name)
        elif code in _NOT_READY_CODES:
            error = BackendUnavailable(detail, backend=name)
        elif status >= 500:
            error = ServerError(detail, backend=name)
        elif code == "ResourceNotFoundException" or status == 404:
            error = TargetNotFoundError(detail, backend=name)
        elif code in _PERMISSION_CODES or status in (401, 403):
            error = PermissionDeniedError(detail, backend=name)
        elif status == 408:
            error = BackendTimeout(detail, backend=name)
        else:
            error = RequestRejected(
                detail, status=status or 400, payload=message.encode(), backend=name
            )
        return error
