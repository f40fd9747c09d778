"""A Backend wrapper that records every call failover makes (for traffic and repair)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from failover.backends.base import META_VERSION
from failover.errors import is_transient

if TYPE_CHECKING:
    from failover.backends.base import Backend, ByteRange, FetchedObject, ObjectReader, StoredObject
    from failover.payload import Payload

__all__ = ["Call", "TracedBackend"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """One backend call: when, what, and whether it got an answer.

    ``started``/``ended`` are ``time.monotonic()`` values; ``ok`` means the call returned,
    ``failed`` that it raised a transient error (a timeout, a refused connection...): an
    answer such as NotFound or a lost write condition is neither. ``version`` is the
    version stamp a ``put`` carried (repairs copy the stamp, new writes carry a newer one).
    """

    backend: str
    operation: str
    key: str
    started: float
    ended: float
    ok: bool
    version: str = ""
    failed: bool = False


class TracedBackend:
    """Delegates to ``inner`` and appends a :class:`Call` per call to ``calls``.

    It also counts calls in flight, so a benchmark can wait (untimed) until a quorum
    write's slowest replica has finished before it measures the next call. The cost is
    a lock and a list append per call, the same for every variant it wraps.
    """

    def __init__(self, inner: Backend, *, record: bool = True) -> None:
        self.inner = inner
        self.calls: list[Call] = []
        self._record = record
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def name(self) -> str:
        return self.inner.name

    def wait_idle(self, timeout_seconds: float = 30.0) -> bool:
        """Block until no call is in flight; False if that took longer than the timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout_seconds)

    def count(self, operation: str) -> int:
        """Calls of ``operation`` recorded so far."""
        return sum(1 for call in self.calls if call.operation == operation)

    def _begin(self) -> float:
        with self._idle:
            self._in_flight += 1
        return time.monotonic()

    def _end(
        self, operation: str, key: str, started: float, error: BaseException | None, version: str
    ) -> None:
        if self._record:
            self.calls.append(
                Call(
                    self.name,
                    operation,
                    key,
                    started,
                    time.monotonic(),
                    ok=error is None,
                    version=version,
                    failed=error is not None and is_transient(error),
                )
            )
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def _call(self, operation: str, key: str, call: Callable[[], T], version: str = "") -> T:
        started = self._begin()
        error: BaseException | None = None
        try:
            return call()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._end(operation, key, started, error, version)

    def put(self, key: str, payload: Payload, **options: Any) -> StoredObject:
        version = (options.get("metadata") or {}).get(META_VERSION, "")
        return self._call("put", key, lambda: self.inner.put(key, payload, **options), version)

    def get(self, key: str, *, byte_range: ByteRange | None = None) -> FetchedObject:
        return self._call("get", key, lambda: self.inner.get(key, byte_range=byte_range))

    def open(self, key: str, *, byte_range: ByteRange | None = None) -> ObjectReader:
        return self._call("open", key, lambda: self.inner.open(key, byte_range=byte_range))

    def head(self, key: str) -> StoredObject:
        return self._call("head", key, lambda: self.inner.head(key))

    def delete(self, key: str, **options: Any) -> None:
        self._call("delete", key, lambda: self.inner.delete(key, **options))

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        return self.inner.list(prefix)

    def close(self) -> None:
        self.inner.close()
