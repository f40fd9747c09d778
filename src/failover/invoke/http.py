"""Functions behind HTTP(S): any endpoint, and the base of the Azure and Google targets.

One :class:`HttpTarget` POSTs the payload to one URL with urllib3 (``failover[http]``;
urllib3 also comes with ``failover[aws]`` and ``failover[gcp]``), with:

* the headers ``Content-Type``, ``Idempotency-Key`` and those of its :data:`HttpAuth`
  (a function key, an ID token, a header from an environment variable), computed per
  attempt so that rotated keys and refreshed tokens are picked up;
* a connect and read timeout per attempt (capped by the call's deadline), no retries
  (``retries=False``: the dispatcher decides retries once) and no redirects (a redirect
  could carry a key to another host);
* one pool of keep-alive connections per target, sized to its workers.

The answer is classified in one place, :meth:`HttpTarget._classify`, and transport
errors are mapped in one context manager, :meth:`HttpTarget._map_errors`:

===============================  ==================================  =========================
answer                           error                               invoker does
===============================  ==================================  =========================
2xx                              (an answer)                         returns it
connection refused, reset, DNS   ``BackendUnavailable``              retry, fail over
connect/read timeout, 408        ``BackendTimeout``                  retry, fail over
429, 503                         ``ThrottledError``                  retry, fail over
500                              ``FunctionError`` (the function)    retry, fail over (policy)
other 5xx                        ``ServerError`` (the platform)      retry, fail over
401, 403                         ``PermissionDeniedError``           fail over (this target's
                                                                     credential is wrong)
other 4xx                        ``RequestRejected``                 raise at once
3xx                              ``BackendRequestError``             fail over
===============================  ==================================  =========================
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

try:
    import urllib3
    from urllib3.exceptions import (
        ConnectTimeoutError,
        HTTPError,
        NewConnectionError,
        ProtocolError,
        ReadTimeoutError,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "HTTP invocation targets need urllib3: pip install 'failover[http]'", name=exc.name
    ) from exc

from failover import __version__
from failover.errors import (
    BackendError,
    BackendRequestError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    PermissionDeniedError,
    ServerError,
    ThrottledError,
)
from failover.invoke.base import InvocationRequest, TargetResponse, check_client_options
from failover.invoke.errors import FunctionError, RequestRejected, excerpt

if TYPE_CHECKING:
    from failover.invoke._url import TargetURL

__all__ = ["HeaderFromEnv", "HttpAuth", "HttpTarget"]

#: Returns the authentication headers of one attempt; raises a mapped error
#: (``PermissionDeniedError``, ``BackendUnavailable``) when it cannot.
HttpAuth = Callable[[], Mapping[str, str]]

#: Timeout floor: urllib3 treats 0 as "non-blocking", not "already late".
_MIN_TIMEOUT_SECONDS = 0.001
_USER_AGENT = f"failover/{__version__}"


class HeaderFromEnv:
    """Authentication by one header whose value is read from an environment variable.

    The variable is read on every attempt (a rotated key needs no restart); its value
    never appears in a message, ``repr`` or log line.

    Args:
        header: the header's name (``x-functions-key``, ``Authorization``).
        variable: the environment variable holding its value.
    """

    __slots__ = ("_header", "_variable")

    def __init__(self, header: str, variable: str) -> None:
        self._header = header
        self._variable = variable

    def check(self) -> None:
        """Fail early, naming the variable, when it is unset or empty.

        Raises:
            ConfigError: the variable is missing.
        """
        if not os.environ.get(self._variable):
            raise ConfigError(
                f"environment variable {self._variable} is not set; it must hold the "
                f"{self._header} header for this target"
            )

    def __call__(self) -> Mapping[str, str]:
        """Return ``{header: value}``.

        Raises:
            PermissionDeniedError: the variable is unset or empty now.
        """
        value = os.environ.get(self._variable)
        if not value:
            raise PermissionDeniedError(
                f"environment variable {self._variable} ({self._header}) is not set"
            )
        return {self._header: value}

    def __repr__(self) -> str:
        return f"HeaderFromEnv({self._header!r}, from ${self._variable})"


class HttpTarget:
    """A function reached by POSTing its payload to an HTTP(S) URL.

    Args:
        url: the ``http(s)://`` URL to POST to.
        name: the target's name (default: ``<scheme>:<host><path>``).
        auth: returns the authentication headers of each attempt (default: none).
        timeout_seconds: the longest connect and read timeout of one attempt (an
            attempt also stops at its request's ``timeout_seconds``, capped by the
            call's deadline).
        max_connections: keep-alive connections kept (match the target's workers).

    Raises:
        ConfigError: the URL is not ``http(s)://``, or a bad timeout or pool size.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        auth: HttpAuth | None = None,
        timeout_seconds: float = 10.0,
        max_connections: int = 16,
    ) -> None:
        parts = urllib3.util.parse_url(url)
        if parts.scheme not in ("http", "https") or not parts.host:
            raise ConfigError(f"HttpTarget needs an http(s):// URL, got {url!r}")
        check_client_options(timeout_seconds=timeout_seconds, max_connections=max_connections)
        self._url = url
        self._name = name or f"{parts.scheme}:{parts.host}{parts.path or ''}"
        self._auth = auth
        self._timeout = timeout_seconds
        self._pool = urllib3.PoolManager(
            num_pools=2, maxsize=max_connections, block=False, retries=False
        )
        self._closed = threading.Event()

    @classmethod
    def from_url(
        cls, url: TargetURL, *, timeout_seconds: float, max_connections: int
    ) -> HttpTarget:
        """Build from a parsed ``https://…[?auth_header_env=VAR&auth_header=NAME]`` URL.

        Raises:
            ConfigError: the named environment variable is not set.
        """
        auth = None
        variable = url.params.get("auth_header_env")
        if variable:
            header = HeaderFromEnv(url.params.get("auth_header", "Authorization"), variable)
            header.check()
            auth = header
        return cls(
            url.endpoint,
            name=url.name,
            auth=auth,
            timeout_seconds=timeout_seconds,
            max_connections=max_connections,
        )

    @property
    def name(self) -> str:
        """The target's name."""
        return self._name

    @property
    def url(self) -> str:
        """The URL requests are POSTed to (it holds no secret)."""
        return self._url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, url={self._url!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self._closed.set()
        self._pool.clear()

    def invoke(self, request: InvocationRequest) -> TargetResponse:
        """POST the request's body; return a 2xx answer or raise a mapped error."""
        with self._map_errors():
            headers = {
                "Content-Type": request.content_type,
                "Idempotency-Key": request.idempotency_key,
                "User-Agent": _USER_AGENT,
            }
            if self._auth is not None:
                headers.update(self._auth())
            seconds = max(_MIN_TIMEOUT_SECONDS, min(self._timeout, request.timeout_seconds))
            response = self._pool.request(
                "POST",
                self._url,
                body=request.body,
                headers=headers,
                timeout=urllib3.Timeout(connect=seconds, read=seconds),
                retries=False,
                redirect=False,
                preload_content=True,
            )
        return self._classify(response.status, response.data, response.headers)

    def _classify(self, status: int, payload: bytes, headers: Mapping[str, str]) -> TargetResponse:
        if 200 <= status < 300:
            return TargetResponse(status=status, payload=payload)
        detail = f"HTTP {status}" + (f": {excerpt(payload)}" if payload else "")
        name = self._name
        error: BackendError
        if status in (401, 403):
            error = PermissionDeniedError(detail, backend=name)
        elif status == 408:
            error = BackendTimeout(detail, backend=name)
        elif status in (429, 503):
            error = ThrottledError(detail, backend=name)
        elif status == 500:
            error = FunctionError(
                f"the function failed: {detail}", status=status, payload=payload, backend=name
            )
        elif status >= 500:
            error = ServerError(detail, backend=name)
        elif status >= 400:
            error = RequestRejected(detail, status=status, payload=payload, backend=name)
        else:
            location = "" if "location" not in headers else " (redirect not followed)"
            error = BackendRequestError(f"unexpected HTTP {status}{location}", backend=name)
        raise error

    @contextlib.contextmanager
    def _map_errors(self) -> Iterator[None]:
        """Translate urllib3's exceptions into :mod:`failover.errors`, most specific first."""
        try:
            yield
        except NewConnectionError as exc:
            # Refused, or DNS failed (NameResolutionError): a subclass of the timeout
            # below in urllib3 2, so it comes first.
            raise BackendUnavailable(f"cannot connect: {exc}", backend=self._name) from exc
        except (ConnectTimeoutError, ReadTimeoutError) as exc:
            raise BackendTimeout(f"no answer in time: {exc}", backend=self._name) from exc
        except ProtocolError as exc:
            raise BackendUnavailable(
                f"connection lost: {_reason(exc)}", backend=self._name
            ) from exc
        except HTTPError as exc:
            # TLS failures, closed pool, truncated body and anything else of urllib3.
            if self._closed.is_set():
                raise BackendUnavailable("the target is closed", backend=self._name) from exc
            raise BackendUnavailable(
                f"HTTP failure: {type(exc).__name__}: {exc}", backend=self._name
            ) from exc


def _reason(exc: ProtocolError) -> str:
    inner = exc.args[1] if len(exc.args) > 1 else None
    return type(inner).__name__ if isinstance(inner, BaseException) else type(exc).__name__
