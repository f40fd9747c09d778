"""Any Python callable as an invocation target.

:class:`CallableTarget` lets an application protect *any* provider-specific operation
(a queue send, a database write, a call through a cloud's own SDK) with the invoker's
routing, breakers, retries under the budget, deadline and hedging:

>>> def send_to_sqs(request):                                    # doctest: +SKIP
...     sqs.send_message(QueueUrl=url, MessageBody=request.text(),
...                      MessageDeduplicationId=request.idempotency_key, ...)
>>> invoker = Invoker([CallableTarget("sqs", send_to_sqs),       # doctest: +SKIP
...                    CallableTarget("pubsub", publish)])

The callable gets the :class:`~failover.invoke.base.InvocationRequest` (body,
idempotency key, content type, this attempt's timeout) and returns ``bytes``, ``str``,
a JSON-serialisable value, ``None`` (an empty payload) or a
:class:`~failover.invoke.base.TargetResponse`. Its exceptions are mapped in
:meth:`CallableTarget._map_errors`: failover's own errors pass unchanged (raise
``ThrottledError``, ``RequestRejected``… to say exactly what happened), ``TimeoutError``
becomes ``BackendTimeout``, ``ConnectionError`` ``BackendUnavailable``, and anything
else the operation's own failure, :class:`~failover.invoke.errors.FunctionError`.
``map_error`` can translate a provider's exceptions first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from failover.errors import BackendTimeout, BackendUnavailable, ConfigError, FailoverError
from failover.invoke.base import InvocationRequest, TargetResponse, encode_payload
from failover.invoke.errors import FunctionError

__all__ = ["CallableTarget", "ErrorMapper", "TargetCallable"]

#: The operation: gets the request, returns the answer.
TargetCallable = Callable[[InvocationRequest], object]
#: Translates an exception of the operation into a failover error, or returns ``None``
#: to leave it to the default mapping.
ErrorMapper = Callable[[Exception], FailoverError | None]


class CallableTarget:
    """A named Python callable as an :class:`~failover.invoke.base.InvocationTarget`.

    Args:
        name: the target's name (unique among the invoker's targets).
        fn: the operation; see the module documentation for what it gets and returns.
        map_error: optional translation of the operation's own exceptions (a botocore
            ``ClientError`` with code ``ThrottlingException`` to ``ThrottledError``, say).
        close: optional callable run by :meth:`close` (release a client).

    Raises:
        ConfigError: an empty name or a non-callable ``fn``.
    """

    def __init__(
        self,
        name: str,
        fn: TargetCallable,
        *,
        map_error: ErrorMapper | None = None,
        close: Callable[[], object] | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ConfigError("CallableTarget needs a non-empty name")
        if not callable(fn):
            raise ConfigError(f"CallableTarget {name!r}: fn must be callable")
        self._name = name
        self._fn = fn
        self._map_error = map_error
        self._close = close

    @property
    def name(self) -> str:
        """The target's name."""
        return self._name

    def __repr__(self) -> str:
        return f"CallableTarget({self._name!r}, {getattr(self._fn, '__qualname__', self._fn)!r})"

    def close(self) -> None:
        """Run the ``close`` callable, if one was given."""
        if self._close is not None:
            self._close()

    def invoke(self, request: InvocationRequest) -> TargetResponse:
        """Call the operation and encode its answer."""
        with self._map_errors():
            answer = self._fn(request)
            if isinstance(answer, TargetResponse):
                return answer
            # An operation with nothing to say (a queue send) answers with no payload.
            payload = b"" if answer is None else encode_payload(answer)[0]
        return TargetResponse(status=200, payload=payload)

    @contextlib.contextmanager
    def _map_errors(self) -> Iterator[None]:
        """Translate the operation's exceptions, most specific first."""
        try:
            yield
        except FailoverError:
            raise
        except Exception as exc:
            mapped = self._map_error(exc) if self._map_error is not None else None
            if mapped is not None:
                raise mapped from exc
            if isinstance(exc, TimeoutError):
                raise BackendTimeout(f"timed out: {exc}", backend=self._name) from exc
            if isinstance(exc, ConnectionError):
                raise BackendUnavailable(
                    f"connection failed: {type(exc).__name__}: {exc}", backend=self._name
                ) from exc
            raise FunctionError(
                f"the operation failed: {type(exc).__name__}: {exc}",
                status=500,
                backend=self._name,
            ) from exc
