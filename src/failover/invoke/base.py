"""The seam between the :class:`~failover.Invoker` and the places a function runs.

An :class:`InvocationTarget` does one thing: send one :class:`InvocationRequest` to
one deployment of a function and return its :class:`TargetResponse`, mapping its
transport's failures into :mod:`failover.errors` (and :mod:`failover.invoke.errors`)
in one context manager. Targets never retry, route or log: the dispatcher does that
once for all of them. Third parties can implement the Protocol without importing
anything from this module but the two records.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from failover.errors import ConfigError, InvalidKeyError

__all__ = [
    "MAX_IDEMPOTENCY_KEY_CHARS",
    "InvocationRequest",
    "InvocationResult",
    "InvocationTarget",
    "TargetResponse",
    "check_client_options",
    "encode_payload",
    "new_idempotency_key",
    "validate_idempotency_key",
]

#: Longest idempotency key accepted (it travels in an HTTP header and Lambda's
#: 3,583-byte client context).
MAX_IDEMPOTENCY_KEY_CHARS = 255

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_BINARY = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class InvocationRequest:
    """One attempt's request, the same for every target, retry and hedge of a call.

    Attributes:
        body: the encoded payload.
        idempotency_key: sent to the function on every attempt so that it can
            deduplicate (``Idempotency-Key`` header; Lambda client context).
        content_type: MIME type of ``body``.
        timeout_seconds: connect and read timeout for this attempt (already capped by
            what is left of the call's deadline).
    """

    body: bytes
    idempotency_key: str
    content_type: str = _JSON
    timeout_seconds: float = 10.0

    def json(self) -> Any:
        """Decode the body as JSON."""
        return json.loads(self.body)

    def text(self) -> str:
        """Decode the body as UTF-8."""
        return self.body.decode("utf-8")


@dataclass(frozen=True, slots=True)
class TargetResponse:
    """What a target answered (a success: failures are raised as exceptions).

    Attributes:
        status: HTTP status, Lambda's ``StatusCode``, or 200 for a callable.
        payload: the answer's body.
    """

    status: int
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class InvocationResult:
    """The answer to :meth:`Invoker.invoke <failover.Invoker.invoke>`.

    Attributes:
        target: name of the target that answered.
        status: its status (HTTP status; Lambda ``StatusCode``; 200 for a callable).
        payload: the answer's body.
        latency_ms: the whole call as the caller waited for it (retries, failovers and
            hedges included).
        attempts: attempts started on targets for this call (retries, failovers and
            hedges included), counted when the answer arrived.
        idempotency_key: the key sent with every attempt (generated when not given).
    """

    target: str
    status: int
    payload: bytes
    latency_ms: float
    attempts: int
    idempotency_key: str

    def json(self) -> Any:
        """Decode the payload as JSON.

        Raises:
            json.JSONDecodeError: the payload is not JSON (a ``ValueError``).
        """
        return json.loads(self.payload)

    def text(self) -> str:
        """Decode the payload as UTF-8."""
        return self.payload.decode("utf-8")


@runtime_checkable
class InvocationTarget(Protocol):
    """One deployment of a function (or any operation) the invoker can call.

    Implementations map every failure of their transport into :mod:`failover.errors`:
    a ``TransientError`` (connection refused or reset, timeout, 429, 5xx), a
    :class:`~failover.invoke.errors.FunctionError`, a
    :class:`~failover.invoke.errors.RequestRejected` (the caller's 4xx), or another
    ``PermanentError``. They do not retry.
    """

    @property
    def name(self) -> str:
        """Unique name, used in health, events and errors."""
        ...

    def invoke(self, request: InvocationRequest) -> TargetResponse:
        """Send one request and return the answer, or raise a mapped error."""
        ...

    def close(self) -> None:
        """Release connections and clients."""
        ...


def encode_payload(payload: object, content_type: str | None = None) -> tuple[bytes, str]:
    """Encode a payload for the wire.

    Args:
        payload: ``bytes`` (sent as is), ``str`` (UTF-8), or any JSON-serialisable
            object (compact JSON, UTF-8). ``None`` is JSON ``null``.
        content_type: overrides the type derived from the payload's Python type
            (``application/octet-stream``, ``text/plain; charset=utf-8`` or
            ``application/json``).

    Returns:
        ``(body, content_type)``.

    Raises:
        TypeError: the payload is not bytes, str or JSON-serialisable (NaN included).
    """
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload), content_type or _BINARY
    if isinstance(payload, str):
        return payload.encode("utf-8"), content_type or _TEXT
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"payload must be bytes, str or JSON-serialisable, not {type(payload).__name__} ({exc})"
        ) from exc
    return text.encode("utf-8"), content_type or _JSON


def new_idempotency_key() -> str:
    """Return a fresh random idempotency key (a UUID4 string)."""
    return str(uuid.uuid4())


def validate_idempotency_key(key: object) -> str:
    """Check an idempotency key before any network call.

    Returns:
        The key.

    Raises:
        InvalidKeyError: not a str of 1 to 255 visible ASCII characters (it travels in an
            HTTP header, so spaces and control characters are refused).
    """
    if not isinstance(key, str):
        raise InvalidKeyError(f"idempotency key must be a str, not {type(key).__name__}")
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS or not all("!" <= ch <= "~" for ch in key):
        raise InvalidKeyError(
            f"idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII "
            "characters (no spaces or control characters)"
        )
    return key


def check_client_options(*, timeout_seconds: float, max_connections: int) -> None:
    """Validate the options every network target takes.

    Raises:
        ConfigError: a timeout that is not positive, or a pool smaller than one.
    """
    if not timeout_seconds > 0:
        raise ConfigError(f"timeout_seconds must be > 0, got {timeout_seconds!r}")
    if max_connections < 1:
        raise ConfigError(f"max_connections must be >= 1, got {max_connections!r}")
