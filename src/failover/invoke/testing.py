"""A local stand-in for a deployed function, to test invocation failover without a cloud.

:class:`FunctionServer` is a small threaded HTTP server on ``127.0.0.1`` that answers
like a deployed function and records what it received:

* ``protocol="http"``: an HTTP-triggered function (Azure Functions, Google Cloud
  Functions / Cloud Run, any HTTPS endpoint). With ``function_key=`` it answers 401
  unless the ``x-functions-key`` header holds the key (as Azure does); with
  ``bearer_token=`` unless ``Authorization: Bearer <token>`` does (as Google's front end
  does for ID tokens).
* ``protocol="lambda"``: AWS Lambda's ``Invoke`` API (``POST
  /2015-03-31/functions/NAME/invocations``) as boto3 calls it, including the
  ``X-Amz-Function-Error`` answer of a failing function and the API's error answers
  (throttling, not found), which moto's Docker-less Lambda cannot produce.

:func:`deploy_moto_lambda` deploys a function on a moto server (its Lambda without
Docker echoes the payload, or returns queued results: :func:`queue_moto_lambda_results`)
and returns its ``lambda://`` target URL.

By default it echoes the request body with status 200. :meth:`FunctionServer.reply_next`
queues scripted answers, :meth:`FunctionServer.reply_always` sets a standing one.
Put a :class:`~failover.testing.FaultProxy` in front of it for network faults.

Example:
    >>> with FunctionServer(function_key="k") as server:     # doctest: +SKIP
    ...     server.reply_next(Reply(status=503))
    ...     url = f"azfunc+http://127.0.0.1:{server.port}/api/fn?key_env=KEY"
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import threading
import time
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal, Self, cast

__all__ = [
    "FunctionServer",
    "ReceivedRequest",
    "Reply",
    "deploy_moto_lambda",
    "queue_moto_lambda_results",
]

_MOTO_REGION = "us-east-1"
_HTTP_TIMEOUT_SECONDS = 5.0
_LAMBDA_PATH = re.compile(r"/2015-03-31/functions/(?P<function>[^/]+)/invocations")


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request the server received (after its authentication check).

    Attributes:
        method: the HTTP method.
        path: the request path with its query.
        headers: the headers, names in lower case.
        body: the request body.
        idempotency_key: the ``Idempotency-Key`` header, or for ``protocol="lambda"``
            ``custom.idempotency_key`` of the client context; ``None`` when absent.
        authorized: whether it passed the server's authentication check.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    idempotency_key: str | None
    authorized: bool


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer.

    Attributes:
        status: the HTTP status.
        body: the body.
        headers: extra headers.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def lambda_function_error(cls, message: str, *, kind: str = "Unhandled") -> Reply:
        """What Lambda answers when the function raised: 200 with ``X-Amz-Function-Error``."""
        body = json.dumps({"errorMessage": message, "errorType": "Exception"}).encode()
        return cls(200, body, {"X-Amz-Function-Error": kind})

    @classmethod
    def lambda_api_error(cls, status: int, code: str, message: str = "") -> Reply:
        """An error of Lambda's API (``TooManyRequestsException``, …), as botocore parses it."""
        body = json.dumps({"message": message or code, "Type": "User"}).encode()
        return cls(status, body, {"x-amzn-ErrorType": code})


