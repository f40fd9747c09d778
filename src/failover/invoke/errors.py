"""Exceptions that only invocation raises, placed in the tree of :mod:`failover.errors`.

::

    BackendError
    ├── FunctionError                    the function itself failed (Lambda FunctionError,
    │                                    HTTP 500); fails over by default (``.transient``)
    └── PermanentError
        ├── BackendRequestError
        │   └── RequestRejected          the target rejected the caller's request (4xx):
        │                                raised at once, never failed over
        └── TargetNotFoundError          the function is not deployed there (Lambda
                                         ResourceNotFoundException): fails over

How the :class:`~failover.Invoker` treats each class:

==========================  =====================  ===========  ============  =========
error                       retried on the target  fails over   breaker       example
==========================  =====================  ===========  ============  =========
TransientError subclasses   yes (budget)           yes          counts        503, 429
FunctionError               yes (budget)           yes          counts        HTTP 500
FunctionError (``raise``)   no                     no: raised   not counted   HTTP 500
RequestRejected             no                     no: raised   not counted   HTTP 400
PermissionDeniedError       no                     yes          not counted   401, 403
TargetNotFoundError         no                     yes          not counted   Lambda 404
==========================  =====================  ===========  ============  =========

No message built here contains a credential; payload excerpts are the function's own
answer, cut to :data:`EXCERPT_CHARS` characters.
"""

from __future__ import annotations

from failover.errors import BackendError, BackendRequestError, PermanentError

__all__ = [
    "EXCERPT_CHARS",
    "FunctionError",
    "RequestRejected",
    "TargetNotFoundError",
    "excerpt",
]

#: How much of an answer's body an error message quotes.
EXCERPT_CHARS = 200


def excerpt(payload: bytes) -> str:
    """Return the start of ``payload`` as text for an error message (never the whole)."""
    text = payload[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


class RequestRejected(BackendRequestError):
    """The target rejected the caller's request (HTTP 4xx other than 401/403/408/429).

    The same request would be rejected by every target, so the
    :class:`~failover.Invoker` raises it at once: no retry, no failover, and the
    breaker is not charged (the target answered).

    Attributes:
        status: the HTTP status (or Lambda API status) of the rejection.
        payload: the body of the rejection, as the target sent it.
    """

    def __init__(
        self, message: str, *, status: int, payload: bytes = b"", backend: str | None = None
    ) -> None:
        super().__init__(message, backend=backend)
        self.status = status
        self.payload = payload


class FunctionError(BackendError):
    """The function ran and failed: Lambda ``FunctionError``, or HTTP 500 from the function.

    ``transient`` is an attribute of each instance: ``True`` (the default) makes the
    invoker retry it within the budget and then fail over, like a 5xx; an invoker built
    with ``function_error="raise"`` sets it to ``False`` and raises it at once.

    Attributes:
        status: HTTP status of the answer (Lambda answers a function error with 200).
        payload: the function's error answer (Lambda's ``errorMessage`` JSON, say).
        kind: Lambda's ``X-Amz-Function-Error`` (``Unhandled``, ``Handled``) or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        payload: bytes = b"",
        kind: str | None = None,
        backend: str | None = None,
        transient: bool = True,
    ) -> None:
        super().__init__(message, backend=backend)
        self.status = status
        self.payload = payload
        self.kind = kind
        self.transient = transient


class TargetNotFoundError(PermanentError):
    """The function does not exist on this target (not deployed, wrong name or region).

    It says nothing about the request, so the invoker fails over to the next target,
    without retrying this one and without charging its breaker.
    """