class FunctionServer:
    """A stand-in for one deployed function (see the module documentation).

    Args:
        protocol: ``"http"`` (Azure / Google / plain) or ``"lambda"`` (Lambda Invoke API).
        path: the function's path (``protocol="http"``); other paths get 404.
        function_key: require ``x-functions-key: <key>``.
        bearer_token: require ``Authorization: Bearer <token>``.

    ``function_key`` and ``bearer_token`` are also attributes, which may be changed
    while the server runs (a rotated key, a token known only once the URL is).
    """

    def __init__(
        self,
        *,
        protocol: Literal["http", "lambda"] = "http",
        path: str = "/api/fn",
        function_key: str | None = None,
        bearer_token: str | None = None,
    ) -> None:
        self.protocol = protocol
        self.path = path
        self.function_key = function_key
        self.bearer_token = bearer_token
        self._cond = threading.Condition()
        self._queue: list[Reply] = []
        self._standing: Reply | None = None
        self._requests: list[ReceivedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free loopback port and serve in a daemon thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"function-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The listening port."""
        if self._server is None:
            raise RuntimeError("FunctionServer is not started")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    # -- scripting and inspection --------------------------------------------------------

    def reply_next(self, *replies: Reply) -> None:
        """Queue answers for the next requests, in order (before any standing answer)."""
        with self._cond:
            self._queue.extend(replies)

    def reply_always(self, reply: Reply | None) -> None:
        """Answer every request with ``reply`` from now on; ``None`` goes back to echoing."""
        with self._cond:
            self._standing = reply

    @property
    def requests(self) -> tuple[ReceivedRequest, ...]:
        """Every request received so far, in arrival order."""
        with self._cond:
            return tuple(self._requests)

    def clear(self) -> None:
        """Forget the recorded requests and queued answers."""
        with self._cond:
            self._requests.clear()
            self._queue.clear()

    def wait_for_requests(
        self, count: int, *, timeout_seconds: float = 5.0
    ) -> tuple[ReceivedRequest, ...]:
        """Wait until at least ``count`` requests arrived (at most ``timeout_seconds``).

        Returns:
            The requests received so far (possibly fewer than ``count`` on timeout).
        """
        give_up = time.monotonic() + timeout_seconds
        with self._cond:
            while len(self._requests) < count:
                left = give_up - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return tuple(self._requests)

    # -- answering (called by the handler threads) ----------------------------------------

    def _answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        authorized = self._authorized(headers)
        key = self._idempotency_key(headers)
        with self._cond:
            self._requests.append(
                ReceivedRequest(method, path, dict(headers), body, key, authorized)
            )
            self._cond.notify_all()
            if not authorized:
                return Reply(401, b'{"error":"unauthorized"}', {"Content-Type": "application/json"})
            if not self._route_exists(path):
                return self._not_found()
            if self._queue:
                return self._queue.pop(0)
            if self._standing is not None:
                return self._standing
        echo_type = headers.get("content-type", "application/octet-stream")
        return Reply(200, body, {"Content-Type": echo_type})

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        if self.function_key is not None and headers.get("x-functions-key") != self.function_key:
            return False
        return not (
            self.bearer_token is not None
            and headers.get("authorization") != f"Bearer {self.bearer_token}"
        )

    def _idempotency_key(self, headers: Mapping[str, str]) -> str | None:
        if self.protocol == "http":
            return headers.get("idempotency-key")
        encoded = headers.get("x-amz-client-context")
        if not encoded:
            return None
        try:
            context = json.loads(base64.b64decode(encoded))
        except (binascii.Error, ValueError):
            return None
        key = context.get("custom", {}).get("idempotency_key")
        return key if isinstance(key, str) else None

    def _route_exists(self, path: str) -> bool:
        route = path.partition("?")[0]
        if self.protocol == "lambda":
            return _LAMBDA_PATH.fullmatch(route) is not None
        return route == self.path

    def _not_found(self) -> Reply:
        if self.protocol == "lambda":
            return Reply.lambda_api_error(404, "ResourceNotFoundException", "Function not found")
        return Reply(404, b"not found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive connections must not block stop()
    owner: FunctionServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real platforms
    # Small writes must not wait for the peer's delayed ACK (40 ms per call).
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        """Answer a POST."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = cast("_Server", self.server).owner._answer("POST", self.path, headers, body)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet (tests read the recorded requests instead)."""


def deploy_moto_lambda(
    endpoint: str,
    function: str,
    *,
    target_endpoint: str | None = None,
    name: str | None = None,
) -> str:
    """Deploy a Python function on a moto server, with Lambda's Docker-less mode on.

    Switches moto's Lambda to its simple mode (``POST /moto-api/config``
    ``{"lambda": {"use_docker": false}}``: invocations echo the payload, or return the
    results queued with :func:`queue_moto_lambda_results`), creates an IAM role and the
    function from a zip. Needs ``failover[aws]`` and dummy AWS credentials in the
    environment (the ``moto_server`` fixture sets them).

    Args:
        endpoint: the moto server's ``http://host:port``.
        function: the function's name.
        target_endpoint: endpoint to put in the URL instead (a fault proxy in front).
        name: the target's name for the URL's ``name=``.

    Returns:
        ``lambda://<function>?region=us-east-1&endpoint_url=<endpoint>[&name=…]``.
    """
    import boto3  # noqa: PLC0415 - the aws extra is optional

    _post_json(endpoint + "/moto-api/config", {"lambda": {"use_docker": False}})
    session = boto3.session.Session(region_name=_MOTO_REGION)
    iam = session.client("iam", endpoint_url=endpoint)
    role_name = f"failover-{function}"
    try:
        role = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("handler.py", "def handler(event, context):\n    return event\n")
    client = session.client("lambda", endpoint_url=endpoint)
    try:
        client.create_function(
            FunctionName=function,
            Runtime="python3.11",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": archive.getvalue()},
        )
    except client.exceptions.ResourceConflictException:
        pass  # already deployed: idempotent
    finally:
        client.close()
        iam.close()
    url = f"lambda://{function}?region={_MOTO_REGION}&endpoint_url={target_endpoint or endpoint}"
    return url + (f"&name={name}" if name else "")


def queue_moto_lambda_results(endpoint: str, *results: str) -> None:
    """Queue answers for the next invocations of any function on a Docker-less moto."""
    _post_json(
        endpoint + "/moto-api/static/lambda-simple/response",
        {"results": list(results), "region": _MOTO_REGION},
    )


def _post_json(url: str, document: object) -> None:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=json.dumps(document).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_SECONDS):  # noqa: S310
        pass
